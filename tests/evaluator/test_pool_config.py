"""Pool scheduling and sandbox-backend configuration (no Ray, no sandbox)."""

from __future__ import annotations


def test_pool_prefers_tasks_an_actor_already_built() -> None:
    from collections import deque

    from kinitro.evaluator.results import EpisodeSpec
    from kinitro.evaluator.rollout.pool import _pick

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


def test_a_batch_takes_distinct_tasks_while_it_can() -> None:
    """K slots of K tasks need K environments; K episodes of one task would need K of it."""
    from collections import deque

    from kinitro.evaluator.results import EpisodeSpec
    from kinitro.evaluator.rollout.pool import _pick

    tasks = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    pending = deque((EpisodeSpec(i, t, 0, i), 1) for i, t in enumerate(tasks))
    owned: dict[int, set[str]] = {0: {"a"}}
    taken: set[str] = set()
    batch = []
    for _ in range(4):
        spec, _ = _pick(pending, 0, owned, taken)
        taken.add(spec.task)
        batch.append(spec.task)
    assert batch[:3] == ["a", "b", "c"] and batch[3] in {"a", "b", "c"}
    # tasks run down together: the one with the most episodes left goes first
    pending = deque((EpisodeSpec(i, t, 0, i), 1) for i, t in enumerate(["a"] * 6 + ["b"] * 6))
    owned = {0: {"a", "b"}}
    played = [_pick(pending, 0, owned)[0].task for _ in range(6)]
    assert played.count("a") == played.count("b") == 3
    # another actor's batch prefers the tasks not built elsewhere, then any
    owned[0] = {"a", "b", "c"}
    assert _pick(pending, 1, owned, set())[0].task in {"a", "b", "c"}


def test_kubernetes_sandbox_settings_map_to_the_pod_config(tmp_path) -> None:
    import pytest
    from pydantic import ValidationError

    from kinitro.evaluator.rollout.launcher import SandboxLauncher
    from kinitro.evaluator.settings import Settings

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
