"""Action fingerprints: a short, versioned sketch of what an agent did in one episode.

Two submissions whose episodes on the same seeds produce the same actions are the same
agent, whatever their bundles' hashes (a copy with one comment changed is a new sha256).
The evaluator samples the episode's actions at fixed steps and reports the sketch with the
episode (``Episode.action_fingerprint``); the backend compares the sketches of paired
episodes (same validator, round, task and episode index: the same simulator start).

Text form, version ``af1``::

    af1:<stride>:<action_dim>:<base64url(float16 little-endian samples), unpadded>

The samples are the actions at steps ``0, stride, 2·stride, …`` of the episode (at most
:data:`SAMPLES` of them, ``stride = max(1, ceil(max_steps / SAMPLES))``), row after row,
each component rounded to IEEE half precision (about 3 significant digits: float jitter
across identical runs disappears, a different policy does not). With ``max_steps`` 150
that is 30 samples × 4 components: 240 bytes, 320 characters.

Two fingerprints *match* (:func:`matches`) when they have the same version, stride and
dimension, the same number of samples (the episodes lasted about as long) and the mean
absolute difference of their components is at most ``tolerance``.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

VERSION = "af1"
SAMPLES = 32
MAX_CHARS = 2048
"""Longest fingerprint text on the wire (8 samples' worth of a 32-dimensional action)."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    stride: int
    dim: int
    values: tuple[float, ...]  # samples × dim, row-major

    @property
    def samples(self) -> int:
        return len(self.values) // self.dim if self.dim else 0


def stride_for(max_steps: int) -> int:
    return max(1, math.ceil(max(1, max_steps) / SAMPLES))


def sample_steps(steps: int, max_steps: int) -> range:
    """The (0-based) steps of an episode of ``steps`` steps that are sampled."""
    stride = stride_for(max_steps)
    return range(0, min(steps, stride * SAMPLES), stride)


def encode(actions: Sequence[Sequence[float]], max_steps: int) -> str | None:
    """The fingerprint of an episode's actions (rows of one step each), or None when the
    episode has no step or too wide an action to fit :data:`MAX_CHARS`."""
    rows = [actions[i] for i in sample_steps(len(actions), max_steps)]
    return encode_samples(rows, stride_for(max_steps))


def encode_samples(rows: Sequence[Sequence[float]], stride: int) -> str | None:
    """The fingerprint of already sampled rows (:func:`sample_steps`)."""
    if not rows or not rows[0]:
        return None
    dim = len(rows[0])
    values = [_half(float(x)) for row in rows for x in row]
    raw = struct.pack(f"<{len(values)}e", *values)
    text = f"{VERSION}:{stride}:{dim}:{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"
    return text if len(text) <= MAX_CHARS else None


def _half(x: float) -> float:
    """``x`` clamped to the float16 range (NaN becomes 0: the simulator rejects it anyway)."""
    if math.isnan(x):
        return 0.0
    return max(-65504.0, min(65504.0, x))


def decode(text: str) -> Fingerprint | None:
    """Parse a fingerprint; None for another version or a malformed one (never raises)."""
    try:
        version, stride, dim, body = text.split(":")
        if version != VERSION:
            return None
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        n, d = len(raw) // 2, int(dim)
        if len(raw) % 2 or d <= 0 or n % d:
            return None
        return Fingerprint(int(stride), d, struct.unpack(f"<{n}e", raw))
    except (ValueError, struct.error):
        return None


def matches(a: Fingerprint, b: Fingerprint, tolerance: float) -> bool:
    """Same actions within ``tolerance`` (mean absolute difference of the components)."""
    if (a.stride, a.dim, len(a.values)) != (b.stride, b.dim, len(b.values)) or not a.values:
        return False
    diff = sum(abs(x - y) for x, y in zip(a.values, b.values, strict=True))
    return diff / len(a.values) <= tolerance
