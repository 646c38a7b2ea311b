// Leaderboard table and its summary (leader, what it takes to lead, approval status).

import { useState } from "preact/hooks";
import {
  Badge,
  Empty,
  HotkeyText,
  KeyValues,
  RateWithInterval,
  SubmissionLink,
} from "../components";
import { DASH, pct } from "../format";
import {
  awaitingQuorum,
  type CompetitionView,
  type LeaderboardView,
  type PairedTestView,
} from "../model";


/** "needs 30 episodes, lower bound > 0.0%": what crowning takes in this competition. */
export function crowningRule(c: CompetitionView): string {
  if (c.minEpisodes === undefined) return DASH;
  return `needs ${c.minEpisodes} episodes, lower bound > ${pct(c.minLeaderScore ?? 0)}`;
}

/** "+5 −1 on 60 shared, p = 0.109": a challenger's paired test, short. */
export function pairedSummary(t: PairedTestView): string {
  const p = t.pValue === undefined ? "?" : t.pValue < 0.001 ? "< 0.001" : t.pValue.toFixed(3);
  return `+${t.wins ?? 0} −${t.losses ?? 0} on ${t.sharedEpisodes ?? 0} shared, p = ${p}`;
}

export function LeaderSummary(props: { competition: CompetitionView; board?: LeaderboardView }) {
  const { competition: c, board } = props;
  const leader = board?.leader;
  const pending = board?.pendingCandidates ?? [];
  const approval =
    c.approvalMode === "admin"
      ? pending.length > 0
        ? `${pending.length} candidate${pending.length > 1 ? "s" : ""} awaiting admin approval`
        : "admin approval, nothing pending"
      : c.approvalMode === "auto"
        ? "automatic"
        : DASH;
  return (
    <KeyValues
      rows={[
        [
          "Leader",
          leader?.submissionId || leader?.minerHotkey ? (
            <span data-testid="leader">
              <HotkeyText hotkey={leader.minerHotkey} />{" "}
              {leader.submissionId && <SubmissionLink id={leader.submissionId} />}
            </span>
          ) : (
            <span data-testid="leader">no leader yet</span>
          ),
        ],
        [
          "Leader success",
          leader?.successRate !== undefined ? (
            <>
              <RateWithInterval rate={leader.successRate} lo={leader.ciLow} hi={leader.ciHigh} />
              {leader.crownedRate !== undefined &&
                Math.abs(leader.crownedRate - leader.successRate) > 0.0005 && (
                  <span class="muted small"> (crowned at {pct(leader.crownedRate)})</span>
                )}
            </>
          ) : (
            DASH
          ),
        ],
        [
          "To take the lead",
          <span title="Every round the leader and the best challengers play the same seeds; a challenger must be better on the shared episodes (one-sided paired test, no single round deciding alone)">
            {crowningRule(c)}; then win the paired test on shared episodes
          </span>,
        ],
        ["Approval", approval],
      ]}
    />
  );
}

export function LeaderboardTable(props: {
  board?: LeaderboardView;
  caption: string;
  limit?: number;
}) {
  const [showCopies, setShowCopies] = useState(false);
  const all = props.board?.rows ?? [];
  if (all.length === 0) return <Empty>No scored submissions yet.</Empty>;
  // copies of an earlier submission (same artifact, or same actions) earn nothing: hidden
  // unless asked for
  const rows = showCopies ? all : all.filter((r) => !r.copyOf);
  const copies = all.length - rows.length;
  const shown = props.limit ? rows.slice(0, props.limit) : rows;
  const pending = new Set(
    (props.board?.pendingCandidates ?? []).map((p) => p.submissionId).filter(Boolean),
  );
  return (
    <div class="table-wrap">
      <table class="leaderboard">
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Rank</th>
            <th scope="col">Miner</th>
            <th scope="col">Submission</th>
            <th scope="col">Success rate [95% CI]</th>
            <th scope="col" class="num">
              Episodes
            </th>
            <th scope="col" class="num">
              Validators
            </th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r, i) => (
            <tr key={r.submissionId ?? i} class={r.isLeader ? "is-leader" : undefined}>
              <td>{r.rank ?? i + 1}</td>
              <td>
                {r.name && (
                  <span class="miner-name" data-testid="miner-name">
                    {r.name}
                  </span>
                )}
                <span class="nowrap">
                  <HotkeyText hotkey={r.minerHotkey} />
                  {r.minerUid !== undefined && <span class="muted"> uid {r.minerUid}</span>}
                </span>
              </td>
              <td>
                <SubmissionLink id={r.submissionId} />
              </td>
              <td>
                {awaitingQuorum(r) ? (
                  <span class="muted" data-testid="awaiting-quorum">{awaitingQuorum(r)}</span>
                ) : (
                  <RateWithInterval rate={r.successRate} lo={r.ciLow} hi={r.ciHigh} />
                )}
              </td>
              <td class="num">{r.episodes ?? DASH}</td>
              <td class="num">{r.validators ?? DASH}</td>
              <td>
                <span class="badges">
                {r.isLeader && <Badge state="leader" label="leader" />}
                {r.submissionId && pending.has(r.submissionId) && (
                  <Badge state="candidate" label="awaiting approval" />
                )}
                {r.copyOf && r.copyKind === "behaviour" && (
                  <Badge state="superseded" label={`behavioural copy of #${r.copyOf}`} title="Takes the same actions as an earlier commitment on the same seeds: earns nothing, whatever its hash" />
                )}
                {r.copyOf && r.copyKind !== "behaviour" && (
                  <Badge state="superseded" label={`copy of #${r.copyOf}`} title="Credit goes to the earliest identical artifact" />
                )}
                {awaitingQuorum(r) ? (
                  <Badge state="queued" label="awaiting quorum" title="Counts once enough validators' results are in" />
                ) : (
                  r.eligible === false && <Badge state="cancelled" label="not eligible" />
                )}
                {r.vsLeader && !r.isLeader && (
                  <span class="muted small" data-testid="vs-leader" title="Paired test against the leader: challenger wins and losses on shared episodes, one-sided p-value">
                    vs leader {pairedSummary(r.vsLeader)}
                  </span>
                )}
                {r.disagreement && (
                  <Badge state="expired" label="validators disagree" title="Validator results differ beyond the agreement band" />
                )}
                </span>
                {!r.isLeader && r.reason && (
                  <span class="reason small" data-testid="row-reason" title={r.toLead ? `To lead: ${r.toLead}` : undefined}>
                    {r.reason}
                  </span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.limit && rows.length > props.limit && (
        <p class="muted">
          Showing the top {props.limit} of {rows.length}.
        </p>
      )}
      {copies > 0 && (
        <p class="muted" data-testid="copies-hidden">
          {copies} cop{copies > 1 ? "ies" : "y"} of earlier submissions hidden.{" "}
          <button type="button" class="linklike" onClick={() => setShowCopies(true)}>
            Show
          </button>
        </p>
      )}
    </div>
  );
}
