"""Dynamics randomization for MuJoCo scenes (:class:`DynamicsRandomization`).

Before each reset the model's nominal masses (with inertias), friction coefficients and
joint damping are restored and multiplied by factors drawn from the episode's
``dynamics`` stream, one per body / geom / degree of freedom. MuJoCo's derived constants
(subtree masses, inverse weights used by the constraint solver) are then recomputed
(``mj_setConst``), so the scene is physically consistent; with every range at ``(1, 1)``
nothing is touched and the scene is exactly the nominal one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kinitro.protocol.conditions import DynamicsRandomization


class DynamicsRandomizer:
    """Owns the nominal parameters of one ``MjModel`` and applies per-episode factors."""

    def __init__(self, model: Any, data: Any, ranges: DynamicsRandomization) -> None:
        self.model = model
        self.data = data
        self.ranges = ranges
        self._mass = model.body_mass.copy()
        self._inertia = model.body_inertia.copy()
        self._friction = model.geom_friction.copy()
        self._damping = model.dof_damping.copy()

    def apply(self, rng: np.random.Generator) -> None:
        """Draw this episode's factors and apply them to the nominal parameters."""
        import mujoco  # noqa: PLC0415 - the simulator (~1 s to import) loads only where an env is built

        m, r = self.model, self.ranges
        mass = rng.uniform(*r.mass, size=self._mass.shape)
        friction = rng.uniform(*r.friction, size=self._friction.shape[0])
        damping = rng.uniform(*r.damping, size=self._damping.shape)
        m.body_mass[:] = self._mass * mass
        m.body_inertia[:] = self._inertia * mass[:, None]
        m.geom_friction[:] = self._friction * friction[:, None]
        m.dof_damping[:] = self._damping * damping
        mujoco.mj_setConst(m, self.data)
