// Small shared pieces of UI. Everything renders text through Preact (escaped), never
// through innerHTML.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Resource } from "./api";
import { ago, DASH, dateTime, interval, pct, shortId, shortKey } from "./format";

const STATE_TONE: Record<string, string> = {
  completed: "ok",
  evaluated: "ok",
  leader: "ok",
  approved: "ok",
  connected: "ok",
  running: "busy",
  starting: "busy",
  scheduled: "busy",
  acked: "busy",
  assigned: "idle",
  queued: "idle",
  pending: "idle",
  candidate: "warn",
  superseded: "idle",
  cancelled: "idle",
  expired: "warn",
  disconnected: "idle",
  failed: "bad",
  timed_out: "bad",
  rejected: "bad",
};

export function Badge(props: { state?: string | null; label?: string; title?: string }) {
  const state = props.state ?? "unknown";
  return (
    <span class={`badge tone-${STATE_TONE[state] ?? "idle"}`} title={props.title}>
      {props.label ?? state.replace(/_/g, " ")}
    </span>
  );
}

export function HotkeyText(props: { hotkey?: string | null }) {
  if (!props.hotkey) return <span>{DASH}</span>;
  return (
    <span class="mono hotkey" title={props.hotkey}>
      {shortKey(props.hotkey)}
    </span>
  );
}

export function SubmissionLink(props: { id?: string | null; children?: ComponentChildren }) {
  if (!props.id) return <span>{DASH}</span>;
  return (
    <a href={`/submissions/${encodeURIComponent(props.id)}`} class="mono">
      {props.children ?? `#${props.id}`}
    </a>
  );
}

export function JobLink(props: { id?: string | null }) {
  if (!props.id) return <span>{DASH}</span>;
  return (
    <a href={`/jobs/${encodeURIComponent(props.id)}`} class="mono" title={props.id}>
      {shortId(props.id)}
    </a>
  );
}

export function CompetitionLink(props: { id?: string | null; name?: string }) {
  if (!props.id) return <span>{DASH}</span>;
  return <a href={`/competitions/${encodeURIComponent(props.id)}`}>{props.name ?? props.id}</a>;
}

/** Success rate with its 95 % interval, as text and as a small bar. */
export function RateWithInterval(props: { rate?: number | null; lo?: number | null; hi?: number | null }) {
  const { rate, lo, hi } = props;
  return (
    <span class="rate">
      <span class="rate-value">{pct(rate)}</span>
      {lo != null && hi != null && (
        <>
          <span class="rate-ci" aria-label={`95% interval ${interval(lo, hi)}`}>
            {" "}
            [{interval(lo, hi)}]
          </span>
          <span class="ci-bar" aria-hidden="true">
            <span class="ci-range" style={{ left: `${lo * 100}%`, width: `${(hi - lo) * 100}%` }} />
            {rate != null && <span class="ci-point" style={{ left: `${rate * 100}%` }} />}
          </span>
        </>
      )}
    </span>
  );
}

export function Progress(props: { done?: number | null; total?: number | null; label: string }) {
  const { done, total } = props;
  const known = done != null && total != null && total > 0;
  const fraction = known ? Math.min(1, done / total) : 0;
  return (
    <span class="progress">
      <span
        class="progress-track"
        role="progressbar"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={known ? total : undefined}
        aria-valuenow={known ? done : undefined}
      >
        <span class="progress-fill" style={{ width: `${fraction * 100}%` }} />
      </span>
      <span class="progress-text">{known ? `${done}/${total}` : (done ?? DASH)}</span>
    </span>
  );
}

/** Re-render every `ms` so "12s ago" stays true. */
export function useNow(ms = 5000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => {
      clearInterval(t);
    };
  }, [ms]);
  return now;
}

export function TimeAgo(props: { at?: string | null; now: number }) {
  if (!props.at) return <span>{DASH}</span>;
  return (
    <time dateTime={props.at} title={dateTime(props.at)}>
      {ago(props.at, props.now)}
    </time>
  );
}

export function Loading(props: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {props.what}…
    </p>
  );
}

export function ErrorNote(props: { error: Error; what: string }) {
  return (
    <p class="error" role="alert">
      Could not load {props.what}: {props.error.message}
    </p>
  );
}

/** Render a REST resource: loading / error / content. */
export function Async<T>(props: {
  res: Resource<T>;
  what: string;
  children: (data: T) => ComponentChildren;
}) {
  const { res } = props;
  if (res.data !== undefined) {
    return (
      <>
        {res.error && <ErrorNote error={res.error} what={`fresh ${props.what}`} />}
        {props.children(res.data)}
      </>
    );
  }
  if (res.error) return <ErrorNote error={res.error} what={props.what} />;
  return <Loading what={props.what} />;
}

export function KeyValues(props: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="kv">
      {props.rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v ?? DASH}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="muted empty">{props.children}</p>;
}
