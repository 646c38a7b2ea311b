// Leaderboard table and its summary (leader, margin to beat, approval status).

import {
  Badge,
  Empty,
  HotkeyText,
  KeyValues,
  RateWithInterval,
  SubmissionLink,
} from "../components";
import { DASH, pct } from "../format";
import { awaitingQuorum, type CompetitionView, type LeaderboardView } from "../model";

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
          "Margin to beat",
          <span title="A challenger's lower confidence bound must exceed this success rate">
            {board?.marginToBeat !== undefined ? `> ${pct(board.marginToBeat)}` : DASH}
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
  const rows = props.board?.rows ?? [];
  if (rows.length === 0) return <Empty>No scored submissions yet.</Empty>;
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
              <td class="nowrap">
                <HotkeyText hotkey={r.minerHotkey} />
                {r.minerUid !== undefined && <span class="muted"> uid {r.minerUid}</span>}
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
                {r.copyOf && (
                  <Badge state="superseded" label={`copy of #${r.copyOf}`} title="Credit goes to the earliest identical artifact" />
                )}
                {awaitingQuorum(r) ? (
                  <Badge state="queued" label="awaiting quorum" title="Counts once enough validators' results are in" />
                ) : (
                  r.eligible === false && <Badge state="cancelled" label="not eligible" />
                )}
                {r.disagreement && (
                  <Badge state="expired" label="validators disagree" title="Validator results differ beyond the agreement band" />
                )}
                </span>
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
    </div>
  );
}
