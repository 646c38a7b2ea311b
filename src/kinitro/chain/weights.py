"""Weight normalisation as the chain applies it: max-upscale to u16, drop zeros."""

from __future__ import annotations

import math
from collections.abc import Mapping

from kinitro.chain.errors import InvalidWeightsError
from kinitro.chain.models import U16_MAX


def normalize_u16(weights: Mapping[int, float]) -> dict[int, int]:
    """``{uid: weight}`` (relative, any scale) → ``{uid: u16}`` with the largest at 65535.

    Zeros after quantisation are dropped. Raises :class:`InvalidWeightsError` for empty,
    all-zero, negative or non-finite weights and for uids outside 0..65535. Idempotent:
    normalising an already-normalised row returns it unchanged.
    """
    if not weights:
        raise InvalidWeightsError("no weights given")
    for uid, value in weights.items():
        if not isinstance(uid, int) or isinstance(uid, bool) or not 0 <= uid <= U16_MAX:
            raise InvalidWeightsError(f"uid {uid!r} is not an integer in 0..65535")
        if not math.isfinite(value) or value < 0:
            raise InvalidWeightsError(f"weight for uid {uid} must be finite and >= 0, got {value}")
    top = max(weights.values())
    if top <= 0:
        raise InvalidWeightsError("all weights are zero; nothing to set")
    out: dict[int, int] = {}
    for uid in sorted(weights):
        quantised = round(weights[uid] / top * U16_MAX)
        if quantised:
            out[uid] = int(quantised)
    return out
