"""Pool scheduling and sandbox-backend configuration (no Ray, no sandbox)."""

from __future__ import annotations

from collections import deque

import pytest
from pydantic import ValidationError

from kinitro.evaluator.results import EpisodeSpec
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import _pick
from kinitro.evaluator.settings import Settings


def test_pool_prefers_tasks_an_actor_already_built() -> None:
    tasks = ["a", "a", "b", "b", "c"]
    pending = deque((EpisodeSpec(i, t, 0, i), 1) for i, t in enumerate(tasks))
    owned: dict[int, set[str]] = {}
    first, _ = _pick(pending, 0, owned)
    owned[0] = {first.task}
    second, _ = _pick(pending, 1, owned)
    owned[1] = {second.task}
    assert (first.task, second.task) == ("a", "b")
    assert _pick(pending, 1, owned)[0].task == "b"  # same task again
    assert _pick(pending, 0, owned)[0].task == "a"
    assert _pick(pending, 0, owned)[0].task == "c"  # unclaimed task next
    assert not pending


def test_a_batch_takes_one_task_while_it_can() -> None:
    """K episodes of one task in lockstep cost the simulator less than K tasks in turn (one
    model's data in cache, not K); its K environments are copies of one compiled model."""

    tasks = ["a"] * 6 + ["b"] * 5 + ["c"] * 4
    pending = deque((EpisodeSpec(i, t, 0, i), 1) for i, t in enumerate(tasks))
    owned: dict[int, set[str]] = {}
    assert _batch(pending, 0, owned, 4) == ["a"] * 4
    # another actor takes a task nobody has built, the one with the most episodes left
    assert _batch(pending, 1, owned, 4) == ["b"] * 4
    # the batch's task first, then the actor's own, then one no other actor has built
    assert _batch(pending, 0, owned, 4) == ["a", "a", "c", "c"]
    assert _batch(pending, 1, owned, 3) == ["b", "c", "c"]
    assert not pending


def test_a_hidden_task_batch_takes_distinct_tasks() -> None:
    """When the agent is not told the task, the episodes it plays side by side must not
    tell it they share one (it could pool what they show to identify the task)."""
    tasks = ["a"] * 3 + ["b"] * 3 + ["c"] * 2
    pending = deque((EpisodeSpec(i, t, 0, i), 1) for i, t in enumerate(tasks))
    owned: dict[int, set[str]] = {}
    assert sorted(_batch(pending, 0, owned, 3, group=False)) == ["a", "b", "c"]
    assert sorted(_batch(pending, 0, owned, 3, group=False)) == ["a", "b", "c"]
    # only when no other task is left does a batch repeat one
    assert _batch(pending, 0, owned, 2, group=False) == ["a", "b"]
    assert not pending


def _batch(pending, slot, owned, size, group=True):
    taken: set[str] = set()
    out = []
    for _ in range(size):
        spec, _ = _pick(pending, slot, owned, taken, group=group)
        taken.add(spec.task)
        owned.setdefault(slot, set()).add(spec.task)
        out.append(spec.task)
    return out


def test_kubernetes_sandbox_settings_map_to_the_pod_config(tmp_path) -> None:
    settings = Settings(
        sandbox="kubernetes",
        kubernetes_image="ghcr.io/kinitro/agent:1",
        kubernetes_bundle_claim="bundles",
        kubernetes_runtime_class="gvisor",
        bundle_cache_dir=tmp_path,
    )
    launcher = SandboxLauncher(
        str(tmp_path / "abc"), backend="kubernetes", kubernetes=settings.kubernetes_options()
    )
    config = launcher.kubernetes_config()
    assert config.image == "ghcr.io/kinitro/agent:1" and config.runtime_class_name == "gvisor"
    assert config.bundle_volume["persistentVolumeClaim"]["readOnly"] is True
    assert config.bundle_root == tmp_path.resolve()
    with pytest.raises(ValidationError, match=r"kubernetes_image .* and kubernetes_bundle_claim"):
        Settings(sandbox="kubernetes")
    assert Settings().kubernetes_options() == {}
