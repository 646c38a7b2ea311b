"""The twin's weights, connection row and depths."""

from __future__ import annotations

import dataclasses
import os

from kinitro.jobqueue.errors import JobQueueError
from kinitro.jobqueue.memory.state import MemoryState, StoredWeights, utcnow
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT
from kinitro.jobqueue.records import (
    CONNECTION_FIELDS,
    ConnectionInfo,
    QueueDepths,
    ValidatorStatus,
    WeightsEntry,
)
from kinitro.protocol.validator_ws import SetWeights


class MemoryStatus(MemoryState):
    async def record_weights(self, message: SetWeights) -> bool:
        self._io("record_weights")
        if message.weights_id in self._weights:
            return False
        entry = WeightsEntry(
            message.weights_id,
            message.netuid,
            {int(k): float(v) for k, v in message.weights.items()},
            message.computed_at,
            utcnow(),
            "pending",
            0,
            None,
            None,
            None,
        )
        self._weights[message.weights_id] = StoredWeights(entry, len(self._weights))
        return True

    async def next_pending_weights(self) -> WeightsEntry | None:
        self._io("next_pending_weights")
        rows = [w for w in self._weights.values() if w.entry.status == "pending"]
        if not rows:
            return None
        rows.sort(key=lambda w: (w.entry.computed_at, w.order), reverse=True)
        on_chain = [w.entry.computed_at for w in self._weights.values() if w.entry.status == "set"]
        newest = None if on_chain and rows[0].entry.computed_at <= max(on_chain) else rows[0]
        for w in rows:
            if w is not newest:
                w.entry = dataclasses.replace(w.entry, status="superseded")
        return None if newest is None else newest.entry

    async def weights_attempt_failed(self, weights_id: str, error: str, *, give_up: bool) -> None:
        self._io("weights_attempt_failed")
        if (w := self._weights.get(weights_id)) is not None:
            status = "failed" if give_up else w.entry.status
            w.entry = dataclasses.replace(
                w.entry, attempts=w.entry.attempts + 1, error=error[:2000], status=status
            )

    async def weights_set(
        self, weights_id: str, block: int, *, reveal_block: int | None = None
    ) -> None:
        self._io("weights_set")
        if (w := self._weights.get(weights_id)) is not None:
            w.entry = dataclasses.replace(
                w.entry,
                status="set",
                block=block,
                reveal_block=reveal_block,
                set_at=utcnow(),
                attempts=w.entry.attempts + 1,
                refreshes=w.entry.refreshes + (w.entry.status == "set"),
                error=None,
            )

    async def last_weights_set(self) -> WeightsEntry | None:
        self._io("last_weights_set")
        done = [w.entry for w in self._weights.values() if w.entry.status == "set"]
        return max(done, key=lambda e: e.set_at or e.received_at, default=None)

    # ------------------------------------------------------------ status (NodeStatus)

    async def set_connection(self, state: str, **fields: object) -> None:
        self._io("set_connection")
        unknown = set(fields) - CONNECTION_FIELDS
        if unknown:
            raise JobQueueError(f"unknown connection fields {sorted(unknown)}")
        values = {"state": state, **fields, "pid": fields.get("pid", os.getpid())}
        self._connection = {**(self._connection or {}), **values, "updated_at": utcnow()}

    async def connection(self) -> ConnectionInfo:
        self._io("connection")
        return ConnectionInfo() if self._connection is None else ConnectionInfo(**self._connection)

    async def depths(self) -> QueueDepths:
        self._io("depths")
        counts: dict[str, int] = {}
        for stat in await self.queries.queue_size():
            if stat.entrypoint == EVAL_JOB_ENTRYPOINT:
                counts[stat.status] = counts.get(stat.status, 0) + stat.count
        by_state: dict[str, int] = {}
        for row in self._jobs.values():
            by_state[row.state] = by_state.get(row.state, 0) + 1
        return QueueDepths(
            jobs_queued=counts.get("queued", 0),
            jobs_in_flight=counts.get("picked", 0),
            outbox=len(self._outbox),
            outbox_oldest_at=min((s.entry.created_at for s in self._outbox.values()), default=None),
            outbox_dead=len(self._dead),
            jobs_by_state=by_state,
        )

    async def status(self) -> ValidatorStatus:
        return ValidatorStatus(
            connection=await self.connection(),
            depths=await self.depths(),
            last_weights=await self.last_weights_set(),
            pending_weights=sum(w.entry.status == "pending" for w in self._weights.values()),
        )
