// Front-end view models and the normalisers that build them from the backend's JSON.
//
// The REST API and the realtime snapshot are the source of truth (docs/backend.md);
// everything is read through these functions so that the pages never touch raw JSON
// and a renamed or missing field degrades to "—" instead of breaking a page.

export type Json = Record<string, unknown>;

export const TERMINAL_STATES = new Set(["completed", "failed", "timed_out", "cancelled"]);

export function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

export function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

export function bool(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** First defined value among `keys` of `o` (dotted paths allowed: "leader.hotkey"). */
export function pick(o: unknown, ...keys: string[]): unknown {
  for (const key of keys) {
    let cur: unknown = o;
    for (const part of key.split(".")) {
      cur = isObj(cur) ? cur[part] : undefined;
    }
    if (cur !== undefined && cur !== null) return cur;
  }
  return undefined;
}

/** Items of a paginated list (`{items: [...]}`) or a plain array. */
export function items(v: unknown): Json[] {
  const list = Array.isArray(v) ? v : arr(pick(v, "items"));
  return list.filter(isObj);
}

// ------------------------------------------------------------------ competitions

export interface BenchmarkView {
  benchmarkId: string;
  tasks: string[];
  episodesPerTask?: number;
  maxSteps?: number;
  /** Competition knobs in words ("goal hidden", "action delay 2 steps", …). */
  knobs: string[];
}

export interface BaselineView {
  agent: string;
  successRate?: number;
  ciLow?: number;
  ciHigh?: number;
  episodes?: number;
}

export interface BaselinesView {
  agents: BaselineView[];
  episodesPerTask?: number;
  computedAt?: string;
}

export interface CompetitionView {
  id: string;
  name: string;
  description?: string;
  active?: boolean;
  points?: number;
  minSuccessRate?: number;
  minValidators?: number;
  minEpisodes?: number;
  minLeaderScore?: number;
  approvalMode?: string;
  replication?: number;
  maxExpertBaseline?: number;
  baselines?: BaselinesView;
  benchmarks: BenchmarkView[];
  leader?: LeaderView;
  leaderboard?: LeaderboardView;
}

export interface LeaderboardRow {
  rank?: number;
  submissionId?: string;
  minerHotkey?: string;
  minerUid?: number;
  successRate?: number;
  ciLow?: number;
  ciHigh?: number;
  episodes?: number;
  validators?: number;
  eligible?: boolean;
  disagreement?: boolean;
  copyOf?: string;
  /** "artifact" (same sha256) or "behaviour" (same actions on the same seeds). */
  copyKind?: string;
  /** A qualified challenger's paired test against the leader (`vs_leader`). */
  vsLeader?: PairedTestView;
  /** Results in / needed before the score counts (`quorum` of the API row or event). */
  quorumHave?: number;
  quorumNeed?: number;
  /** The miner's name: the repository its commitment pins (`artifact_repo`). */
  name?: string;
  /** Why it is not eligible or not leading, and what it would take (`reason`, `to_lead`). */
  reason?: string;
  toLead?: string;
  isLeader: boolean;
}

/** "awaiting quorum (1/3)" while a submission's jobs lack validators' results. */
export function awaitingQuorum(r: LeaderboardRow): string | undefined {
  if (r.quorumHave === undefined || r.quorumNeed === undefined) return undefined;
  return r.quorumHave < r.quorumNeed ? `awaiting quorum (${r.quorumHave}/${r.quorumNeed})` : undefined;
}

export interface PairedTestView {
  sharedEpisodes?: number;
  sharedRounds?: number;
  wins?: number;
  losses?: number;
  pValue?: number;
  better?: boolean;
}

export function toPairedTest(raw: unknown): PairedTestView | undefined {
  if (!isObj(raw)) return undefined;
  return {
    sharedEpisodes: num(pick(raw, "shared_episodes")),
    sharedRounds: num(pick(raw, "shared_rounds")),
    wins: num(pick(raw, "wins")),
    losses: num(pick(raw, "losses")),
    pValue: num(pick(raw, "p_value")),
    better: bool(pick(raw, "better")),
  };
}

export interface LeaderView {
  /** Success rate when it was crowned. */
  crownedRate?: number;
  submissionId?: string;
  minerHotkey?: string;
  successRate?: number;
  ciLow?: number;
  ciHigh?: number;
  since?: string;
}

export interface CandidateView {
  id?: string;
  submissionId?: string;
  minerHotkey?: string;
  successRate?: number;
  ciLow?: number;
  status?: string;
}

export interface LeaderboardView {
  rows: LeaderboardRow[];
  leader?: LeaderView;
  pendingCandidates: CandidateView[];
}

export function toBenchmark(raw: unknown): BenchmarkView {
  return {
    benchmarkId: str(pick(raw, "benchmark_id", "id")) ?? "?",
    tasks: arr(pick(raw, "tasks")).map((t) => String(t)),
    episodesPerTask: num(pick(raw, "episodes_per_task")),
    maxSteps: num(pick(raw, "max_steps")),
    knobs: knobsOf(raw),
  };
}

function range(raw: unknown): string | undefined {
  const r = arr(raw).map((x) => num(x));
  return r.length === 2 && (r[0] !== 1 || r[1] !== 1) ? `×[${r[0]}, ${r[1]}]` : undefined;
}

/** The benchmark's competition knobs (BenchmarkSpec fields and `conditions`), in words. */
export function knobsOf(raw: unknown): string[] {
  const out: string[] = [];
  const mode = str(pick(raw, "observation_mode"));
  if (mode && mode !== "state") {
    const res = arr(pick(raw, "resolution")).map((x) => num(x));
    const size = res.length === 2 ? `${res[0]}×${res[1]}` : "84×84";
    out.push(`${mode} ${size} (${str(pick(raw, "camera")) ?? "corner"} camera)`);
  }
  if (bool(pick(raw, "reveal_task_name")) === false) out.push("task name hidden");
  const c = pick(raw, "conditions");
  if (bool(pick(c, "reveal_goal")) === false) out.push("goal hidden");
  const obs = num(pick(c, "observation_noise"));
  if (obs) out.push(`observation noise σ ${obs}`);
  const act = num(pick(c, "action_noise"));
  if (act) out.push(`action noise σ ${act}`);
  const delay = num(pick(c, "action_delay"));
  if (delay) out.push(`action delay ${delay} step${delay === 1 ? "" : "s"}`);
  for (const name of ["mass", "friction", "damping"]) {
    const r = range(pick(c, `dynamics.${name}`));
    if (r) out.push(`${name} ${r}`);
  }
  return out;
}

export function toBaselines(raw: unknown): BaselinesView | undefined {
  if (!isObj(raw)) return undefined;
  const agents = pick(raw, "agents");
  return {
    agents: ["zero", "random", "expert"]
      .filter((a) => isObj(pick(agents, a)))
      .map((a) => ({
        agent: a,
        successRate: num(pick(agents, `${a}.success_rate`)),
        ciLow: num(pick(agents, `${a}.ci_low`)),
        ciHigh: num(pick(agents, `${a}.ci_high`)),
        episodes: num(pick(agents, `${a}.episodes`)),
      })),
    episodesPerTask: num(pick(raw, "episodes_per_task")),
    computedAt: str(pick(raw, "computed_at")),
  };
}

export function toLeader(raw: unknown): LeaderView | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) {
    const id = str(raw);
    return id === undefined ? undefined : { submissionId: id };
  }
  return {
    submissionId: str(pick(raw, "submission_id", "submission.id", "leader_submission_id", "id")),
    minerHotkey: str(pick(raw, "miner_hotkey", "hotkey", "leader_hotkey", "submission.miner_hotkey")),
    successRate: num(pick(raw, "success_rate")),
    ciLow: num(pick(raw, "ci_low")),
    ciHigh: num(pick(raw, "ci_high")),
    since: str(pick(raw, "since", "decided_at", "created_at")),
  };
}

export function toLeaderboard(raw: unknown, fallbackLeader?: LeaderView): LeaderboardView {
  const leader = toLeader(pick(raw, "leader")) ?? fallbackLeader;
  const rows = (Array.isArray(raw) ? raw : arr(pick(raw, "rows", "items", "entries")))
    .filter(isObj)
    .map((r): LeaderboardRow => {
      const submissionId = str(pick(r, "submission_id", "submission.id", "submission"));
      return {
        rank: num(pick(r, "rank")),
        submissionId,
        minerHotkey: str(pick(r, "miner_hotkey", "miner.hotkey", "miner", "hotkey")),
        minerUid: num(pick(r, "miner_uid", "miner.uid", "uid")),
        successRate: num(pick(r, "success_rate")),
        ciLow: num(pick(r, "ci_low")),
        ciHigh: num(pick(r, "ci_high")),
        episodes: num(pick(r, "episodes")),
        validators: num(pick(r, "validators", "n_validators")),
        eligible: bool(pick(r, "eligible")),
        disagreement: bool(pick(r, "disagreement")),
        copyOf: str(pick(r, "copy_of")),
        copyKind: str(pick(r, "copy_kind", "detail.copy_kind")),
        vsLeader: toPairedTest(pick(r, "vs_leader", "detail.vs_leader")),
        quorumHave: num(pick(r, "quorum.have", "detail.quorum.have")),
        quorumNeed: num(pick(r, "quorum.need", "detail.quorum.need")),
        name: str(pick(r, "artifact_repo", "repo")),
        reason: str(pick(r, "reason")),
        toLead: str(pick(r, "to_lead")),
        isLeader:
          bool(pick(r, "is_leader", "leader")) ??
          (leader?.submissionId !== undefined && leader.submissionId === submissionId),
      };
    });
  // Rows without a rank keep the backend's order (eligible first, then by success rate).
  rows.forEach((r, i) => {
    r.rank ??= i + 1;
  });
  rows.sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
  // The leader's current score is its leaderboard row (the decision keeps the rate it had
  // when it was crowned).
  const row = rows.find((r) => r.isLeader);
  const current =
    row?.successRate !== undefined
      ? {
          ...leader,
          crownedRate: leader?.crownedRate ?? leader?.successRate,
          successRate: row.successRate,
          ciLow: row.ciLow,
          ciHigh: row.ciHigh,
        }
      : leader;
  return {
    rows,
    leader: current,
    pendingCandidates: arr(pick(raw, "pending_candidates", "candidates"))
      .filter(isObj)
      .map((c) => ({
        id: str(pick(c, "id", "candidate_id")),
        submissionId: str(pick(c, "submission_id")),
        minerHotkey: str(pick(c, "miner_hotkey", "hotkey")),
        successRate: num(pick(c, "success_rate")),
        ciLow: num(pick(c, "ci_low")),
        status: str(pick(c, "status")),
      })),
  };
}

export function toCompetition(raw: unknown): CompetitionView {
  const lb = pick(raw, "leaderboard");
  const leader = toLeader(pick(raw, "leader", "current_leader"));
  const view: CompetitionView = {
    id: str(pick(raw, "id", "competition_id")) ?? "?",
    name: str(pick(raw, "name")) ?? str(pick(raw, "id")) ?? "?",
    description: str(pick(raw, "description")),
    active: bool(pick(raw, "active")),
    points: num(pick(raw, "points")),
    minSuccessRate: num(pick(raw, "min_success_rate")),
    minValidators: num(pick(raw, "min_validators")),
    minEpisodes: num(pick(raw, "min_episodes")),
    minLeaderScore: num(pick(raw, "min_leader_score")),
    approvalMode: str(pick(raw, "approval_mode")),
    replication: num(pick(raw, "replication")),
    maxExpertBaseline: num(pick(raw, "max_expert_baseline")),
    baselines: toBaselines(pick(raw, "baselines")),
    benchmarks: arr(pick(raw, "benchmarks")).map(toBenchmark),
    leader,
    leaderboard: lb === undefined ? undefined : toLeaderboard(lb, leader),
  };
  return view;
}

// ------------------------------------------------------------------ submissions

export interface SubmissionSummary {
  id: string;
  competitionId?: string;
  minerHotkey?: string;
  minerUid?: number;
  status?: string;
  commitmentBlock?: number;
  rejectionReason?: string;
  createdAt?: string;
}

export function toSubmission(raw: Json): SubmissionSummary {
  return {
    id: str(pick(raw, "id", "submission_id")) ?? "?",
    competitionId: str(pick(raw, "competition_id")),
    minerHotkey: str(pick(raw, "miner_hotkey")),
    minerUid: num(pick(raw, "miner_uid")),
    status: str(pick(raw, "status")),
    commitmentBlock: num(pick(raw, "commitment_block", "block")),
    rejectionReason: str(pick(raw, "rejection_reason", "reason")),
    createdAt: str(pick(raw, "created_at", "at")),
  };
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

export function toJob(raw: Json): JobView {
  const job: JobView = {
    id: str(pick(raw, "id", "job_id")) ?? "?",
    submissionId: str(pick(raw, "submission_id")),
    competitionId: str(pick(raw, "competition_id")),
    minerHotkey: str(pick(raw, "miner_hotkey")),
    benchmarkId: str(pick(raw, "benchmark_id", "benchmark.benchmark_id")),
    state: str(pick(raw, "state")) ?? "queued",
    createdAt: str(pick(raw, "created_at")),
    updatedAt: str(pick(raw, "updated_at")),
    progress: new Map(),
  };
  const total =
    num(pick(raw, "episodes_total")) ?? totalEpisodes(pick(raw, "benchmark")) ?? undefined;
  const assigned = [...arr(pick(raw, "validators"))];
  const single = str(pick(raw, "validator_hotkey"));
  if (single) assigned.push(single);
  for (const v of assigned) {
    const hotkey = str(v) ?? str(pick(v, "hotkey", "validator_hotkey"));
    if (hotkey) job.progress.set(hotkey, { hotkey, state: "assigned", episodesTotal: total });
  }
  for (const a of arr(pick(raw, "assignments", "progress", "validator_progress"))) {
    const hotkey = str(pick(a, "validator_hotkey", "hotkey", "validator"));
    if (!hotkey) continue;
    job.progress.set(hotkey, {
      hotkey,
      state: str(pick(a, "state")) ?? "assigned",
      episodesDone: num(pick(a, "episodes_done")),
      episodesTotal: num(pick(a, "episodes_total")) ?? total,
      successRate: num(pick(a, "success_rate")),
      at: str(pick(a, "at", "updated_at", "last_status_at")),
    });
  }
  return job;
}

const SETTLED_ASSIGNMENTS = new Set([...TERMINAL_STATES, "expired"]);

/**
 * A job from `/jobs/{id}`: assignments give each validator's state, the status history
 * (ordered by seq) its latest progress.
 */
export function toJobDetail(raw: unknown): JobView {
  const job = toJob(isObj(raw) ? raw : {});
  for (const h of arr(pick(raw, "status_history"))) {
    const hotkey = str(pick(h, "validator_hotkey"));
    if (!hotkey) continue;
    const prev = job.progress.get(hotkey);
    const reported = str(pick(h, "state")) ?? "running";
    job.progress.set(hotkey, {
      hotkey,
      state: prev && SETTLED_ASSIGNMENTS.has(prev.state) ? prev.state : reported,
      episodesDone: num(pick(h, "episodes_done")),
      episodesTotal: num(pick(h, "episodes_total")) ?? prev?.episodesTotal,
      successRate: prev?.successRate,
      at: str(pick(h, "at")),
    });
  }
  for (const r of arr(pick(raw, "results"))) {
    const hotkey = str(pick(r, "validator_hotkey"));
    const prev = hotkey ? job.progress.get(hotkey) : undefined;
    if (hotkey && prev) {
      job.progress.set(hotkey, {
        ...prev,
        successRate: num(pick(r, "success_rate", "metrics.overall.success_rate")),
      });
    }
  }
  return job;
}

function totalEpisodes(benchmark: unknown): number | undefined {
  const perTask = num(pick(benchmark, "episodes_per_task"));
  const tasks = arr(pick(benchmark, "tasks")).length;
  return perTask !== undefined && tasks > 0 ? perTask * tasks : undefined;
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

export function toValidator(raw: Json): ValidatorView {
  return {
    hotkey: str(pick(raw, "hotkey", "validator_hotkey")) ?? "?",
    uid: num(pick(raw, "uid")),
    connected: bool(pick(raw, "connected")) ?? false,
    lastSeenAt: str(pick(raw, "last_seen_at", "last_seen")),
    connectedAt: str(pick(raw, "connected_at")),
    jobsDone: num(pick(raw, "jobs_done")),
    jobsInFlight: num(pick(raw, "jobs_in_flight")),
    queueDepth: num(pick(raw, "queue_depth")),
    version: str(pick(raw, "version", "validator_version")),
    strikes: num(pick(raw, "strikes")),
    suspendedUntil: bool(pick(raw, "suspended")) ? str(pick(raw, "suspended_until")) : undefined,
    auditsPassed: num(pick(raw, "audits_passed")),
    auditsFailed: num(pick(raw, "audits_failed")),
    auditPassRate: num(pick(raw, "audit_pass_rate")),
    disagreement: num(pick(raw, "disagreement")),
    recentEpisodes: [],
  };
}

// ---------------------------------------------------------------------- weights

export interface WeightsView {
  weightsId: string;
  netuid?: number;
  weights: Map<number, number>;
  computedAt?: string;
  summary?: unknown;
}

export function toWeights(raw: unknown): WeightsView | undefined {
  if (!isObj(raw)) return undefined;
  const w = pick(raw, "weights");
  const weights = new Map<number, number>();
  if (isObj(w)) {
    for (const [uid, value] of Object.entries(w)) {
      const u = num(uid);
      const v = num(value);
      if (u !== undefined && v !== undefined) weights.set(u, v);
    }
  }
  return {
    weightsId: str(pick(raw, "weights_id", "id")) ?? "?",
    netuid: num(pick(raw, "netuid")),
    weights,
    computedAt: str(pick(raw, "computed_at", "at")),
    summary: pick(raw, "summary", "competition_summary"),
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

function total(v: unknown): number | undefined {
  if (isObj(v)) {
    let sum = 0;
    for (const x of Object.values(v)) sum += num(x) ?? 0;
    return sum;
  }
  return num(v);
}

/** Counters from `/api/v1/stats` (nested counts by status/state) or a `stats` event. */
export function toStats(raw: unknown): StatsView {
  if (!isObj(raw)) return {};
  const jobs = pick(raw, "jobs");
  const byState = (state: string) => (isObj(jobs) ? (num(jobs[state]) ?? 0) : undefined);
  return {
    validatorsConnected: num(pick(raw, "validators_connected", "connected_validators")),
    submissions: num(pick(raw, "submissions_total")) ?? total(pick(raw, "submissions")),
    jobsQueued: num(pick(raw, "jobs_queued")) ?? byState("queued"),
    jobsRunning: num(pick(raw, "jobs_running")) ?? byState("running"),
    jobsCompleted: num(pick(raw, "jobs_completed")) ?? byState("completed"),
    episodes: num(pick(raw, "episodes_completed", "episodes")),
    stepSamples: num(pick(raw, "step_samples", "steps")),
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

export function toSteps(raw: unknown): StepSample[] {
  // `/episodes/{id}/steps` pages batches: each batch carries `samples`.
  const out: StepSample[] = [];
  for (const batch of items(raw)) {
    const samples = arr(pick(batch, "samples"));
    const list = samples.length > 0 ? samples : [batch];
    for (const s of list) {
      if (!isObj(s)) continue;
      const step = num(pick(s, "step"));
      if (step === undefined) continue;
      out.push({
        step,
        observation: arr(pick(s, "observation")).map((x) => num(x) ?? NaN),
        action: arr(pick(s, "action")).map((x) => num(x) ?? NaN),
        reward: num(pick(s, "reward")),
        success: bool(pick(s, "success")),
      });
    }
  }
  out.sort((a, b) => a.step - b.step);
  return out;
}
