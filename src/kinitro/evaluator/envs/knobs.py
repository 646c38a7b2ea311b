"""The simulator-independent competition knobs: noise on what the agent sees and does,
and the action delay (:class:`~kinitro.protocol.common.Conditions`).

Every draw comes from a stream of its own, seeded from the episode seed
(:func:`derive_stream_seed`): the knobs never touch the simulator's RNG, so an episode
with noise has the same goal and object positions as the same episode without, and
replaying the agent's logged actions from the seed re-creates the noise and the delay
exactly.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

from kinitro.protocol.conditions import Conditions

STREAM_DERIVATION_VERSION = "kinitro-knob-stream-v1"
OBSERVATION_NOISE = "observation-noise"
ACTION_NOISE = "action-noise"
DYNAMICS = "dynamics"


def derive_stream_seed(episode_seed: int, stream: str) -> int:
    """Seed of one knob's random stream within an episode (sha256, versioned, 63 bits)."""
    material = f"{STREAM_DERIVATION_VERSION}\x00{int(episode_seed)}\x00{stream}"
    digest = hashlib.sha256(material.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def stream_rng(episode_seed: int, stream: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_stream_seed(episode_seed, stream)))


class Perturbation:
    """Applies observation noise, action delay and action noise for one environment.

    ``begin(seed)`` at every reset; then ``observe`` on every state the agent is shown and
    ``act`` on every action the agent sends, which returns the action to execute.
    """

    def __init__(self, conditions: Conditions, action_dim: int) -> None:
        self.conditions = conditions
        self.action_dim = action_dim
        self._obs_rng: np.random.Generator | None = None
        self._act_rng: np.random.Generator | None = None
        self._queue = np.zeros((conditions.action_delay, action_dim), dtype=np.float32)
        self._head = 0

    @property
    def active(self) -> bool:
        c = self.conditions
        return c.observation_noise > 0 or c.action_noise > 0 or c.action_delay > 0

    def begin(self, episode_seed: int) -> None:
        c = self.conditions
        self._obs_rng = stream_rng(episode_seed, OBSERVATION_NOISE) if c.observation_noise else None
        self._act_rng = stream_rng(episode_seed, ACTION_NOISE) if c.action_noise else None
        self._queue[:] = 0.0
        self._head = 0

    def observe(self, state: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``state`` plus this step's observation noise (float64, a new array)."""
        out = np.array(state, dtype=np.float64)
        if self._obs_rng is not None:
            out += self._obs_rng.normal(0.0, self.conditions.observation_noise, out.shape)
        return out

    def act(self, action: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The action the simulator executes this step, given the agent's ``action``."""
        executed = np.asarray(action, dtype=np.float32)
        if self.conditions.action_delay:
            # ring buffer: hand out the action of `delay` steps ago, keep this one
            due = self._queue[self._head].copy()
            self._queue[self._head] = executed
            self._head = (self._head + 1) % self.conditions.action_delay
            executed = due
        if self._act_rng is not None:
            noise = self._act_rng.normal(0.0, self.conditions.action_noise, executed.shape)
            executed = np.clip(executed + noise, -1.0, 1.0).astype(np.float32)
        return executed
