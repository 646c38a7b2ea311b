"""The agent and evaluator images are built from the same locks and the same script as the
local agent environment, and put things where the sandboxes look for them. (No container
engine runs here: this checks the Containerfiles against the code; scripts/agent-env
itself is exercised by scripts/bootstrap and the sandbox tests.)"""

from __future__ import annotations

from pathlib import Path

from kinitro.evaluator.sandbox.agent_env import AGENT_ENV_MOUNT
from kinitro.evaluator.sandbox.base import RUNTIME_MODULE
from kinitro.evaluator.sandbox.kubernetes_manifests import KubernetesConfig

ROOT = Path(__file__).parents[2]
AGENT = (ROOT / "deploy" / "containers" / "agent.Containerfile").read_text()
EVALUATOR = (ROOT / "deploy" / "containers" / "evaluator.Containerfile").read_text()


def instructions(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def test_agent_image_is_the_agent_environment_where_pods_look_for_it() -> None:
    body = instructions(AGENT)
    assert "scripts/agent-env" in body and "COPY pyproject.toml uv.lock" in body
    assert "COPY src" not in body  # nothing of kinitro beyond the agent distribution
    assert f"--uv uv {AGENT_ENV_MOUNT}" in body
    assert f"COPY --from=build {AGENT_ENV_MOUNT} {AGENT_ENV_MOUNT}" in body
    pod_python = KubernetesConfig(image="x", bundle_volume={}, bundle_root=Path("/")).python
    assert pod_python == f"{AGENT_ENV_MOUNT}/bin/python"
    assert f'"{pod_python}", "-I", "-B", "-m", "{RUNTIME_MODULE}"' in body
    assert "USER 65534" in body


def test_evaluator_image_builds_from_the_same_locks() -> None:
    body = instructions(EVALUATOR)
    assert "uv sync --frozen --no-dev --no-editable" in body
    assert "scripts/agent-env" in body
    # The evaluator finds its agent environments in agent-envs of its own environment.
    assert '"/opt/kinitro/venv/agent-envs/$profile"' in body
    assert "UV_PROJECT_ENVIRONMENT=/opt/kinitro/venv" in body
    for package in ("bubblewrap", "python3-seccomp"):
        assert package in body
    # Both images pin the same uv and the same Python base.
    for arg in ("ARG UV_VERSION=", "ARG PYTHON_IMAGE="):
        a = next(line for line in AGENT.splitlines() if line.startswith(arg))
        e = next(line for line in EVALUATOR.splitlines() if line.startswith(arg))
        assert a == e
