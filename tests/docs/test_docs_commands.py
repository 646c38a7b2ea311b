"""Docs that are not executed drift: check every `kinitro` command the docs show.

1. Every ``kinitro …`` line in a bash/console block of README.md, docs/*.md,
   docs/guides/*.md and docs/ops/*.md must parse against the real CLI: the command path
   exists, every option exists and every value has the right type (click's own parser, no
   command is run).
2. Blocks preceded by ``<!-- doc-test: run -->`` are executed for real, in order, by bash
   in a scratch directory with a running LocalChain and the environment set by the
   ``local_chain_for_docs`` fixture (``tests/docs/conftest.py``): the guide's walkthrough
   must work as written. The guides of ``DEVNET_DOCS`` (the miner guide) run against a
   live ``kinitro devnet up`` instead (``live_devnet``), knowing only its directory: their
   blocks form one shell session (what a block exports, ``eval "$(kinitro devnet env)"``,
   the next one has), and the backend must have scheduled the guide's submission.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.core
import typer.main

# typer vendors its own click (`typer._click`); the `click` package's classes never match.
from typer._click import core as click_core
from typer._click import exceptions as click_exceptions

from kinitro.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "guides").glob("*.md")),
    *sorted((ROOT / "docs" / "ops").glob("*.md")),
]
DEVNET_DOCS = frozenset({"docs/guides/miner.md"})
"""Guides whose walkthrough runs against a live devnet (``live_devnet``), not a LocalChain."""
FENCE = re.compile(
    r"(?P<marker><!-- doc-test: run -->\s*)?```(?P<lang>bash|console|sh|shell)\n"
    r"(?P<body>.*?)```",
    re.DOTALL,
)


def _blocks(path: Path) -> list[tuple[bool, str]]:
    text = path.read_text()
    return [(bool(m["marker"]), m["body"]) for m in FENCE.finditer(text)]


def _commands(body: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if pending:
            line = pending + " " + line
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        line = line.split(" #", 1)[0].strip()
        for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
            for prefix in (".venv/bin/kinitro ", "kinitro "):
                if part.startswith(prefix):
                    lines.append("kinitro " + part[len(prefix) :])
    return lines


def _all_commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for _, body in _blocks(path):
            for command in _commands(body):
                found.append((path.relative_to(ROOT).as_posix(), command))
    return found


COMMANDS = _all_commands()


def test_docs_show_commands() -> None:
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c}" for d, c in COMMANDS])
def test_command_parses_against_the_real_cli(doc: str, command: str) -> None:
    root = typer.main.get_command(app)
    words = shlex.split(os.path.expandvars(command))[1:]
    cmd: click_core.Command = root
    ctx = click_core.Context(root, info_name="kinitro")
    while isinstance(cmd, typer.core.TyperGroup) and words and not words[0].startswith("-"):
        sub = cmd.get_command(ctx, words[0])
        assert sub is not None, f"{doc}: unknown command {words[0]!r} in `{command}`"
        cmd, words = sub, words[1:]
        ctx = click_core.Context(cmd, info_name=cmd.name, parent=ctx)
    if "--help" in words or "-h" in words:
        return
    try:
        cmd.make_context(cmd.name, list(words), parent=ctx.parent, resilient_parsing=False)
    except typer.Exit:
        pass
    except click_exceptions.UsageError as exc:
        pytest.fail(f"{doc}: `{command}` does not parse: {exc.format_message()}")


RUNNABLE = [
    (path.relative_to(ROOT).as_posix(), body)
    for path in DOCS
    for marked, body in _blocks(path)
    if marked
]


def _in_session(body: str, state: Path) -> str:
    """``body`` as one step of a shell session: what earlier blocks exported (``KINITRO_*``)
    is there, and what this one exports is kept for the next."""
    return (
        f'if [ -f "{state}" ]; then source "{state}"; fi\n{body}\n'
        f"export -p | grep -E '^declare -x KINITRO_' > \"{state}\" || true\n"
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("doc", "body"), RUNNABLE, ids=[d for d, _ in RUNNABLE])
def test_walkthrough_runs_as_written(
    doc: str, body: str, local_chain_for_docs, request: pytest.FixtureRequest
) -> None:
    env = {**os.environ, **local_chain_for_docs["env"]}
    if doc in DEVNET_DOCS:
        # written against a devnet: nothing but where it is; `kinitro devnet env` says the rest
        devnet = request.getfixturevalue("live_devnet")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
        env["KINITRO_DEVNET_DIR"] = str(devnet)
        body = _in_session(body, local_chain_for_docs["cwd"].parent / "session.env")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=local_chain_for_docs["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert result.returncode == 0, (
        f"{doc} walkthrough failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    if doc in DEVNET_DOCS and "kinitro miner status" in body:
        # the devnet's backend found the artifact the guide uploaded and scheduled it
        assert re.search(r"· (scheduled|evaluated)", result.stdout), result.stdout
