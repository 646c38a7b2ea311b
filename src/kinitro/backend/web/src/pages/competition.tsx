// One competition: rules, benchmarks, full leaderboard, candidates, recent submissions, rounds.

import { useResource } from "../api";
import {
  Async,
  Badge,
  Empty,
  HotkeyText,
  KeyValues,
  SubmissionLink,
  TimeAgo,
  useNow,
} from "../components";
import { DASH, dateTime, int, pct, shortId } from "../format";
import type * as api from "../generated/api";
import { type CompetitionView, toCompetition, toLeaderboard, toSubmission } from "../model";
import { SuccessHistoryChart } from "../history";
import { useStore } from "../store";
import { SupersededNote, withoutSuperseded } from "../superseded";
import { crowningRule, LeaderboardTable, LeaderSummary } from "./leaderboard";

export function CompetitionPage(props: { id: string }) {
  const s = useStore();
  const now = useNow();
  const id = encodeURIComponent(props.id);
  const key = s.touched.get(`competition:${props.id}`);
  const comp = useResource(`competitions/${id}`, (raw: api.Competition) => toCompetition(raw), key);
  const board = useResource(`competitions/${id}/leaderboard`, toLeaderboard, key);
  const subs = useResource(
    `submissions?competition_id=${id}&limit=20`,
    (raw: api.Page_Submission) => raw.items.map(toSubmission),
    key,
  );
  const rounds = useResource(
    `rounds?competition_id=${id}&limit=10`,
    (raw: api.Page_Round) => raw.items,
  );
  const live = s.competitions.get(props.id);
  const c0 = comp.data;
  return (
    <>
      <h1 tabIndex={-1}>
        {c0?.name ?? live?.name ?? props.id}{" "}
        {c0 && <Badge state={c0.active ? "running" : "cancelled"} label={c0.active ? "active" : "inactive"} />}
      </h1>
      <Async res={comp} what="the competition">
        {(c) => (
          <>
            {c.description && <p>{c.description}</p>}
            <div class="two-col">
              <section class="card" aria-labelledby="rules-h">
                <h2 id="rules-h">Rules</h2>
                <KeyValues
                  rows={[
                    ["Points", c.points ?? DASH],
                    ["Minimum success rate", pct(c.minSuccessRate, 0)],
                    ["Minimum validators", c.minValidators ?? DASH],
                    ["To be crowned", crowningRule(c)],
                    ["Approval mode", c.approvalMode ?? DASH],
                    ["Replication", c.replication ?? "default"],
                  ]}
                />
              </section>
              <section class="card" aria-labelledby="bench-h">
                <h2 id="bench-h">Benchmarks</h2>
                {c.benchmarks.length === 0 ? (
                  <Empty>No benchmark.</Empty>
                ) : (
                  <ul class="plain">
                    {c.benchmarks.map((b) => (
                      <li key={b.benchmarkId}>
                        <strong>{b.benchmarkId}</strong>: {b.tasks.length} task{b.tasks.length === 1 ? "" : "s"}
                        {b.episodesPerTask !== undefined && ` × ${b.episodesPerTask} episodes`}
                        {b.maxSteps !== undefined && `, ≤ ${b.maxSteps} steps`}
                        <span class="muted small"> ({b.tasks.join(", ")})</span>
                        {b.knobs.length > 0 && (
                          <div class="small" data-testid="benchmark-knobs">
                            Knobs: {b.knobs.join(" · ")}
                          </div>
                        )}
                      </li>
                    ))}
                  </ul>
                )}
              </section>
            </div>
            <Baselines competition={c} />
            <section aria-labelledby="lb-h">
              <h2 id="lb-h">Leaderboard</h2>
              <Async res={board} what="the leaderboard">
                {(lb) => (
                  <>
                    <LeaderSummary competition={c} board={lb} />
                    <LeaderboardTable board={lb} caption={`Leaderboard of ${c.name}`} />
                    {lb.pendingCandidates.length > 0 && (
                      <>
                        <h3>Candidates awaiting approval</h3>
                        <ul class="plain" data-testid="candidates">
                          {lb.pendingCandidates.map((p, i) => (
                            <li key={p.id ?? i}>
                              <SubmissionLink id={p.submissionId} /> <HotkeyText hotkey={p.minerHotkey} />{" "}
                              {pct(p.successRate)} (lower bound {pct(p.ciLow)}){" "}
                              <Badge state="candidate" label={p.status ?? "candidate"} />
                            </li>
                          ))}
                        </ul>
                      </>
                    )}
                  </>
                )}
              </Async>
            </section>
            <section aria-labelledby="history-h">
              <h2 id="history-h">History</h2>
              <SuccessHistoryChart competitionId={props.id} liveKey={key} />
            </section>
          </>
        )}
      </Async>
      <section aria-labelledby="csubs-h">
        <h2 id="csubs-h">Recent submissions</h2>
        <Async res={subs} what="submissions">
          {(all) => {
            const { shown, hidden } = withoutSuperseded(all);
            return (
              <>
                {shown.length === 0 ? (
                  <Empty>No submissions yet.</Empty>
                ) : (
                  <ul class="plain" data-testid="competition-submissions">
                    {shown.map((x) => (
                      <li key={x.id}>
                        <SubmissionLink id={x.id} /> <HotkeyText hotkey={x.minerHotkey} /> block{" "}
                        {int(x.commitmentBlock)} <Badge state={x.status} /> <TimeAgo at={x.createdAt} now={now} />
                      </li>
                    ))}
                  </ul>
                )}
                <SupersededNote hidden={hidden} competitionId={props.id} />
              </>
            );
          }}
        </Async>
      </section>
      <section aria-labelledby="rounds-h">
        <h2 id="rounds-h">Evaluation rounds</h2>
        <Async res={rounds} what="rounds">
          {(list) =>
            list.length === 0 ? (
              <Empty>No rounds yet.</Empty>
            ) : (
              <div class="table-wrap">
                <table>
                  <caption class="sr-only">Evaluation rounds: the commitment is on chain before the round, the secret revealed after it; until then episode data is sealed</caption>
                  <thead>
                    <tr>
                      <th scope="col">Round</th>
                      <th scope="col">Starts</th>
                      <th scope="col">Ends</th>
                      <th scope="col">Commitment (block)</th>
                      <th scope="col">Secret</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((r) => (
                      <tr key={r.id}>
                        <td class="mono">{shortId(r.id)}</td>
                        <td>{dateTime(r.starts_at)}</td>
                        <td>{dateTime(r.ends_at)}</td>
                        <td class="mono">
                          {shortId(r.commitment)}
                          {r.commit_block != null ? ` (#${r.commit_block})` : " (not on chain)"}
                        </td>
                        <td class="mono">
                          {r.secret ? shortId(r.secret) : `sealed until ${dateTime(r.sealed_until)}`}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
      </section>
    </>
  );
}

/** Reference agents' scores on this competition, and the activation limit on the expert's. */
function Baselines(props: { competition: CompetitionView }) {
  const { baselines, maxExpertBaseline, id } = props.competition;
  const expert = baselines?.agents.find((a) => a.agent === "expert")?.successRate;
  const over = maxExpertBaseline !== undefined && expert !== undefined && expert > maxExpertBaseline;
  return (
    <section class="card" aria-labelledby="base-h" data-testid="baselines">
      <h2 id="base-h">Reference baselines</h2>
      <p class="muted small">
        What bundles without learning score here: no-op and random actions, and Meta-World's scripted expert
        given the true task.{" "}
        {maxExpertBaseline !== undefined
          ? `Activation needs an expert baseline of at most ${pct(maxExpertBaseline, 0)}.`
          : "No limit on the expert baseline."}
      </p>
      {baselines === undefined ? (
        <Empty>
          No baselines computed for these benchmarks (<code>kinitro evaluator baselines {id} --upload</code>).
        </Empty>
      ) : (
        <>
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Success rate of each reference agent with its 95 % interval</caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Success rate</th>
                  <th scope="col">95 % interval</th>
                  <th scope="col">Episodes</th>
                </tr>
              </thead>
              <tbody>
                {baselines.agents.map((a) => (
                  <tr key={a.agent}>
                    <td>{a.agent}</td>
                    <td>{pct(a.successRate)}</td>
                    <td>
                      {pct(a.ciLow)} – {pct(a.ciHigh)}
                    </td>
                    <td>{a.episodes ?? DASH}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {over && (
            <p>
              <Badge state="failed" label="expert above the limit" /> a bundle replaying the scripted experts would
              own this competition.
            </p>
          )}
          <p class="muted small">
            {baselines.episodesPerTask ?? DASH} episodes per task, computed {dateTime(baselines.computedAt)}.
          </p>
        </>
      )}
    </section>
  );
}
