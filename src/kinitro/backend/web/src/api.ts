// REST access (`/api/v1`) and a hook that refetches when a live event touches the data.

import { useEffect, useRef, useState } from "preact/hooks";
import type { ErrorBody } from "./generated/api";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_RATE_LIMIT_RETRIES = 3;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

export async function getJson(path: string, signal?: AbortSignal): Promise<unknown> {
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  let res = await fetch(url, { headers: { Accept: "application/json" }, signal });
  // The backend limits requests per address (429 + Retry-After): wait and try again.
  for (let retry = 0; res.status === 429 && retry < MAX_RATE_LIMIT_RETRIES; retry++) {
    const seconds = Number(res.headers.get("Retry-After")) || 1;
    await sleep(Math.min(10, seconds) * 1000, signal);
    res = await fetch(url, { headers: { Accept: "application/json" }, signal });
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = (await res.json()) as Partial<ErrorBody>;
      if (typeof body.detail === "string") detail = body.detail;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, detail || `HTTP ${res.status}`);
  }
  return res.json();
}

export interface Resource<T> {
  data?: T;
  error?: ApiError | Error;
  loading: boolean;
}

/**
 * Fetch `path` (relative to /api/v1) and parse it with `parse`, whose argument's type is
 * the route's generated response type (`generated/api.ts`); refetch when `liveKey`
 * changes (throttled so a burst of events costs one request).
 */
export function useResource<T, R = unknown>(
  path: string | undefined,
  parse: (raw: R) => T,
  liveKey: unknown = 0,
  throttleMs = 750,
): Resource<T> {
  const [res, setRes] = useState<Resource<T>>({ loading: path !== undefined });
  const last = useRef(0);
  const generation = useRef(0);
  const parseRef = useRef(parse);
  parseRef.current = parse;

  // A new path (navigating between two submissions…) starts from scratch; responses to an
  // older path are ignored.
  useEffect(() => {
    generation.current += 1;
    last.current = 0;
    setRes({ loading: path !== undefined });
  }, [path]);

  useEffect(() => {
    if (path === undefined) return;
    // A live refetch never aborts a request in flight (a steady stream of events would
    // starve it); it is only delayed to respect the throttle.
    const wait = Math.max(0, last.current + throttleMs - Date.now());
    const timer = setTimeout(() => {
      last.current = Date.now();
      const gen = generation.current;
      getJson(path)
        .then((raw) => {
          if (gen === generation.current) setRes({ data: parseRef.current(raw as R), loading: false });
        })
        .catch((err: unknown) => {
          if (gen !== generation.current) return;
          setRes((prev) => ({
            data: prev.data,
            error: err instanceof Error ? err : new Error(String(err)),
            loading: false,
          }));
        });
    }, wait);
    return () => clearTimeout(timer);
  }, [path, liveKey]);

  useEffect(
    () => () => {
      generation.current += 1;
    },
    [],
  );

  return res;
}
