// Submissions list and one submission: artifact, commitment, score, per-task success,
// failure causes, validator agreement, jobs and episodes.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { useResource } from "../api";
import {
  Async,
  Badge,
  CompetitionLink,
  Empty,
  HotkeyText,
  JobLink,
  KeyValues,
  RateWithInterval,
  SubmissionLink,
  TimeAgo,
  useNow,
} from "../components";
import { bytes, DASH, fixed, humanize, int, pct } from "../format";
import {
  type Json,
  arr,
  bool,
  isObj,
  items,
  num,
  pick,
  str,
  toJob,
  toSubmission,
  toPairedTest,
} from "../model";
import { useStore } from "../store";
import { useListFilters } from "../superseded";
import { EpisodesTable } from "./jobs";
import { pairedSummary } from "./leaderboard";

const STATUSES = ["pending", "rejected", "scheduled", "evaluated", "superseded"];

export function SubmissionsPage() {
  const s = useStore();
  const now = useNow();
  const [status, setStatus] = useState("");
  const { competition, setCompetition, showSuperseded, setShowSuperseded } = useListFilters();
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (competition) q.set("competition_id", competition);
  const list = useResource(
    `submissions?${q}`,
    (raw) => items(raw).map(toSubmission),
    s.touched.get("submissions"),
    1500,
  );
  return (
    <>
      <h1 tabIndex={-1}>Submissions</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label for="sub-status">Status</label>
        <select
          id="sub-status"
          value={status}
          onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value)}
        >
          <option value="">any</option>
          {STATUSES.map((x) => (
            <option key={x} value={x}>
              {x}
            </option>
          ))}
        </select>
        <label for="sub-comp">Competition</label>
        <select
          id="sub-comp"
          value={competition}
          onChange={(e) => setCompetition((e.currentTarget as HTMLSelectElement).value)}
        >
          <option value="">any</option>
          {[...s.competitions.values()].map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </select>
      </form>
      <Async res={list} what="submissions">
        {(all) => {
          // superseded ones (a miner's earlier commitments) are hidden unless asked for
          const hidden = status || showSuperseded ? 0 : all.filter((x) => x.status === "superseded").length;
          const subs = hidden ? all.filter((x) => x.status !== "superseded") : all;
          return (
          <>
          {hidden > 0 && (
            <p class="muted" data-testid="superseded-hidden">
              {hidden} superseded submission{hidden > 1 ? "s" : ""} hidden.{" "}
              <button type="button" class="linklike" onClick={() => setShowSuperseded(true)}>
                Show all
              </button>
            </p>
          )}
          {subs.length === 0 ? (
            <Empty>No submissions match.</Empty>
          ) : (
            <div class="table-wrap">
              <table data-testid="submissions">
                <caption class="sr-only">Submissions, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Submission</th>
                    <th scope="col">Miner</th>
                    <th scope="col">Competition</th>
                    <th scope="col" class="num">
                      Block
                    </th>
                    <th scope="col">Status</th>
                    <th scope="col">Seen</th>
                  </tr>
                </thead>
                <tbody>
                  {subs.map((x) => (
                    <tr key={x.id}>
                      <td>
                        <SubmissionLink id={x.id} />
                      </td>
                      <td>
                        <HotkeyText hotkey={x.minerHotkey} />
                      </td>
                      <td>
                        <CompetitionLink id={x.competitionId} />
                      </td>
                      <td class="num">{int(x.commitmentBlock)}</td>
                      <td>
                        <Badge state={x.status} />
                        {x.rejectionReason && <span class="muted"> {humanize(x.rejectionReason)}</span>}
                      </td>
                      <td>
                        <TimeAgo at={x.createdAt} now={now} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          </>
          );
        }}
      </Async>
    </>
  );
}

// ----------------------------------------------------------------------- detail

interface TaskRow {
  task: string;
  perValidator: Map<string, Json>;
}

export function SubmissionPage(props: { id: string }) {
  const s = useStore();
  const now = useNow();
  const key = s.touched.get(`submission:${props.id}`);
  // Any job of this submission that changes makes the details stale.
  const jobKeys = [...s.jobs.values()]
    .filter((j) => j.submissionId === props.id)
    .map((j) => s.touched.get(`job:${j.id}`) ?? 0);
  const live = Math.max(key ?? 0, ...jobKeys);
  const id = encodeURIComponent(props.id);
  const sub = useResource(`submissions/${id}`, (raw) => raw as Json, live);
  const results = useResource(`results?submission_id=${id}&limit=500`, items, live);
  const episodes = useResource(`episodes?submission_id=${id}&limit=200`, items, live, 2000);

  return (
    <>
      <h1 tabIndex={-1}>Submission #{props.id}</h1>
      <Async res={sub} what="the submission">
        {(raw) => <SubmissionHeader raw={raw} now={now} />}
      </Async>
      <Async res={results} what="results">
        {(list) => <ResultsBreakdown results={list} score={sub.data ? pick(sub.data, "score") : undefined} />}
      </Async>
      {sub.data && <SubmissionJobs raw={sub.data} />}
      <section aria-labelledby="sub-eps-h">
        <h2 id="sub-eps-h">Episodes</h2>
        <Async res={episodes} what="episodes">
          {(list) => <EpisodesTable episodes={list} />}
        </Async>
      </section>
    </>
  );
}

function SubmissionHeader(props: { raw: Json; now: number }) {
  const { raw } = props;
  const sub = toSubmission(raw);
  const artifact = pick(raw, "artifact");
  const a = (k: string) => pick(artifact, k) ?? pick(raw, `artifact_${k}`);
  const size = num(a("size_bytes") ?? pick(raw, "artifact_size"));
  const credited = str(pick(raw, "credited_submission_id", "credited.id", "credited"));
  const score = pick(raw, "score");
  return (
    <div class="two-col">
      <section aria-labelledby="art-h" class="card">
        <h2 id="art-h">Artifact &amp; commitment</h2>
        <KeyValues
          rows={[
            ["Status", <Badge state={sub.status} />],
            ["Miner", <>
              <HotkeyText hotkey={sub.minerHotkey} />
              {sub.minerUid !== undefined && <span class="muted"> uid {sub.minerUid}</span>}
            </>],
            ["Competition", <CompetitionLink id={sub.competitionId} />],
            ["Commitment block", <span data-testid="commitment-block">{int(sub.commitmentBlock)}</span>],
            ["Commitment", <code class="wrap">{str(pick(raw, "commitment")) ?? DASH}</code>],
            ["Registry", str(a("registry")) ?? DASH],
            ["Repository", <span class="mono">{str(a("repo")) ?? DASH}</span>],
            ["Revision", <span class="mono wrap">{str(a("revision")) ?? DASH}</span>],
            ["SHA-256", <code class="wrap">{str(a("sha256")) ?? DASH}</code>],
            ["Size", bytes(size)],
            [
              "Credited to",
              credited && credited !== sub.id ? (
                <>
                  <SubmissionLink id={credited} /> (earlier identical artifact)
                </>
              ) : (
                "this submission (original)"
              ),
            ],
            ["Seen", <TimeAgo at={sub.createdAt} now={props.now} />],
          ]}
        />
        {sub.status === "rejected" && (
          <p class="error" role="note">
            Rejected: {humanize(sub.rejectionReason)}
            {str(pick(raw, "rejection_detail")) && ` — ${str(pick(raw, "rejection_detail"))}`}
          </p>
        )}
      </section>
      <section aria-labelledby="score-h" class="card">
        <h2 id="score-h">Score</h2>
        {isObj(score) ? (
          <KeyValues
            rows={[
              [
                "Success rate",
                <RateWithInterval
                  rate={num(pick(score, "success_rate"))}
                  lo={num(pick(score, "ci_low"))}
                  hi={num(pick(score, "ci_high"))}
                />,
              ],
              ["Episodes", int(num(pick(score, "episodes")))],
              ["Successes", int(num(pick(score, "successes")))],
              ["Validators", int(num(pick(score, "validators")))],
              [
                "Eligible",
                bool(pick(score, "eligible")) === false && str(pick(score, "reason")) ? (
                  <span data-testid="eligibility">no — {str(pick(score, "reason"))}</span>
                ) : (
                  yesNo(bool(pick(score, "eligible")))
                ),
              ],
              ...(bool(pick(score, "eligible")) && str(pick(score, "reason"))
                ? ([
                    [
                      "Standing",
                      <span data-testid="standing">
                        rank {num(pick(score, "rank")) ?? DASH}: {str(pick(score, "reason"))}
                      </span>,
                    ],
                  ] as [string, ComponentChildren][])
                : []),
              ...(str(pick(score, "to_lead"))
                ? ([["To lead", str(pick(score, "to_lead"))]] as [string, string][])
                : []),
              [
                "Original?",
                str(pick(score, "copy_of")) ? (
                  <span data-testid="copy-of">
                    {str(pick(score, "detail.copy_kind")) === "behaviour"
                      ? "behavioural copy of "
                      : "copy of "}
                    <SubmissionLink id={str(pick(score, "copy_of"))} />
                    {str(pick(score, "detail.copy_kind")) === "behaviour"
                      ? " (same actions on the same seeds): earns nothing"
                      : " (same artifact): earns nothing"}
                  </span>
                ) : (
                  "yes"
                ),
              ],
              [
                "Against the leader",
                toPairedTest(pick(score, "detail.vs_leader")) ? (
                  pairedSummary(toPairedTest(pick(score, "detail.vs_leader")) ?? {})
                ) : (
                  DASH
                ),
              ],
              [
                "Validator agreement",
                bool(pick(score, "disagreement")) ? (
                  <Badge state="expired" label="disagreement flagged" />
                ) : bool(pick(score, "disagreement")) === false ? (
                  <Badge state="completed" label="agree" />
                ) : (
                  DASH
                ),
              ],
            ]}
          />
        ) : (
          <p class="muted" data-testid="not-scored">
            {sub.status === "rejected"
              ? `Never scored: the submission was rejected (${humanize(sub.rejectionReason)}).`
              : sub.status === "superseded"
                ? "Not scored: a later commitment of the same miner replaced it."
                : "Not scored yet: the evaluation is in progress."}
          </p>
        )}
      </section>
    </div>
  );
}

function yesNo(v: boolean | undefined): string {
  return v === undefined ? DASH : v ? "yes" : "no";
}

function ResultsBreakdown(props: { results: Json[]; score: unknown }) {
  const results = props.results;
  // Validators of this submission and their overall metrics.
  const validators = results.map((r) => ({
    hotkey: str(pick(r, "validator_hotkey")) ?? "?",
    job: str(pick(r, "job_id")),
    state: str(pick(r, "state")),
    overall: pick(r, "metrics.overall"),
    perTask: pick(r, "metrics.per_task"),
    rate: num(pick(r, "success_rate", "metrics.overall.success_rate")),
  }));
  const tasks = new Map<string, TaskRow>();
  const failures = new Map<string, number>();
  for (const v of validators) {
    if (isObj(v.perTask)) {
      for (const [task, m] of Object.entries(v.perTask)) {
        if (!isObj(m)) continue;
        const row = tasks.get(task) ?? { task, perValidator: new Map() };
        row.perValidator.set(v.hotkey, m);
        tasks.set(task, row);
      }
    }
    const f = pick(v.overall, "failures");
    if (isObj(f)) {
      for (const [cause, n] of Object.entries(f)) failures.set(cause, (failures.get(cause) ?? 0) + (num(n) ?? 0));
    }
  }
  // Score detail may carry the aggregated per-task breakdown.
  const scorePerTask = pick(props.score, "per_task", "detail.per_task");
  const rates = validators.map((v) => v.rate).filter((x): x is number => x !== undefined);
  const spread = rates.length > 1 ? Math.max(...rates) - Math.min(...rates) : undefined;
  const hotkeys = validators.map((v) => v.hotkey);
  const taskRows = [...tasks.values()].sort((a, b) => a.task.localeCompare(b.task));

  return (
    <>
      <section aria-labelledby="tasks-h">
        <h2 id="tasks-h">Per-task success</h2>
        {taskRows.length === 0 ? (
          <Empty>No per-task results yet.</Empty>
        ) : (
          <div class="table-wrap">
            <table data-testid="per-task">
              <caption class="sr-only">Success rate per task, aggregated and per validator</caption>
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">Success rate (median) [95% CI]</th>
                  {hotkeys.map((h) => (
                    <th scope="col" key={h}>
                      <HotkeyText hotkey={h} />
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {taskRows.map((row) => {
                  const agg = pick(scorePerTask, row.task);
                  const ms = [...row.perValidator.values()];
                  const med = median(ms.map((m) => num(pick(m, "success_rate"))));
                  const first = ms[0];
                  return (
                    <tr key={row.task}>
                      <th scope="row">{row.task}</th>
                      <td>
                        <RateWithInterval
                          rate={num(pick(agg, "success_rate")) ?? med}
                          lo={num(pick(agg, "ci_low")) ?? (ms.length === 1 ? num(pick(first, "ci_low")) : undefined)}
                          hi={num(pick(agg, "ci_high")) ?? (ms.length === 1 ? num(pick(first, "ci_high")) : undefined)}
                        />
                      </td>
                      {hotkeys.map((h) => {
                        const m = row.perValidator.get(h);
                        return (
                          <td key={h}>
                            {m
                              ? `${pct(num(pick(m, "success_rate")))} (${num(pick(m, "successes")) ?? "?"}/${num(pick(m, "scored_episodes", "episodes")) ?? "?"})`
                              : DASH}
                          </td>
                        );
                      })}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <div class="two-col wide-right">
        <section aria-labelledby="fail-h" class="card">
          <h2 id="fail-h">Failure causes</h2>
          {failures.size === 0 ? (
            <Empty>
              {num(pick(props.score, "episodes")) !== undefined &&
              (num(pick(props.score, "successes")) ?? 0) < (num(pick(props.score, "episodes")) ?? 0)
                ? "No faults: the unsuccessful episodes ran to their step budget without a crash, timeout or invalid action."
                : "No failures recorded."}
            </Empty>
          ) : (
            <ul class="bars" data-testid="failures">
              {[...failures.entries()]
                .sort((a, b) => b[1] - a[1])
                .map(([cause, n]) => (
                  <li key={cause}>
                    <span class="bar-label">
                      {humanize(cause)}
                      <span class="muted">{AGENT_FAULTS.has(cause) ? " (agent fault)" : " (infrastructure, not scored)"}</span>
                    </span>
                    <span class="bar-value">{n}</span>
                  </li>
                ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="agree-h" class="card">
          <h2 id="agree-h">Validator agreement</h2>
          {validators.length === 0 ? (
            <Empty>No validator has reported yet.</Empty>
          ) : (
            <>
              <div class="table-wrap">
              <table data-testid="agreement">
                <caption class="sr-only">Overall result of each validator</caption>
                <thead>
                  <tr>
                    <th scope="col">Validator</th>
                    <th scope="col">Job</th>
                    <th scope="col">State</th>
                    <th scope="col">Success rate [95% CI]</th>
                    <th scope="col" class="num">
                      Mean return
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {validators.map((v, i) => (
                    <tr key={`${v.hotkey}-${v.job ?? i}`}>
                      <td>
                        <HotkeyText hotkey={v.hotkey} />
                      </td>
                      <td>
                        <JobLink id={v.job} />
                      </td>
                      <td>
                        <Badge state={v.state} />
                      </td>
                      <td>
                        <RateWithInterval
                          rate={v.rate}
                          lo={num(pick(v.overall, "ci_low"))}
                          hi={num(pick(v.overall, "ci_high"))}
                        />
                      </td>
                      <td class="num">{fixed(num(pick(v.overall, "mean_return")))}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              </div>
              <p class="muted">
                {spread === undefined
                  ? "One validator so far: agreement is checked once several have reported."
                  : `Spread between validators: ${pct(spread)}.`}
              </p>
            </>
          )}
        </section>
      </div>
    </>
  );
}

const AGENT_FAULTS = new Set([
  "agent_timeout",
  "agent_crash",
  "invalid_action",
  "protocol_violation",
  "invalid_bundle",
]);

function median(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function SubmissionJobs(props: { raw: Json }) {
  const jobs = arr(pick(props.raw, "jobs")).filter(isObj).map(toJob);
  const s = useStore();
  if (jobs.length === 0) return null;
  return (
    <section aria-labelledby="sub-jobs-h">
      <h2 id="sub-jobs-h">Jobs</h2>
      <ul class="plain">
        {jobs.map((j) => (
          <li key={j.id}>
            <JobLink id={j.id} /> {j.benchmarkId ?? ""} <Badge state={s.jobs.get(j.id)?.state ?? j.state} />
          </li>
        ))}
      </ul>
    </section>
  );
}
