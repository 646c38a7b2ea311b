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
import { bytes, DASH, humanize, int } from "../format";
import type * as api from "../generated/api";
import { toJob, toPairedTest, toSubmission, typed } from "../model";
import { useStore } from "../store";
import { useListFilters } from "../superseded";
import { EpisodesTable } from "./jobs";
import { pairedSummary } from "./leaderboard";
import { ResultsBreakdown } from "./results";

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
    (raw: api.Page_Submission) => raw.items.map(toSubmission),
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
  const sub = useResource(`submissions/${id}`, typed<api.SubmissionDetail>, live);
  const results = useResource(
    `results?submission_id=${id}&limit=500`,
    (raw: api.Page_ListedResult) => raw.items,
    live,
  );
  const episodes = useResource(
    `episodes?submission_id=${id}&limit=200`,
    (raw: api.Page_Episode) => raw.items,
    live,
    2000,
  );

  return (
    <>
      <h1 tabIndex={-1}>Submission #{props.id}</h1>
      <Async res={sub} what="the submission">
        {(raw) => <SubmissionHeader raw={raw} now={now} />}
      </Async>
      <Async res={results} what="results">
        {(list) => <ResultsBreakdown results={list} score={sub.data?.score ?? undefined} />}
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

function SubmissionHeader(props: { raw: api.SubmissionDetail; now: number }) {
  const { raw } = props;
  const sub = toSubmission(raw);
  const credited = raw.credited_submission_id == null ? undefined : String(raw.credited_submission_id);
  const score = raw.score;
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
            ["Commitment", <code class="wrap">{raw.commitment}</code>],
            ["Registry", raw.artifact_registry ?? DASH],
            ["Repository", <span class="mono">{raw.artifact_repo ?? DASH}</span>],
            ["Revision", <span class="mono wrap">{raw.artifact_revision ?? DASH}</span>],
            ["SHA-256", <code class="wrap">{raw.artifact_sha256 ?? DASH}</code>],
            ["Size", bytes(raw.artifact_size)],
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
            {raw.rejection_detail && ` — ${raw.rejection_detail}`}
          </p>
        )}
      </section>
      <section aria-labelledby="score-h" class="card">
        <h2 id="score-h">Score</h2>
        {score ? (
          <KeyValues
            rows={[
              [
                "Success rate",
                <RateWithInterval
                  rate={score.success_rate}
                  lo={score.ci_low}
                  hi={score.ci_high}
                />,
              ],
              ["Episodes", int(score.episodes)],
              ["Successes", int(score.successes)],
              ["Validators", int(score.validators)],
              [
                "Eligible",
                !score.eligible && score.reason ? (
                  <span data-testid="eligibility">no — {score.reason}</span>
                ) : (
                  yesNo(score.eligible)
                ),
              ],
              ...(score.eligible && score.reason
                ? ([
                    [
                      "Standing",
                      <span data-testid="standing">
                        rank {score.rank ?? DASH}: {score.reason}
                      </span>,
                    ],
                  ] as [string, ComponentChildren][])
                : []),
              ...(score.to_lead
                ? ([["To lead", score.to_lead]] as [string, string][])
                : []),
              [
                "Original?",
                score.copy_of != null ? (
                  <span data-testid="copy-of">
                    {score.detail.copy_kind === "behaviour"
                      ? "behavioural copy of "
                      : "copy of "}
                    <SubmissionLink id={String(score.copy_of)} />
                    {score.detail.copy_kind === "behaviour"
                      ? " (same actions on the same seeds): earns nothing"
                      : " (same artifact): earns nothing"}
                  </span>
                ) : (
                  "yes"
                ),
              ],
              [
                "Against the leader",
                score.detail.vs_leader ? (
                  pairedSummary(toPairedTest(score.detail.vs_leader) ?? {})
                ) : (
                  DASH
                ),
              ],
              [
                "Validator agreement",
                score.disagreement ? (
                  <Badge state="expired" label="disagreement flagged" />
                ) : !score.disagreement ? (
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

function SubmissionJobs(props: { raw: api.SubmissionDetail }) {
  const jobs = props.raw.jobs.map(toJob);
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
