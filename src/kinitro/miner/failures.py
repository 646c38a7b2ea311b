"""What went wrong in a local evaluation, episode by episode, in words a miner can act on.

``kinitro evaluator local --jsonl`` streams one ``failure`` event per failed episode (cause,
scored or not, and the evaluator's detail: the call that failed, the agent's message or
traceback, how its sandbox exited with the tail of its stderr). :func:`group_failures`
folds episodes that failed the same way into one entry; :func:`print_failures` prints
them under the results table with what to do about each cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

# The same failure in another slot of the same agent process is the same failure, and so
# is an episode played beside it in the same batch, "cut short by the agent's failure in
# slot N: <detail>" (the evaluator's rollout/episode.py).
_SLOT = re.compile(r" in slot \d+")
_CUT_SHORT = "cut short by the agent's failure: "
TAIL_LINES = 12

HINTS = {
    "agent_crash": "your agent raised, could not be loaded, or its process died: the "
    "traceback or stderr tail above says where",
    "agent_timeout": "act (or __init__/reset) is too slow for the per-step deadline",
    "invalid_action": "return 4 finite float32 values in [-1, 1] (shape and dtype matter)",
    "protocol_violation": "the agent runtime's answer was not a valid reply: do not write "
    "to the RPC socket or stdout yourself",
    "sandbox_start": "the sandbox did not start (not your agent's fault, never scored): is "
    "bwrap installed? As root the bundle must be world-readable: chmod -R o+rX DIR",
}


@dataclass
class FailureGroup:
    cause: str
    scored: bool
    detail: str
    episodes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "scored": self.scored,
            "detail": self.detail,
            "episodes": self.episodes,
            "hint": HINTS.get(self.cause),
        }


def group_failures(events: list[dict[str, Any]]) -> list[FailureGroup]:
    """One group per (cause, detail without its slot number), in order of first episode."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for event in sorted(events, key=lambda e: int(e.get("episode", 0))):
        cause = str(event.get("cause", "?"))
        detail = _SLOT.sub("", str(event.get("detail") or "")).strip().removeprefix(_CUT_SHORT)
        group = groups.setdefault(
            (cause, detail), FailureGroup(cause, bool(event.get("scored", True)), detail)
        )
        group.episodes.append(int(event.get("episode", 0)))
    return list(groups.values())


def print_failures(console: Console, groups: list[FailureGroup]) -> None:
    """Each group: cause, episodes, the detail's first line and the tail of the rest."""
    for group in groups:
        scored = "scored against you" if group.scored else "not scored, retried"
        episodes = ", ".join(str(i) for i in group.episodes[:10])
        more = f" … ({len(group.episodes)} in all)" if len(group.episodes) > 10 else ""
        console.print(
            f"[red]{group.cause}[/] in episode{'s' if len(group.episodes) > 1 else ''} "
            f"{episodes}{more} ({scored})"
        )
        lines = group.detail.splitlines() or ["(no detail)"]
        console.print(f"  {escape(lines[0])}", soft_wrap=True)
        rest = lines[1:]
        if len(rest) > TAIL_LINES:
            console.print(f"    … {len(rest) - TAIL_LINES} more lines", style="dim")
        for line in rest[-TAIL_LINES:]:
            console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
        if group.cause in HINTS:
            console.print(f"  what to do: {HINTS[group.cause]}", style="yellow")
