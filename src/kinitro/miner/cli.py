"""`kinitro miner` commands.

Each command lives in its own module; this file only mounts them:

* ``init``, ``package``, ``upload`` — :mod:`kinitro.miner.submit_cmds`
* ``commit`` — :mod:`kinitro.miner.commit_cmd`
* ``publish`` — :mod:`kinitro.miner.publish_cmd`
* ``status`` — :mod:`kinitro.miner.status_cmd`
* ``eval`` — :mod:`kinitro.miner.eval_cmd`
"""

from __future__ import annotations

import typer

from kinitro.miner.commit_cmd import commit_command
from kinitro.miner.eval_cmd import eval_command
from kinitro.miner.publish_cmd import publish_command
from kinitro.miner.status_cmd import status_command
from kinitro.miner.submit_cmds import init_command, package_command, upload_command

app = typer.Typer(
    help="Miner tools: create, package, test, evaluate, upload, commit and publish agent bundles.",
    no_args_is_help=True,
)

app.command("init")(init_command)
app.command("package")(package_command)
app.command("eval")(eval_command)
app.command("upload")(upload_command)
app.command("commit")(commit_command)
app.command("publish")(publish_command)
app.command("status")(status_command)
