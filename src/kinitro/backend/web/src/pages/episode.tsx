// Episode: summary, reward curve, the trajectory replayed from the logged actions, media.

import { useEffect, useMemo, useState } from "preact/hooks";
import { type ActionLog, decodeActionLog, replayHandPath } from "../actionlog";
import { getJson, useResource } from "../api";
import { LineChart } from "../chart";
import {
  Async,
  Badge,
  Empty,
  ErrorNote,
  HotkeyText,
  JobLink,
  KeyValues,
  Loading,
} from "../components";
import { DASH, dateTime, duration, fixed, humanize } from "../format";
import type * as api from "../generated/api";
import { type StepSample, toSteps, typed } from "../model";
import { EpisodeVideo } from "../video";

const MAX_STEP_PAGES = 20;

async function fetchAllSteps(id: string): Promise<StepSample[]> {
  const out: StepSample[] = [];
  let offset = 0;
  for (let page = 0; page < MAX_STEP_PAGES; page++) {
    const raw = typed<api.Page_StepBatch>(
      await getJson(`episodes/${encodeURIComponent(id)}/steps?limit=100&offset=${offset}`),
    );
    out.push(...toSteps(raw));
    const got = raw.items.length;
    offset += got;
    if (got === 0 || offset >= raw.total) break;
  }
  out.sort((a, b) => a.step - b.step);
  return out;
}

async function fetchActionLog(url: string): Promise<ActionLog> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`action log: HTTP ${res.status}`);
  return decodeActionLog(await res.arrayBuffer());
}

function useAsync<T>(fn: (() => Promise<T>) | undefined, key: string): {
  data?: T;
  error?: Error;
  loading: boolean;
} {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({
    loading: fn !== undefined,
  });
  useEffect(() => {
    if (!fn) {
      setState({ loading: false });
      return;
    }
    let live = true;
    setState({ loading: true });
    fn()
      .then((data) => live && setState({ data, loading: false }))
      .catch((e: unknown) => live && setState({ error: e instanceof Error ? e : new Error(String(e)), loading: false }));
    return () => {
      live = false;
    };
  }, [key]);
  return state;
}

export function EpisodePage(props: { id: string }) {
  const ep = useResource(`episodes/${encodeURIComponent(props.id)}`, typed<api.Episode>);
  return (
    <>
      <h1 tabIndex={-1}>Episode {props.id}</h1>
      <Async res={ep} what="the episode">
        {(raw) => <EpisodeBody id={props.id} raw={raw} />}
      </Async>
    </>
  );
}

function EpisodeBody(props: { id: string; raw: api.Episode }) {
  const { raw, id } = props;
  // Until its round is revealed, nothing seed-derived of an episode is public (the API
  // answers 403 for its steps, action log and media): say until when instead.
  const sealedUntil = raw.sealed_until ?? undefined;
  const actionsUrl = sealedUntil ? undefined : (raw.actions_url ?? undefined);
  const steps = useAsync(sealedUntil ? undefined : () => fetchAllSteps(id), `steps:${id}:${sealedUntil ?? ""}`);
  const log = useAsync(actionsUrl ? () => fetchActionLog(actionsUrl) : undefined, `log:${actionsUrl}`);
  const success = raw.success;
  const cause = raw.failure_cause;
  const media = raw.media_urls;
  return (
    <>
      <section aria-labelledby="ep-sum-h" class="card">
        <h2 id="ep-sum-h">Summary</h2>
        <KeyValues
          rows={[
            [
              "Outcome",
              success ? (
                <Badge state="completed" label="success" />
              ) : (
                <Badge state="failed" label={cause ? humanize(cause) : "no success"} />
              ),
            ],
            ["Task", <span data-testid="episode-task">{raw.task}</span>],
            ["Episode", `${raw.episode_index} (task episode ${raw.task_episode})`],
            ["Job", <JobLink id={raw.job_id} />],
            ["Validator", <HotkeyText hotkey={raw.validator_hotkey} />],
            ["Total reward", fixed(raw.total_reward)],
            ["Steps", `${raw.steps}${raw.truncated ? " (truncated)" : ""}${raw.terminated ? " (terminated)" : ""}`],
            ["Steps to success", raw.steps_to_success ?? DASH],
            ["Duration", duration(raw.duration_s)],
            ...(cause
              ? ([["Failure", `${humanize(cause)}${raw.failure_detail ? `: ${raw.failure_detail}` : ""}`]] as [string, string][])
              : []),
          ]}
        />
      </section>
      {sealedUntil ? (
        <section aria-labelledby="sealed-h" class="card" data-testid="episode-sealed">
          <h2 id="sealed-h">Trajectory</h2>
          <Empty>
            Sealed until {dateTime(sealedUntil)}: the seed, actions, step samples and media of this
            episode are published when its round ends and its secret is revealed.
          </Empty>
        </section>
      ) : steps.loading || log.loading ? (
        <Loading what="the episode's steps" />
      ) : (
        <Replay
          id={id}
          samples={steps.data ?? []}
          log={log.data}
          logError={log.error}
          stepsError={steps.error}
        />
      )}
      <section aria-labelledby="media-h">
        <h2 id="media-h">Media</h2>
        {sealedUntil ? (
          <Empty>Sealed until {dateTime(sealedUntil)}.</Empty>
        ) : media.length === 0 ? (
          <Empty>No camera frames were recorded during the evaluation (this competition observes states); the video above is rendered from the action log.</Empty>
        ) : (
          <Media urls={media} />
        )}
      </section>
    </>
  );
}

function Media(props: { urls: string[] }) {
  return (
    <ul class="media">
      {props.urls.map((u, i) => {
        const path = u.split("?")[0].toLowerCase();
        return (
          <li key={u}>
            {/\.(mp4|webm|ogv)$/.test(path) ? (
              <video src={u} controls preload="metadata" aria-label={`Episode recording ${i + 1}`} />
            ) : /\.(png|jpe?g|gif|webp)$/.test(path) ? (
              <img src={u} alt={`Episode frame ${i + 1}`} loading="lazy" />
            ) : (
              <a href={u}>Media file {i + 1}</a>
            )}
          </li>
        );
      })}
    </ul>
  );
}

interface Series {
  x: number[];
  reward: (number | null)[];
  cumulative: (number | null)[];
  actions: (number | null)[][];
  commanded?: number[][]; // per x index: xyz after that many actions
  commandedStart?: number[]; // xyz at reset
  observed: { step: number; hand: number[]; obj: number[]; goal: number[] }[];
  successStep?: number;
}

function buildSeries(samples: StepSample[], log?: ActionLog): Series {
  const observed = samples
    .filter((s) => s.observation.length >= 3)
    .map((s) => ({
      step: s.step,
      hand: s.observation.slice(0, 3),
      obj: s.observation.length >= 7 ? s.observation.slice(4, 7) : [],
      goal: s.observation.length >= 39 ? s.observation.slice(-3) : [],
    }));
  if (log && log.steps > 0) {
    const x = Array.from({ length: log.steps }, (_, i) => i + 1);
    let acc = 0;
    const cumulative = Array.from(log.rewards, (r) => (acc += r));
    const dims = Math.min(log.actionDim, 4);
    const actions = Array.from({ length: dims }, (_, d) => log.actions.map((a) => a[d]));
    const start = observed[0]?.hand ?? [0, 0.6, 0.2];
    const path = replayHandPath(log.actions, start);
    const successIndex = log.successes.indexOf(1);
    return {
      x,
      reward: Array.from(log.rewards),
      cumulative,
      actions,
      commanded: path.slice(1),
      commandedStart: path[0],
      observed,
      successStep: successIndex >= 0 ? successIndex + 1 : undefined,
    };
  }
  // No action log: fall back to the sampled steps.
  const x = samples.map((s) => s.step);
  let acc = 0;
  const dims = Math.min(samples[0]?.action.length ?? 0, 4);
  const firstSuccess = samples.find((s) => s.success);
  return {
    x,
    reward: samples.map((s) => s.reward ?? null),
    cumulative: samples.map((s) => (acc += s.reward ?? 0)),
    actions: Array.from({ length: dims }, (_, d) => samples.map((s) => s.action[d] ?? null)),
    observed,
    successStep: firstSuccess?.step,
  };
}

function Replay(props: {
  id: string;
  samples: StepSample[];
  log?: ActionLog;
  logError?: Error;
  stepsError?: Error;
}) {
  const series = useMemo(() => buildSeries(props.samples, props.log), [props.samples, props.log]);
  const n = series.x.length;
  const [cursor, setCursor] = useState(Math.max(0, n - 1));
  const [playing, setPlaying] = useState(false);

  useEffect(() => setCursor(Math.max(0, n - 1)), [n]);
  useEffect(() => {
    if (!playing) return;
    const stride = Math.max(1, Math.round(n / 200));
    const t = setInterval(() => {
      setCursor((c) => {
        if (c + stride >= n - 1) {
          setPlaying(false);
          return n - 1;
        }
        return c + stride;
      });
    }, 30);
    return () => clearInterval(t);
  }, [playing, n]);

  if (n === 0) {
    return (
      <>
        <EpisodeVideo id={props.id} step={0} onStep={() => undefined} />
        <section aria-labelledby="replay-h">
          <h2 id="replay-h">Reward and trajectory</h2>
          {props.stepsError && <ErrorNote error={props.stepsError} what="step samples" />}
          {props.logError && <ErrorNote error={props.logError} what="the action log" />}
          <Empty>No action log or step samples for this episode.</Empty>
        </section>
      </>
    );
  }
  const source = props.log ? "the full action log" : "the logged step samples";
  const step = series.x[cursor];
  // the video shows the state after a step (0: the reset); the cursor indexes series.x
  const toCursor = (s: number) => {
    const i = series.x.findIndex((v) => v >= s);
    return i < 0 ? n - 1 : i;
  };
  return (
    <>
    <EpisodeVideo
      id={props.id}
      step={step}
      onStep={(s) => {
        setPlaying(false);
        setCursor(toCursor(s));
      }}
    />
    <section aria-labelledby="replay-h">
      <h2 id="replay-h">Reward and trajectory</h2>
      {props.logError && <ErrorNote error={props.logError} what="the action log" />}
      <p class="muted">
        Replayed from {source} ({n} steps)
        {series.successStep !== undefined ? `; first success at step ${series.successStep}` : "; no success"}.
      </p>
      <div class="replay-controls">
        <button type="button" onClick={() => {
          if (!playing && cursor >= n - 1) setCursor(0);
          setPlaying(!playing);
        }} aria-pressed={playing}>
          {playing ? "Pause" : "Replay"}
        </button>
        <label for="replay-step">Step</label>
        <input
          id="replay-step"
          type="range"
          min={0}
          max={n - 1}
          value={cursor}
          onInput={(e) => {
            setPlaying(false);
            setCursor(Number((e.currentTarget as HTMLInputElement).value));
          }}
          aria-valuetext={`step ${step} of ${series.x[n - 1]}`}
        />
        <output for="replay-step" data-testid="replay-step">
          step {step} · reward {fixed(series.reward[cursor] ?? undefined)} · return{" "}
          {fixed(series.cumulative[cursor] ?? undefined)}
        </output>
      </div>
      <div class="charts">
        <LineChart
          title="Reward per step"
          description={`Reward at each of ${n} steps with the cumulative return.`}
          x={series.x}
          series={[{ label: "reward" }, { label: "return (÷10)", dash: true }]}
          ys={[series.reward, series.cumulative.map((c) => (c === null ? null : c / 10))]}
          xLabel="step"
          yLabel="reward"
          marker={cursor}
          testId="reward-chart"
        />
        {series.actions.length > 0 && (
          <LineChart
            title="Actions"
            description="Action components over the episode (x, y, z deltas and gripper)."
            x={series.x}
            series={series.actions.map((_, d) => ({ label: ["Δx", "Δy", "Δz", "grip"][d] ?? `a${d}` }))}
            ys={series.actions}
            xLabel="step"
            yLabel="action"
            yRange={[-1.05, 1.05]}
            marker={cursor}
            testId="actions-chart"
          />
        )}
      </div>
      <Trajectory series={series} cursor={cursor} />
    </section>
    </>
  );
}

const VIEWS: { title: string; axes: [number, number]; labels: [string, string] }[] = [
  { title: "Top view (x–y)", axes: [0, 1], labels: ["x (m)", "y (m)"] },
  { title: "Side view (x–z)", axes: [0, 2], labels: ["x (m)", "z (m)"] },
];

function Trajectory(props: { series: Series; cursor: number }) {
  const { series, cursor } = props;
  const commanded = series.commanded;
  const observed = series.observed;
  if (!commanded && observed.length === 0) return null;
  const step = series.x[cursor];
  const obsNow = [...observed].reverse().find((o) => o.step <= step) ?? observed[0];
  return (
    <figure class="trajectory" data-testid="trajectory">
      <figcaption>
        End-effector trajectory
        {commanded ? ": commanded path replayed from the logged actions (Meta-World mocap, Δ = clip(a, −1, 1) × 0.01 m)" : ""}
        {observed.length > 0 ? "; observed hand positions from the step samples" : ""}.
      </figcaption>
      <div class="traj-views">
        {VIEWS.map((v) => (
          <TrajectoryView
            key={v.title}
            title={v.title}
            axes={v.axes}
            labels={v.labels}
            commanded={commanded && series.commandedStart ? [series.commandedStart, ...commanded] : commanded}
            offset={series.commandedStart ? 1 : 0}
            observed={observed}
            cursor={cursor}
            obsNow={obsNow}
          />
        ))}
      </div>
      <p class="legend">
        <span class="sw sw-cmd" aria-hidden="true" /> commanded path{" "}
        <span class="sw sw-obs" aria-hidden="true" /> observed hand{" "}
        <span class="sw sw-obj" aria-hidden="true" /> object{" "}
        <span class="sw sw-goal" aria-hidden="true" /> goal
      </p>
    </figure>
  );
}

function TrajectoryView(props: {
  title: string;
  axes: [number, number];
  labels: [string, string];
  commanded?: number[][];
  offset: number;
  observed: Series["observed"];
  cursor: number;
  obsNow?: Series["observed"][number];
}) {
  const [ax, ay] = props.axes;
  const pts: number[][] = [];
  for (const p of props.commanded ?? []) pts.push(p);
  for (const o of props.observed) {
    pts.push(o.hand);
    if (o.obj.length === 3) pts.push(o.obj);
    if (o.goal.length === 3) pts.push(o.goal);
  }
  if (pts.length === 0) return null;
  const xs = pts.map((p) => p[ax]);
  const ys = pts.map((p) => p[ay]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0, 0.05) * 1.15;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  [x0, x1, y0, y1] = [cx - span / 2, cx + span / 2, cy - span / 2, cy + span / 2];
  const W = 300;
  const sx = (v: number) => ((v - x0) / (x1 - x0)) * W;
  const sy = (v: number) => W - ((v - y0) / (y1 - y0)) * W;
  const line = (ps: number[][]) => ps.map((p) => `${sx(p[ax]).toFixed(1)},${sy(p[ay]).toFixed(1)}`).join(" ");
  const cmd = props.commanded;
  const now = cmd?.[Math.min(props.cursor + props.offset, cmd.length - 1)];
  const obsHand = props.observed.map((o) => o.hand);
  const objs = props.observed.filter((o) => o.obj.length === 3).map((o) => o.obj);
  const goal = props.observed.find((o) => o.goal.length === 3)?.goal;
  return (
    <svg
      viewBox={`-30 -10 ${W + 40} ${W + 40}`}
      role="img"
      aria-label={`${props.title} of the end-effector trajectory`}
      class="traj"
    >
      <title>{props.title}</title>
      <rect x={0} y={0} width={W} height={W} class="traj-bg" />
      <text x={W / 2} y={W + 24} class="traj-label" text-anchor="middle">
        {props.labels[0]} · {x0.toFixed(2)} … {x1.toFixed(2)}
      </text>
      <text x={-18} y={W / 2} class="traj-label" text-anchor="middle" transform={`rotate(-90 -18 ${W / 2})`}>
        {props.labels[1]} · {y0.toFixed(2)} … {y1.toFixed(2)}
      </text>
      <text x={6} y={16} class="traj-title">
        {props.title}
      </text>
      {objs.length > 1 && <polyline points={line(objs)} class="traj-obj" />}
      {obsHand.length > 1 && <polyline points={line(obsHand)} class="traj-obs" />}
      {cmd && cmd.length > 1 && <polyline points={line(cmd)} class="traj-cmd" />}
      {goal && <circle cx={sx(goal[ax])} cy={sy(goal[ay])} r={6} class="traj-goal" />}
      {props.obsNow && <circle cx={sx(props.obsNow.hand[ax])} cy={sy(props.obsNow.hand[ay])} r={4} class="traj-obs-now" />}
      {props.obsNow && props.obsNow.obj.length === 3 && (
        <rect x={sx(props.obsNow.obj[ax]) - 4} y={sy(props.obsNow.obj[ay]) - 4} width={8} height={8} class="traj-obj-now" />
      )}
      {now && <circle cx={sx(now[ax])} cy={sy(now[ay])} r={5} class="traj-now" data-testid="traj-cursor" />}
    </svg>
  );
}


