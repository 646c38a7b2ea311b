// Live state of the dashboard: built from the realtime `snapshot`, then folded with each
// `event` frame. Pages subscribe with `useStore()` and re-render on change.

import { useEffect, useState } from "preact/hooks";
import type * as api from "./generated/api";
import {
  type CompetitionView,
  type JobView,
  type LeaderView,
  type StatsView,
  type SubmissionSummary,
  type ValidatorView,
  type WeightsView,
  TERMINAL_STATES,
  boardOf,
  toCompetition,
  toEntryRow,
  toJob,
  toJobDetail,
  toJobEvent,
  toStats,
  toSubmission,
  toSubmissionEvent,
  toValidator,
  toWeightsEvent,
  toWeights,
} from "./model";

export type Connection = "connecting" | "live" | "reconnecting" | "offline";

export interface FeedEntry {
  key: number;
  type: string;
  at: string;
  payload: api.RealtimeEvent;
}

export interface State {
  connection: Connection;
  snapshotLoaded: boolean;
  competitions: Map<string, CompetitionView>;
  submissions: SubmissionSummary[];
  jobs: Map<string, JobView>;
  validators: Map<string, ValidatorView>;
  weights?: WeightsView;
  weightsHistory: WeightsView[];
  stats: StatsView;
  feed: FeedEntry[];
  /** Bumped on every event; pages use it to refetch REST details that may have changed. */
  revision: number;
  /** Per-entity revision: "job:<id>", "submission:<id>", "competition:<id>", "validators", "weights". */
  touched: Map<string, number>;
}

const FEED_SIZE = 60;
const SUBMISSIONS_KEPT = 50;
const FINISHED_JOBS_KEPT = 30;
const THROUGHPUT_WINDOW_MS = 10 * 60_000;

function emptyState(): State {
  return {
    connection: "connecting",
    snapshotLoaded: false,
    competitions: new Map(),
    submissions: [],
    jobs: new Map(),
    validators: new Map(),
    weights: undefined,
    weightsHistory: [],
    stats: {},
    feed: [],
    revision: 0,
    touched: new Map(),
  };
}

let state: State = emptyState();
const listeners = new Set<() => void>();
let scheduled = false;
let feedKey = 0;

export function getState(): State {
  return state;
}

function notify(): void {
  // Coalesce bursts of events into one render per frame.
  if (scheduled) return;
  scheduled = true;
  const flush = () => {
    scheduled = false;
    for (const l of listeners) l();
  };
  if (typeof requestAnimationFrame === "function" && document.visibilityState === "visible") {
    requestAnimationFrame(flush);
  } else {
    setTimeout(flush, 50);
  }
}

function update(mutator: (s: State) => void): void {
  const next: State = { ...state, revision: state.revision + 1 };
  mutator(next);
  state = next;
  notify();
}

export function useStore(): State {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return state;
}

export function setConnection(connection: Connection): void {
  if (state.connection !== connection) update((s) => (s.connection = connection));
}

function touch(s: State, ...keys: (string | undefined)[]): void {
  s.touched = new Map(s.touched);
  for (const k of keys) if (k) s.touched.set(k, s.revision);
}

// --------------------------------------------------------------------- snapshot

export function applySnapshot(data: api.SnapshotData): void {
  update((s) => {
    s.snapshotLoaded = true;
    s.competitions = new Map();
    for (const raw of data.competitions) {
      s.competitions.set(raw.id, toCompetition(raw, data.leaderboards[raw.id]));
    }
    s.submissions = data.recent_submissions.map(toSubmission);
    s.jobs = new Map(data.live_jobs.map((raw) => [raw.id, toJob(raw)]));
    const previous = state.validators;
    s.validators = new Map();
    for (const raw of data.validators) {
      const v = toValidator(raw);
      v.recentEpisodes = previous.get(v.hotkey)?.recentEpisodes ?? [];
      s.validators.set(v.hotkey, v);
    }
    s.weights = toWeights(data.latest_weights);
    s.stats = toStats(data.stats);
    touch(s, "validators", "weights", "snapshot");
  });
}

// ------------------------------------------------------------------------ events

/** The field of an event, when its type has it. */
function field(event: api.RealtimeEvent, key: string): string | undefined {
  const v = (event as unknown as Record<string, unknown>)[key];
  return typeof v === "string" ? v : undefined;
}

export function applyEvent(event: api.RealtimeEvent): void {
  const type = event.event_type;
  const at = event.at;
  update((s) => {
    if (type !== "stats") {
      // Periodic counters are not news: keep the feed for what happened.
      s.feed = [{ key: ++feedKey, type, at, payload: event }, ...s.feed].slice(0, FEED_SIZE);
    }
    const jobId = field(event, "job_id");
    const submissionId = field(event, "submission_id");
    const competitionId = field(event, "competition_id");
    const validator = field(event, "validator_hotkey");
    touch(s, jobId && `job:${jobId}`, submissionId && `submission:${submissionId}`);
    switch (event.event_type) {
      case "submission_received":
      case "submission_rejected": {
        const sub = toSubmissionEvent(event);
        touch(s, "submissions");
        s.submissions = [sub, ...s.submissions.filter((x) => x.id !== sub.id)].slice(
          0,
          SUBMISSIONS_KEPT,
        );
        touch(s, competitionId && `competition:${competitionId}`);
        break;
      }
      case "job_created": {
        const job = toJobEvent(event);
        s.jobs = new Map(s.jobs).set(job.id, job);
        touch(s, "jobs");
        setSubmissionStatus(s, job.submissionId, "scheduled");
        break;
      }
      case "job_status":
      case "evaluation_completed": {
        const v = event.validator_hotkey;
        const old = s.jobs.get(event.job_id);
        const job: JobView = old
          ? { ...old, progress: new Map(old.progress) }
          : {
              id: event.job_id,
              competitionId: event.competition_id,
              minerHotkey: event.miner_hotkey,
              submissionId: event.submission_id ?? undefined,
              state: "running",
              progress: new Map(),
            };
        const prev = job.progress.get(v);
        const progress =
          event.event_type === "job_status"
            ? { episodesDone: event.episodes_done, episodesTotal: event.episodes_total }
            : { successRate: event.success_rate ?? prev?.successRate };
        job.progress.set(v, { ...prev, hotkey: v, state: event.state, ...progress, at });
        job.updatedAt = at;
        job.state =
          (event.event_type === "evaluation_completed" ? event.job_state : null) ??
          overallState([...job.progress.values()].map((p) => p.state));
        s.jobs = pruneJobs(new Map(s.jobs).set(event.job_id, job));
        if (event.event_type === "evaluation_completed" || TERMINAL_STATES.has(event.state)) {
          touch(s, "validators", "jobs", job.competitionId && `competition:${job.competitionId}`);
        }
        break;
      }
      case "episode_completed": {
        const v = s.validators.get(event.validator_hotkey);
        if (v) {
          const now = Date.now();
          const recent = [...v.recentEpisodes, now].filter((t) => now - t < THROUGHPUT_WINDOW_MS);
          s.validators = new Map(s.validators).set(v.hotkey, { ...v, recentEpisodes: recent });
        }
        const job = s.jobs.get(event.job_id);
        const prev = job?.progress.get(event.validator_hotkey);
        if (job && prev && (prev.episodesDone ?? 0) < event.episode_index + 1) {
          const progress = new Map(job.progress).set(event.validator_hotkey, {
            ...prev,
            episodesDone: event.episode_index + 1,
          });
          s.jobs = new Map(s.jobs).set(event.job_id, { ...job, progress, updatedAt: at });
        }
        break;
      }
      case "leaderboard_updated": {
        touch(s, `competition:${event.competition_id}`, "leaderboards");
        const c = s.competitions.get(event.competition_id);
        if (c) {
          const leaderId = event.leader_submission_id ?? undefined;
          const old = c.leaderboard ?? { rows: [], pendingCandidates: [] };
          const sameLeader = old.leader?.submissionId === leaderId;
          const leader: LeaderView | undefined = leaderId
            ? {
                ...(sameLeader ? old.leader : {}),
                submissionId: leaderId,
                minerHotkey:
                  event.leader_hotkey ?? (sameLeader ? old.leader?.minerHotkey : undefined),
              }
            : undefined;
          // an event's entries are short: keep the name and reasons the REST/snapshot gave
          const before = new Map(old.rows.map((r) => [r.submissionId, r]));
          const rows =
            event.entries.length > 0
              ? event.entries.map(toEntryRow).map((r) => {
                  const prev = before.get(r.submissionId);
                  return prev
                    ? { ...r, name: prev.name, reason: prev.reason, toLead: prev.toLead }
                    : r;
                })
              : old.rows.map((r) => ({ ...r, isLeader: r.submissionId === leaderId }));
          s.competitions = new Map(s.competitions).set(c.id, {
            ...c,
            leaderboard: boardOf(rows, leader, old.pendingCandidates),
          });
        }
        break;
      }
      case "weights_updated": {
        const w = toWeightsEvent(event);
        s.weights = w;
        if (s.weightsHistory.length > 0 && s.weightsHistory[0].weightsId !== w.weightsId) {
          s.weightsHistory = [w, ...s.weightsHistory];
        }
        touch(s, "weights");
        break;
      }
      case "validator_connected":
      case "validator_disconnected": {
        const old = s.validators.get(event.validator_hotkey);
        const connected = event.event_type === "validator_connected";
        const v: ValidatorView = old
          ? { ...old }
          : { hotkey: event.validator_hotkey, connected, recentEpisodes: [] };
        v.connected = connected;
        v.uid = event.uid ?? v.uid;
        v.lastSeenAt = at;
        if (connected) v.connectedAt = at;
        s.validators = new Map(s.validators).set(event.validator_hotkey, v);
        touch(s, "validators");
        break;
      }
      case "stats": {
        s.stats = { ...s.stats, ...stripUndefined(toStats(event.stats)) };
        break;
      }
    }
    if (validator && type !== "validator_disconnected") {
      const v = s.validators.get(validator);
      if (v && v.lastSeenAt !== at && (!v.lastSeenAt || v.lastSeenAt < at)) {
        s.validators = new Map(s.validators).set(validator, { ...v, lastSeenAt: at });
      }
    }
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function setSubmissionStatus(s: State, id: string | undefined, status: string): void {
  if (!id) return;
  s.submissions = s.submissions.map((x) =>
    x.id === id && x.status === "pending" ? { ...x, status } : x,
  );
}

function overallState(states: string[]): string {
  if (states.length === 0) return "queued";
  if (states.some((x) => x === "running")) return "running";
  if (states.some((x) => x === "starting")) return "starting";
  if (states.every((x) => TERMINAL_STATES.has(x))) {
    return states.includes("completed") ? "completed" : states[0];
  }
  return states.some((x) => TERMINAL_STATES.has(x)) ? "running" : (states[0] ?? "queued");
}

function pruneJobs(jobs: Map<string, JobView>): Map<string, JobView> {
  const finished = [...jobs.values()].filter((j) => TERMINAL_STATES.has(j.state));
  if (finished.length <= FINISHED_JOBS_KEPT) return jobs;
  finished.sort((a, b) => (a.updatedAt ?? "").localeCompare(b.updatedAt ?? ""));
  for (const j of finished.slice(0, finished.length - FINISHED_JOBS_KEPT)) jobs.delete(j.id);
  return jobs;
}

/** Merge a fetched `/jobs/{id}` (assignments + status history) into a live job. */
export function mergeJobDetail(raw: api.JobDetail): void {
  const detail = toJobDetail(raw);
  update((s) => {
    const live = s.jobs.get(detail.id);
    if (!live) return;
    const progress = new Map(detail.progress);
    for (const [k, v] of live.progress) {
      const fetched = progress.get(k);
      // Keep whichever is newer: a live event after the fetch, or the fetched history.
      if (!fetched || (v.at !== undefined && (fetched.at === undefined || v.at >= fetched.at))) {
        progress.set(k, v);
      }
    }
    s.jobs = new Map(s.jobs).set(detail.id, { ...live, progress, detailLoaded: true });
  });
}

export function setWeightsHistory(history: WeightsView[]): void {
  update((s) => (s.weightsHistory = history));
}

export function mergeValidators(list: api.Validator[]): void {
  update((s) => {
    const next = new Map(s.validators);
    for (const raw of list) {
      const v = toValidator(raw);
      v.recentEpisodes = s.validators.get(v.hotkey)?.recentEpisodes ?? [];
      next.set(v.hotkey, v);
    }
    s.validators = next;
  });
}

export function throughputPerMinute(v: ValidatorView, now = Date.now()): number {
  const recent = v.recentEpisodes.filter((t) => now - t < THROUGHPUT_WINDOW_MS);
  if (recent.length === 0) return 0;
  const span = Math.max(60_000, now - Math.min(...recent));
  return (recent.length * 60_000) / span;
}

