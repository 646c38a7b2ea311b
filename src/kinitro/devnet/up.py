"""``kinitro devnet up``: the whole network on this machine, with embedded defaults.

Steps (each idempotent, so a second run on the same data directory resumes):

1. PostgreSQL: a private cluster under the data directory (or ``--database-url``), one
   database for the backend and one per validator; the validators' are migrated here,
   the backend migrates its own when it starts.
2. LocalChain service, wallets with real sr25519 keys, hotkeys registered; validators get
   stake and a validator permit.
3. Backend, then the example competition (admin API).
4. Two validators, each with its own database and its evaluator; a render worker (episode
   videos, after each round's reveal).
5. Three example miners: the scripted template agent, a random agent, and a near-copy of
   the first (one comment changed: another sha256) committed later by another hotkey.
6. Live progress until the first weights are on the chain; then the first round's reveal
   is awaited and checked with ``kinitro round verify`` (``round_verified``), the
   leaderboard and the weights are printed, and the network keeps running until Ctrl-C
   (or exits with ``--exit-after-weights``: 0 only when the round verified).

The steps are in ``network`` (1-4), ``miners`` (5) and ``progress`` (6); this module runs
them in order under a live view and stops every child process on the way out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import time

from rich.console import Console
from rich.live import Live

from kinitro.devnet.miners import submit_miners
from kinitro.devnet.network import Devnet, DevnetError, UpOptions
from kinitro.devnet.progress import Watcher, render_tables

__all__ = ["DevnetError", "UpOptions", "run_up"]


def run_up(opts: UpOptions) -> int:
    console = Console(stderr=opts.json_output)
    devnet = Devnet(opts, console)
    watcher = Watcher(devnet)
    interrupted = False

    def _on_stop_signal(*_: object) -> None:
        raise KeyboardInterrupt

    # SIGINT explicitly too: a process started in the background of a non-interactive
    # shell (`kinitro devnet up &` in a script, a CI job) inherits SIGINT ignored, and
    # Ctrl-C or `kill -INT` must still stop the network and every process it started.
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    try:
        with Live(
            render_tables(devnet), console=console, refresh_per_second=2, transient=False
        ) as live:

            def render() -> None:
                live.update(render_tables(devnet))

            for step in (
                devnet.start_postgres,
                devnet.start_chain,
                devnet.setup_wallets,
                devnet.start_backend,
                devnet.create_competition,
                devnet.start_validators,
                functools.partial(submit_miners, devnet),
            ):
                step()
                render()
            watcher.wait_for_weights(render)
            watcher.verify_first_round(render)
            render()
        summary = watcher.summary()
        if opts.json_output:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()
        else:
            console.print()
            console.print(f"[green]First weights are on chain after {summary['elapsed_s']}s.")
            rnd = summary["round"]
            if summary["round_verified"]:
                console.print(
                    f"[green]Round {rnd.get('round_id')} revealed and verified: commitment on "
                    f"chain at block {rnd.get('commit_block')}, {rnd.get('episodes')} episodes' "
                    f"seeds and logs checked, {rnd.get('replayed')} replayed."
                )
            else:
                console.print(f"[red]Round {rnd.get('round_id')} did NOT verify: {rnd}")
        if opts.exit_after_weights:
            return 0 if summary["round_verified"] else 1
        console.print("The network keeps running. Press Ctrl-C to stop it.")
        while True:
            for note in devnet.supervisor.poll():
                console.print(f"[yellow]{note}")
            time.sleep(1.0)
    except KeyboardInterrupt:
        interrupted = True
        return 130
    except DevnetError as exc:
        console.print()
        console.print(f"[red]devnet: {exc}", highlight=False)
        return 1
    finally:
        if interrupted:
            console.print("Stopping the devnet…")
        devnet.supervisor.stop_all()
        if devnet.cluster is not None:
            with contextlib.suppress(Exception):
                devnet.cluster.stop()
        if interrupted:
            console.print("Stopped. Run it again to resume from the same data directory.")
