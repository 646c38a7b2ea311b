// The episode's video, rendered from its action log by a render worker after the round's
// reveal (`/api/v1/episodes/{id}/video`), played in step with the charts' cursor.

import { useEffect, useRef, useState } from "preact/hooks";
import { API, getJson } from "./api";
import type * as api from "./generated/api";

const POLL_MS = 2000;

interface VideoStatus {
  state: string; // none | queued | rendering | done | failed
  progress: number;
  queuePosition?: number;
  sealedUntil?: string;
  workerSeen: boolean;
  error?: string;
  url?: string;
  fps: number;
  every: number;
  steps?: number;
}

function toStatus(raw: api.VideoStatus): VideoStatus {
  return {
    state: raw.state,
    progress: raw.progress ?? 0,
    queuePosition: raw.queue_position ?? undefined,
    sealedUntil: raw.sealed_until ?? undefined,
    workerSeen: raw.worker_seen,
    error: raw.error ?? undefined,
    url: raw.video_url ?? undefined,
    fps: raw.video?.fps ?? 25,
    every: raw.video?.every ?? 1,
    steps: raw.video?.steps ?? undefined,
  };
}

async function ask(id: string): Promise<api.VideoStatus> {
  const res = await fetch(`${API}/episodes/${encodeURIComponent(id)}/video`, {
    method: "POST",
    headers: { Accept: "application/json" },
  });
  const body = (await res.json().catch(() => ({}))) as api.VideoStatus & Partial<api.ErrorBody>;
  if (!res.ok) throw new Error(body.detail ?? `HTTP ${res.status}`);
  return body;
}

/** The video panel. `step` is the charts' cursor (state after that step); `onStep` moves
 * it while the video plays. */
export function EpisodeVideo(props: { id: string; step: number; onStep: (step: number) => void }) {
  const [status, setStatus] = useState<VideoStatus | undefined>();
  const [failure, setFailure] = useState<string | undefined>();
  const [tick, setTick] = useState(0);
  const video = useRef<HTMLVideoElement>(null);
  const fromVideo = useRef(-1);

  useEffect(() => {
    let live = true;
    getJson(`episodes/${encodeURIComponent(props.id)}/video`)
      .then((raw) => live && setStatus(toStatus(raw as api.VideoStatus)))
      .catch((e: unknown) => live && setFailure(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [props.id, tick]);

  const waiting = status?.state === "queued" || status?.state === "rendering";
  useEffect(() => {
    if (!waiting) return;
    const t = setTimeout(() => setTick((n) => n + 1), POLL_MS);
    return () => clearTimeout(t);
  }, [waiting, tick]);

  // video → cursor, every animation frame while it plays
  useEffect(() => {
    const el = video.current;
    if (!el || status?.state !== "done") return;
    let raf = 0;
    const follow = () => {
      const frame = Math.floor(el.currentTime * status.fps + 1e-6);
      const step = Math.min(frame * status.every, status.steps ?? Number.MAX_SAFE_INTEGER);
      if (step !== fromVideo.current) {
        fromVideo.current = step;
        props.onStep(step);
      }
      if (!el.paused && !el.ended) raf = requestAnimationFrame(follow);
    };
    const start = () => {
      cancelAnimationFrame(raf);
      raf = requestAnimationFrame(follow);
    };
    el.addEventListener("play", start);
    el.addEventListener("seeked", start);
    return () => {
      cancelAnimationFrame(raf);
      el.removeEventListener("play", start);
      el.removeEventListener("seeked", start);
    };
  }, [status?.state, status?.url]);

  // cursor → video, when the cursor moved by itself (slider, replay button)
  useEffect(() => {
    const el = video.current;
    if (!el || status?.state !== "done" || !el.paused || props.step === fromVideo.current) return;
    fromVideo.current = props.step;
    el.currentTime = (Math.round(props.step / status.every) + 0.5) / status.fps;
  }, [props.step, status?.state]);

  const request = () => {
    setFailure(undefined);
    ask(props.id)
      .then((raw) => setStatus(toStatus(raw)))
      .catch((e: unknown) => setFailure(e instanceof Error ? e.message : String(e)));
  };

  return (
    <section aria-labelledby="video-h" class="card episode-video">
      <h2 id="video-h">Video</h2>
      {failure && (
        <p class="error-note" role="alert" data-testid="video-error">
          {failure}
        </p>
      )}
      {status === undefined ? (
        !failure && <p class="muted">Loading…</p>
      ) : status.state === "done" && status.url ? (
        <figure class="video-figure">
          <video
            ref={video}
            src={status.url}
            controls
            muted
            playsInline
            preload="auto"
            data-testid="episode-video"
            aria-label="Video of the episode, rendered from its action log"
          />
          <figcaption class="muted small">
            Rendered from the action log after the round's reveal (the episode replayed with a
            camera): one frame every {status.every} step{status.every > 1 ? "s" : ""} at{" "}
            {status.fps} frames/s. Playing moves the charts' step cursor; moving the cursor moves
            the video.
          </figcaption>
        </figure>
      ) : status.sealedUntil ? (
        <p class="muted" data-testid="video-sealed">
          Sealed until the round's reveal ({new Date(status.sealedUntil).toLocaleString()}): an
          episode is filmed from its seed and actions, which stay secret until then.
        </p>
      ) : status.state === "queued" || status.state === "rendering" ? (
        <div data-testid="video-progress">
          <p>
            {status.state === "queued"
              ? `Queued for rendering${status.queuePosition ? ` (${status.queuePosition} ahead)` : ""}…`
              : `Rendering… ${Math.round(status.progress * 100)}%`}
          </p>
          <progress max={1} value={status.progress} aria-label="Rendering progress" />
          {!status.workerSeen && (
            <p class="muted small">
              No render worker has asked for work in the last minute: this deployment may not
              render videos (an operator runs <code>kinitro evaluator render-worker</code>).
            </p>
          )}
        </div>
      ) : (
        <div>
          {status.state === "failed" && (
            <p class="error-note" data-testid="video-failed">
              Rendering failed: {status.error ?? "unknown error"}
            </p>
          )}
          <p class="muted">
            Videos are rendered on request from the episode's action log, never during the
            evaluation.
          </p>
          <button type="button" onClick={request} data-testid="video-request">
            {status.state === "failed" ? "Try again" : "Render video"}
          </button>
        </div>
      )}
    </section>
  );
}
