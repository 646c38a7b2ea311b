// Superseded submissions (a miner's earlier commitments, replaced by a later one) are hidden
// from short lists by default; a note counts them and links to the full list.

import { useState } from "preact/hooks";
import { useLocation } from "./router";

export function withoutSuperseded<T extends { status?: string }>(list: T[]): { shown: T[]; hidden: number } {
  const shown = list.filter((x) => x.status !== "superseded");
  return { shown, hidden: list.length - shown.length };
}

/** The full submissions list (superseded included), optionally of one competition. */
export function allSubmissionsHref(competitionId?: string): string {
  const q = new URLSearchParams({ all: "1" });
  if (competitionId) q.set("competition_id", competitionId);
  return `/submissions?${q}`;
}

export function SupersededNote(props: { hidden: number; competitionId?: string }) {
  const { hidden } = props;
  return (
    <p class="muted" data-testid="superseded-note">
      {hidden > 0 ? `${hidden} superseded submission${hidden > 1 ? "s" : ""} hidden. ` : ""}
      <a href={allSubmissionsHref(props.competitionId)}>All submissions</a>
    </p>
  );
}

/** The submissions list's competition filter and "show superseded" switch, opened from
 * the URL: `/submissions?all=1&competition_id=…` (the notes' link) shows the full list. */
export function useListFilters() {
  const { query } = useLocation();
  const [competition, setCompetition] = useState(query.get("competition_id") ?? "");
  const [showSuperseded, setShowSuperseded] = useState(query.get("all") === "1");
  return { competition, setCompetition, showSuperseded, setShowSuperseded };
}
