// View models of jobs, validators, weights, counters and step samples (see model.ts,
// which re-exports them), built from the generated types of the backend's JSON.

import type * as api from "./generated/api";

export const TERMINAL_STATES = new Set(["completed", "failed", "timed_out", "cancelled"]);

function opt<T>(v: T | null | undefined): T | undefined {
  return v ?? undefined;
}

// ------------------------------------------------------------------------- jobs

export interface ValidatorProgress {
  hotkey: string;
  state: string;
  episodesDone?: number;
  episodesTotal?: number;
  successRate?: number;
  at?: string;
}

export interface JobView {
  id: string;
  submissionId?: string;
  competitionId?: string;
  minerHotkey?: string;
  benchmarkId?: string;
  state: string;
  createdAt?: string;
  updatedAt?: string;
  progress: Map<string, ValidatorProgress>;
  /** True once `/jobs/{id}` was merged (assignments and status history). */
  detailLoaded?: boolean;
}

function totalEpisodes(b: api.BenchmarkSpec): number | undefined {
  return b.tasks.length > 0 ? b.episodes_per_task * b.tasks.length : undefined;
}

/** A job of a list, of the snapshot, or of a submission (`JobRow`: no miner). */
export function toJob(raw: api.Job | api.JobRow): JobView {
  return {
    id: raw.id,
    submissionId: String(raw.submission_id),
    competitionId: raw.competition_id,
    minerHotkey: "miner_hotkey" in raw ? raw.miner_hotkey : undefined,
    benchmarkId: raw.benchmark_id,
    state: raw.state,
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    progress: new Map(),
  };
}

/** A job from a `job_created` event (assigned to one validator, or none yet). */
export function toJobEvent(e: api.JobCreatedEvent): JobView {
  const job: JobView = {
    id: e.job_id,
    submissionId: e.submission_id,
    competitionId: e.competition_id,
    minerHotkey: e.miner_hotkey,
    benchmarkId: e.benchmark_id,
    state: "queued",
    createdAt: e.at,
    updatedAt: e.at,
    progress: new Map(),
  };
  if (e.validator_hotkey) {
    job.progress.set(e.validator_hotkey, { hotkey: e.validator_hotkey, state: "assigned" });
  }
  return job;
}

const SETTLED_ASSIGNMENTS = new Set([...TERMINAL_STATES, "expired"]);

/**
 * A job from `/jobs/{id}`: assignments give each validator's state, the status history
 * (ordered by seq) its latest progress, the results its success rate.
 */
export function toJobDetail(raw: api.JobDetail): JobView {
  const job = toJob(raw);
  const total = totalEpisodes(raw.benchmark);
  for (const a of raw.assignments) {
    job.progress.set(a.validator_hotkey, {
      hotkey: a.validator_hotkey,
      state: a.state,
      episodesTotal: total,
    });
  }
  for (const h of raw.status_history) {
    const prev = job.progress.get(h.validator_hotkey);
    job.progress.set(h.validator_hotkey, {
      hotkey: h.validator_hotkey,
      state: prev && SETTLED_ASSIGNMENTS.has(prev.state) ? prev.state : h.state,
      episodesDone: h.episodes_done,
      episodesTotal: h.episodes_total || prev?.episodesTotal,
      successRate: prev?.successRate,
      at: h.at,
    });
  }
  for (const r of raw.results) {
    const prev = job.progress.get(r.validator_hotkey);
    if (prev) job.progress.set(r.validator_hotkey, { ...prev, successRate: opt(r.success_rate) });
  }
  return job;
}

// ------------------------------------------------------------------- validators

export interface ValidatorView {
  hotkey: string;
  uid?: number;
  connected: boolean;
  lastSeenAt?: string;
  connectedAt?: string;
  jobsDone?: number;
  jobsInFlight?: number;
  queueDepth?: number;
  version?: string;
  /** Standing: strikes, suspension, audits and disagreement with the quorum median. */
  strikes?: number;
  suspendedUntil?: string;
  auditsPassed?: number;
  auditsFailed?: number;
  auditPassRate?: number;
  disagreement?: number;
  /** Episodes this dashboard has seen completed by the validator (live throughput). */
  recentEpisodes: number[];
}

export function toValidator(raw: api.Validator): ValidatorView {
  return {
    hotkey: raw.hotkey,
    uid: opt(raw.uid),
    connected: raw.connected,
    lastSeenAt: opt(raw.last_seen_at),
    connectedAt: opt(raw.connected_at),
    jobsDone: raw.jobs_done,
    jobsInFlight: opt(raw.jobs_in_flight),
    queueDepth: opt(raw.queue_depth),
    version: opt(raw.validator_version),
    strikes: raw.strikes,
    suspendedUntil: raw.suspended ? opt(raw.suspended_until) : undefined,
    auditsPassed: raw.audits_passed,
    auditsFailed: raw.audits_failed,
    auditPassRate: opt(raw.audit_pass_rate),
    disagreement: opt(raw.disagreement),
    recentEpisodes: [],
  };
}

// ---------------------------------------------------------------------- weights

export interface WeightsView {
  weightsId: string;
  netuid?: number;
  weights: Map<number, number>;
  computedAt?: string;
  summary?: Record<string, api.WeightShare>;
}

function weightMap(w: Record<string, number>): Map<number, number> {
  return new Map(Object.entries(w).map(([uid, v]) => [Number(uid), v]));
}

export function toWeights(raw: api.WeightSet | null): WeightsView | undefined {
  if (!raw) return undefined;
  return {
    weightsId: raw.weights_id,
    netuid: raw.netuid,
    weights: weightMap(raw.weights),
    computedAt: raw.computed_at,
    summary: raw.summary,
  };
}

export function toWeightsEvent(e: api.WeightsUpdatedEvent): WeightsView {
  return {
    weightsId: e.weights_id,
    netuid: opt(e.netuid),
    weights: weightMap(e.weights),
    computedAt: e.at,
  };
}

// ------------------------------------------------------------------------ stats

export interface StatsView {
  validatorsConnected?: number;
  submissions?: number;
  jobsQueued?: number;
  jobsRunning?: number;
  jobsCompleted?: number;
  episodes?: number;
  stepSamples?: number;
}

/** Counters from `/api/v1/stats`, the snapshot or a `stats` event. */
export function toStats(raw: api.Stats): StatsView {
  const jobs = raw.jobs;
  return {
    validatorsConnected: raw.validators_connected,
    submissions: Object.values(raw.submissions).reduce((a, b) => a + b, 0),
    jobsQueued: jobs.queued ?? 0,
    jobsRunning: jobs.running ?? 0,
    jobsCompleted: jobs.completed ?? 0,
    episodes: raw.episodes,
    stepSamples: raw.step_samples,
  };
}

// --------------------------------------------------------------------- episodes

export interface StepSample {
  step: number;
  observation: number[];
  action: number[];
  reward?: number;
  success?: boolean;
}

/** `/episodes/{id}/steps` pages batches; each batch carries `samples`. */
export function toSteps(raw: api.Page_StepBatch): StepSample[] {
  const out: StepSample[] = raw.items.flatMap((batch) =>
    batch.samples.map((s) => ({
      step: s.step,
      observation: s.observation,
      action: s.action,
      reward: s.reward,
      success: s.success,
    })),
  );
  out.sort((a, b) => a.step - b.step);
  return out;
}
