// Live state of the dashboard: built from the realtime `snapshot`, then folded with each
// `event` frame. Pages subscribe with `useStore()` and re-render on change.

import { useEffect, useState } from "preact/hooks";
import {
  type CompetitionView,
  type LeaderView,
  type JobView,
  type Json,
  type StatsView,
  type SubmissionSummary,
  type ValidatorView,
  type WeightsView,
  TERMINAL_STATES,
  isObj,
  items,
  num,
  pick,
  str,
  toCompetition,
  toJob,
  toJobDetail,
  toLeaderboard,
  toStats,
  toSubmission,
  toValidator,
  toWeights,
} from "./model";

export type Connection = "connecting" | "live" | "reconnecting" | "offline";

export interface FeedEntry {
  key: number;
  type: string;
  at: string;
  payload: Json;
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

export function applySnapshot(data: unknown): void {
  update((s) => {
    s.snapshotLoaded = true;
    s.competitions = new Map();
    for (const raw of listOf(pick(data, "competitions"))) {
      const c = toCompetition(raw);
      s.competitions.set(c.id, c);
    }
    // Leaderboards may come separately keyed by competition id.
    const boards = pick(data, "leaderboards");
    if (isObj(boards)) {
      for (const [cid, lb] of Object.entries(boards)) {
        const c = s.competitions.get(cid);
        if (c) c.leaderboard = toLeaderboard(lb, c.leader);
      }
    }
    s.submissions = listOf(pick(data, "recent_submissions", "submissions")).map(toSubmission);
    s.jobs = new Map();
    for (const raw of listOf(pick(data, "live_jobs", "jobs"))) {
      const j = toJob(raw);
      s.jobs.set(j.id, j);
    }
    const previous = state.validators;
    s.validators = new Map();
    for (const raw of listOf(pick(data, "validators"))) {
      const v = toValidator(raw);
      v.recentEpisodes = previous.get(v.hotkey)?.recentEpisodes ?? [];
      s.validators.set(v.hotkey, v);
    }
    s.weights = toWeights(pick(data, "latest_weights", "weights"));
    s.stats = toStats(pick(data, "stats"));
    touch(s, "validators", "weights", "snapshot");
  });
}

function listOf(v: unknown): Json[] {
  if (isObj(v) && !Array.isArray(pick(v, "items"))) {
    // a mapping id -> object
    return Object.values(v).filter(isObj);
  }
  return items(v);
}

// ------------------------------------------------------------------------ events

export function applyEvent(event: Json): void {
  const type = str(pick(event, "event_type")) ?? "unknown";
  const at = str(pick(event, "at")) ?? new Date().toISOString();
  update((s) => {
    if (type !== "stats") {
      // Periodic counters are not news: keep the feed for what happened.
      s.feed = [{ key: ++feedKey, type, at, payload: event }, ...s.feed].slice(0, FEED_SIZE);
    }
    const jobId = str(pick(event, "job_id"));
    const submissionId = str(pick(event, "submission_id"));
    const competitionId = str(pick(event, "competition_id"));
    const validator = str(pick(event, "validator_hotkey"));
    touch(s, jobId && `job:${jobId}`, submissionId && `submission:${submissionId}`);
    switch (type) {
      case "submission_received":
      case "submission_rejected": {
        const sub = toSubmission(event);
        sub.status = type === "submission_rejected" ? "rejected" : (sub.status ?? "pending");
        sub.createdAt = sub.createdAt ?? at;
        touch(s, "submissions");
        s.submissions = [sub, ...s.submissions.filter((x) => x.id !== sub.id)].slice(
          0,
          SUBMISSIONS_KEPT,
        );
        touch(s, competitionId && `competition:${competitionId}`);
        break;
      }
      case "job_created": {
        const job = toJob(event);
        job.createdAt = job.createdAt ?? at;
        job.updatedAt = at;
        s.jobs = new Map(s.jobs).set(job.id, job);
        touch(s, "jobs");
        setSubmissionStatus(s, job.submissionId, "scheduled");
        break;
      }
      case "job_status":
      case "evaluation_completed": {
        if (!jobId || !validator) break;
        const old = s.jobs.get(jobId);
        const job: JobView = old
          ? { ...old, progress: new Map(old.progress) }
          : {
              id: jobId,
              competitionId,
              minerHotkey: str(pick(event, "miner_hotkey")),
              submissionId,
              state: "running",
              progress: new Map(),
            };
        const prev = job.progress.get(validator);
        const state = str(pick(event, "state")) ?? prev?.state ?? "running";
        job.progress.set(validator, {
          hotkey: validator,
          state,
          episodesDone: num(pick(event, "episodes_done")) ?? prev?.episodesDone,
          episodesTotal: num(pick(event, "episodes_total")) ?? prev?.episodesTotal,
          successRate: num(pick(event, "success_rate")) ?? prev?.successRate,
          at,
        });
        job.updatedAt = at;
        job.state =
          str(pick(event, "job_state")) ??
          overallState([...job.progress.values()].map((p) => p.state));
        s.jobs = pruneJobs(new Map(s.jobs).set(jobId, job));
        if (type === "evaluation_completed" || TERMINAL_STATES.has(state)) {
          touch(s, "validators", "jobs", job.competitionId && `competition:${job.competitionId}`);
        }
        break;
      }
      case "episode_completed": {
        if (validator) {
          const v = s.validators.get(validator);
          if (v) {
            const now = Date.now();
            const recent = [...v.recentEpisodes, now].filter((t) => now - t < THROUGHPUT_WINDOW_MS);
            s.validators = new Map(s.validators).set(validator, { ...v, recentEpisodes: recent });
          }
        }
        if (jobId && validator) {
          const job = s.jobs.get(jobId);
          const prev = job?.progress.get(validator);
          const index = num(pick(event, "episode_index"));
          if (job && prev && index !== undefined && (prev.episodesDone ?? 0) < index + 1) {
            const progress = new Map(job.progress).set(validator, {
              ...prev,
              episodesDone: index + 1,
            });
            s.jobs = new Map(s.jobs).set(jobId, { ...job, progress, updatedAt: at });
          }
        }
        break;
      }
      case "leaderboard_updated": {
        touch(s, competitionId && `competition:${competitionId}`, "leaderboards");
        const c = competitionId ? s.competitions.get(competitionId) : undefined;
        if (c) {
          const leaderId = str(pick(event, "leader_submission_id", "leader.submission_id"));
          const old = c.leaderboard ?? { rows: [], pendingCandidates: [] };
          const sameLeader = old.leader?.submissionId === leaderId;
          const leader: LeaderView | undefined = leaderId
            ? {
                ...(sameLeader ? old.leader : {}),
                submissionId: leaderId,
                minerHotkey: str(pick(event, "leader_hotkey", "leader.miner_hotkey")) ??
                  (sameLeader ? old.leader?.minerHotkey : undefined),
              }
            : undefined;
          const entries = pick(event, "entries");
          const board = Array.isArray(entries)
            ? toLeaderboard({ rows: entries }, leader)
            : { ...old, leader };
          // an event's entries are short: keep the name and reasons the REST/snapshot gave
          const before = new Map(old.rows.map((r) => [r.submissionId, r]));
          board.rows = board.rows.map((r) => {
            const prev = before.get(r.submissionId);
            return prev ? { ...r, name: r.name ?? prev.name, reason: r.reason ?? prev.reason, toLead: r.toLead ?? prev.toLead } : r;
          });
          if (!Array.isArray(entries)) {
            board.rows = board.rows.map((r) => ({ ...r, isLeader: r.submissionId === leaderId }));
          }
          s.competitions = new Map(s.competitions).set(c.id, {
            ...c,
            leaderboard: { ...board, pendingCandidates: old.pendingCandidates },
          });
        }
        break;
      }
      case "weights_updated": {
        const w = toWeights({ ...event, computed_at: pick(event, "computed_at", "at") });
        if (w) {
          s.weights = w;
          if (s.weightsHistory.length > 0 && s.weightsHistory[0].weightsId !== w.weightsId) {
            s.weightsHistory = [w, ...s.weightsHistory];
          }
        }
        touch(s, "weights");
        break;
      }
      case "validator_connected":
      case "validator_disconnected": {
        if (!validator) break;
        const old = s.validators.get(validator);
        const connected = type === "validator_connected";
        const v: ValidatorView = old
          ? { ...old }
          : { hotkey: validator, connected, recentEpisodes: [] };
        v.connected = connected;
        v.uid = num(pick(event, "uid")) ?? v.uid;
        v.lastSeenAt = at;
        if (connected) v.connectedAt = at;
        s.validators = new Map(s.validators).set(validator, v);
        touch(s, "validators");
        break;
      }
      case "stats": {
        const stats = pick(event, "stats", "data");
        const fresh = toStats(isObj(stats) ? stats : event);
        s.stats = { ...s.stats, ...stripUndefined(fresh) };
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
export function mergeJobDetail(raw: unknown): void {
  if (!isObj(raw)) return;
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

export function mergeValidators(list: unknown): void {
  update((s) => {
    const next = new Map(s.validators);
    for (const raw of items(list)) {
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

