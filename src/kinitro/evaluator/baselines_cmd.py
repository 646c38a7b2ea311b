"""`kinitro evaluator baselines`: score the reference agents on a competition definition.

The definition comes from a running backend (``COMPETITION --backend URL``), a preset
(``--preset NAME``) or a JSON file (``--file``: a competition body or a list of benchmark
specs). The agents play in this process (:mod:`kinitro.evaluator.baselines`), so the
command needs Meta-World but no sandbox, Ray or database. ``--upload`` stores the result
with the competition (``PUT /api/v1/admin/competitions/{id}/baselines``, admin key), where
the activation gate and the competition page read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kinitro.core.errors import KinitroError

_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def baselines_command(
    competition: str | None = typer.Argument(
        None, help="Competition id on --backend (or use --preset / --file).", show_default=False
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Backend URL to read the competition from (and upload to)."
    ),
    preset: str | None = typer.Option(None, "--preset", help="A competition preset by name."),
    file: Path | None = typer.Option(
        None, "--file", help="JSON: a competition body, or a list of benchmark specs."
    ),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, max=1000, help="Per task."),
    seed: int = typer.Option(0, "--seed", min=0, help="Base seed of the episode plan."),
    upload: bool = typer.Option(
        False, "--upload", help="Store the baselines with COMPETITION on --backend."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="KINITRO_ADMIN_API_KEY", help="Admin API key for --upload."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the baselines as JSON."),
) -> None:
    """Score zero, random and scripted-expert agents on a competition definition.

    The expert is Meta-World's hand-written policy for the true task (the strongest
    non-learning bundle); the admin API refuses to activate a competition whose expert
    baseline exceeds its ``max_expert_baseline``. Costs about one evaluation of a
    submission per agent, without rendering (reference agents never look at images).
    """
    from kinitro.evaluator.baselines import compute_baselines  # noqa: PLC0415 - deferred: CLI start-up

    sources = [s for s in (competition, preset, file) if s is not None]
    if len(sources) != 1:
        raise _fail("give exactly one of COMPETITION (with --backend), --preset or --file")
    if upload and (competition is None or backend is None or not api_key):
        raise _fail("--upload needs COMPETITION, --backend and an admin key (--api-key)")
    try:
        benchmarks = _benchmarks(competition, backend, preset, file)

        def progress(p: Any) -> None:
            _err.print(f"{p.agent}: episode {p.done}/{p.total}", end="\r")

        result = compute_baselines(
            benchmarks, episodes_per_task=episodes, seed=seed, on_episode=progress
        )
    except (KinitroError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _err.print(" " * 40, end="\r")
    if json_output:
        typer.echo(result.model_dump_json())
    else:
        _print_table(result)
    if upload:
        assert competition is not None and backend is not None and api_key is not None
        _upload(backend, competition, api_key, result.model_dump(mode="json"))
        _err.print(f"stored with competition {competition!r}")


def _benchmarks(
    competition: str | None, backend: str | None, preset: str | None, file: Path | None
) -> list[Any]:

    from kinitro.protocol.common import BenchmarkSpec  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.presets import get_preset  # noqa: PLC0415 - deferred: CLI start-up

    if preset is not None:
        return list(get_preset(preset).benchmarks)
    if file is not None:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--file {file}: {exc}") from None
    else:
        if backend is None:
            raise ValueError("COMPETITION needs --backend URL")
        data = _request("GET", backend, f"/api/v1/competitions/{competition}")
    raw = data.get("benchmarks") if isinstance(data, dict) else data
    try:
        return TypeAdapter(list[BenchmarkSpec]).validate_python(raw)
    except ValidationError as exc:
        raise ValueError(f"not a list of benchmark specs: {exc}") from None


def _request(method: str, backend: str, path: str, **kwargs: Any) -> Any:
    try:
        with httpx.Client(base_url=backend, timeout=30) as http:
            response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ValueError(f"{backend}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ValueError(f"{method} {path}: {response.status_code} {detail}")
    return response.json()


def _upload(backend: str, competition: str, api_key: str, body: dict[str, Any]) -> None:
    try:
        _request(
            "PUT",
            backend,
            f"/api/v1/admin/competitions/{competition}/baselines",
            json=body,
            headers={"Authorization": f"Bearer {api_key}"},
        )
    except ValueError as exc:
        raise _fail(str(exc), 1) from None


def _print_table(result: Any) -> None:
    table = Table(title=f"baselines ({result.episodes_per_task} episodes per task)")
    for column in ("agent", "success", "95% CI", "mean return", "steps", "seconds"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for agent, score in result.agents.items():
        table.add_row(
            agent,
            f"{score.success_rate:.3f}",
            f"{score.ci_low:.2f}–{score.ci_high:.2f}",
            f"{score.mean_return:.1f}",
            str(score.steps),
            f"{score.seconds:.1f}",
        )
    Console().print(table)
