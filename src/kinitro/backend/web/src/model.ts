// Front-end view models and the functions that build them from the backend's JSON.
//
// The backend's responses and realtime messages are typed by `generated/api.ts`, which
// `scripts/build-web` generates from the backend's own schemas (docs/dashboard.md): a
// field renamed in Python fails this file's type check instead of showing "—" on a page.
// The views below only reshape (camelCase, ids as text, maps by id) what pages show.

import type * as api from "./generated/api";

export type { api };
export * from "./records";

/** A response body as the generated type of its route (the backend's schema says so). */
export function typed<T>(raw: unknown): T {
  return raw as T;
}

/** `undefined` for null: the views leave unknown values out. */
function opt<T>(v: T | null | undefined): T | undefined {
  return v ?? undefined;
}

function id(v: string | number | null | undefined): string | undefined {
  return v === null || v === undefined ? undefined : String(v);
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

export function toPairedTest(raw: api.PairedTest | null | undefined): PairedTestView | undefined {
  if (!raw) return undefined;
  return {
    sharedEpisodes: raw.shared_episodes,
    sharedRounds: raw.shared_rounds,
    wins: raw.wins,
    losses: raw.losses,
    pValue: raw.p_value,
    better: raw.better,
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

export function toBenchmark(raw: api.BenchmarkSpec): BenchmarkView {
  return {
    benchmarkId: raw.benchmark_id,
    tasks: raw.tasks,
    episodesPerTask: raw.episodes_per_task,
    maxSteps: raw.max_steps,
    knobs: knobsOf(raw),
  };
}

function range(r: [number, number]): string | undefined {
  return r[0] !== 1 || r[1] !== 1 ? `×[${r[0]}, ${r[1]}]` : undefined;
}

/** The benchmark's competition knobs (BenchmarkSpec fields and `conditions`), in words. */
export function knobsOf(raw: api.BenchmarkSpec): string[] {
  const out: string[] = [];
  if (raw.observation_mode !== "state") {
    const size = raw.resolution ? `${raw.resolution[0]}×${raw.resolution[1]}` : "84×84";
    out.push(`${raw.observation_mode} ${size} (${raw.camera ?? "corner"} camera)`);
  }
  if (raw.reveal_task_name === false) out.push("task name hidden");
  const c = raw.conditions;
  if (c.reveal_goal === false) out.push("goal hidden");
  if (c.observation_noise) out.push(`observation noise σ ${c.observation_noise}`);
  if (c.action_noise) out.push(`action noise σ ${c.action_noise}`);
  const delay = c.action_delay;
  if (delay) out.push(`action delay ${delay} step${delay === 1 ? "" : "s"}`);
  for (const name of ["mass", "friction", "damping"] as const) {
    const r = range(c.dynamics[name]);
    if (r) out.push(`${name} ${r}`);
  }
  return out;
}

export function toBaselines(raw: api.Baselines | null): BaselinesView | undefined {
  if (!raw) return undefined;
  return {
    agents: ["zero", "random", "expert"]
      .filter((a) => raw.agents[a] !== undefined)
      .map((a) => {
        const s = raw.agents[a];
        return {
          agent: a,
          successRate: s.success_rate,
          ciLow: s.ci_low,
          ciHigh: s.ci_high,
          episodes: s.episodes,
        };
      }),
    episodesPerTask: raw.episodes_per_task,
    computedAt: raw.computed_at,
  };
}

export function toLeader(raw: api.LeaderDecision | null | undefined): LeaderView | undefined {
  if (!raw) return undefined;
  return {
    submissionId: String(raw.submission_id),
    minerHotkey: opt(raw.miner_hotkey),
    successRate: raw.success_rate,
    ciLow: raw.ci_low,
    ciHigh: raw.ci_high,
    since: raw.decided_at ?? raw.created_at,
  };
}

/** A row of the REST leaderboard or of the snapshot's. */
export function toBoardRow(r: api.LeaderboardRow): LeaderboardRow {
  return {
    rank: opt(r.rank),
    submissionId: String(r.submission_id),
    minerHotkey: r.miner_hotkey,
    minerUid: opt(r.miner_uid),
    successRate: r.success_rate,
    ciLow: r.ci_low,
    ciHigh: r.ci_high,
    episodes: r.episodes,
    validators: r.validators,
    eligible: r.eligible,
    disagreement: r.disagreement,
    copyOf: id(r.copy_of),
    copyKind: opt(r.detail.copy_kind),
    vsLeader: toPairedTest(r.vs_leader),
    quorumHave: r.quorum?.have,
    quorumNeed: r.quorum?.need,
    name: opt(r.artifact_repo),
    reason: opt(r.reason),
    toLead: opt(r.to_lead),
    isLeader: r.is_leader,
  };
}

/** A row of a `leaderboard_updated` event (short: no name nor reasons). */
export function toEntryRow(e: api.LeaderboardEntry): LeaderboardRow {
  return {
    rank: e.rank,
    submissionId: e.submission_id,
    minerHotkey: e.miner_hotkey,
    minerUid: opt(e.miner_uid),
    successRate: opt(e.success_rate),
    ciLow: opt(e.ci_low),
    ciHigh: opt(e.ci_high),
    episodes: opt(e.episodes),
    validators: opt(e.validators),
    eligible: opt(e.eligible),
    quorumHave: e.quorum?.have,
    quorumNeed: e.quorum?.need,
    isLeader: e.is_leader,
  };
}

function toCandidate(c: api.LeaderDecision): CandidateView {
  return {
    id: String(c.id),
    submissionId: String(c.submission_id),
    minerHotkey: opt(c.miner_hotkey),
    successRate: c.success_rate,
    ciLow: c.ci_low,
    status: c.status,
  };
}

/** Rows in rank order, with the leader's current score (the decision keeps the rate it
 * had when it was crowned). */
export function boardOf(
  rows: LeaderboardRow[],
  leader: LeaderView | undefined,
  pending: CandidateView[] = [],
): LeaderboardView {
  // Rows without a rank keep the backend's order (eligible first, then by success rate).
  rows.forEach((r, i) => {
    r.rank ??= i + 1;
  });
  rows.sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
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
  return { rows, leader: current, pendingCandidates: pending };
}

/** `GET /competitions/{id}/leaderboard`. */
export function toLeaderboard(raw: api.Leaderboard): LeaderboardView {
  return boardOf(
    raw.rows.map(toBoardRow),
    toLeader(raw.leader),
    raw.pending_candidates.map(toCandidate),
  );
}

export function toCompetition(raw: api.Competition, board?: api.LeaderboardRow[]): CompetitionView {
  const leader = toLeader(raw.leader);
  return {
    id: raw.id,
    name: raw.name || raw.id,
    description: raw.description,
    active: raw.active,
    points: raw.points,
    minSuccessRate: raw.min_success_rate,
    minValidators: opt(raw.min_validators),
    minEpisodes: raw.min_episodes,
    minLeaderScore: raw.min_leader_score,
    approvalMode: raw.approval_mode,
    replication: opt(raw.replication),
    maxExpertBaseline: opt(raw.max_expert_baseline),
    baselines: toBaselines(raw.baselines),
    benchmarks: raw.benchmarks.map(toBenchmark),
    leader,
    leaderboard: board === undefined ? undefined : boardOf(board.map(toBoardRow), leader),
  };
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

export function toSubmission(raw: api.Submission): SubmissionSummary {
  return {
    id: String(raw.id),
    competitionId: opt(raw.competition_id),
    minerHotkey: raw.miner_hotkey,
    minerUid: opt(raw.miner_uid),
    status: raw.status,
    commitmentBlock: raw.commitment_block,
    rejectionReason: opt(raw.rejection_reason),
    createdAt: raw.created_at,
  };
}

/** A submission from a `submission_received` / `submission_rejected` event. */
export function toSubmissionEvent(
  e: api.SubmissionReceivedEvent | api.SubmissionRejectedEvent,
): SubmissionSummary {
  const rejected = e.event_type === "submission_rejected";
  return {
    id: e.submission_id ?? "?",
    competitionId: opt(e.competition_id),
    minerHotkey: e.miner_hotkey,
    minerUid: opt(e.miner_uid),
    status: rejected ? "rejected" : "pending",
    commitmentBlock: opt(e.commitment_block),
    rejectionReason: rejected ? e.reason : undefined,
    createdAt: e.at,
  };
}
