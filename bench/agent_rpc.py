"""Agent RPC benchmark: round-trip latency, and eval-loop throughput vs the raw simulator.

Measures, through the real bubblewrap sandbox and the real agent runtime:

1. RPC round trip (``AgentClient.act``) p50/p99 for a 39-float state observation and for
   an 84×84×3 uint8 image, with a zero-compute agent.
2. On the Meta-World MT10 task mix, K environments per task (``--slots``, default 8), all
   interleaved per task and round (rotating which mode goes first) in the same process on
   the same core:

   * **raw**: ``env.step`` with a constant action on one env, consecutive steps — the
     simulator alone, at its best (the headline ratio's reference);
   * **raw, K in turn**: the K envs stepped in turn with a constant action — what
     lockstep costs the simulator by itself (each env's state is cache-cold at its turn);
   * **loop**: the evaluator's loop with a zero-compute agent in the sandbox: the K
     episodes in lockstep, one ``act_batch`` round trip per step for all K (the agent's
     manifest grants K slots; the K latest observations passed as a list, as
     ``run_batch`` does), then K ``env.step`` — what a rollout worker does;
   * **loop, 1 slot**: the same with one episode per round trip (``act``), for reference;
   * **floor**: ``env.step`` + a round trip per step to a bare echo process (no sandbox,
     no codec): what any out-of-process agent called once per step costs;
   * **floor, K per round trip**: the K envs in turn + one bare echo round trip per K
     steps: the floor of any lockstep protocol with an out-of-process agent on this core.

   Each mode runs in blocks of ``--steps`` lockstep rounds, modes interleaved block by
   block. Ratios come from total times, and again from each task's 10th-percentile block
   (robust to other tenants' bursts on a shared machine, which only ever add time).
   The agent's context switches per round trip are counted from ``/proc``, and the CPU
   time per round trip beyond K envs stepped in turn is split between the agent process
   and the evaluator thread (client code, syscalls, and the simulator's cache refill
   after the agent ran), next to the same split for the bare echo.

   * **loop, unhardened** (``--compare-unhardened``): the loop through a sandbox without
     its cgroup and seccomp filter, interleaved with the others: what the hardening costs.

   Ratios are raw time / mode time (1.0 = no overhead; target ≥ 0.90 for the loop), by
   wall clock and by CPU time (evaluator thread + agent process, from schedstat); the
   loop's is also split into its two factors (K envs in turn, and the RPC on top).
3. The production driver (``kinitro.evaluator.rollout.episode.run_batch``: episode reset,
   per-step recording into the action log buffers, success tracking) against raw
   episodes (reset + steps), same envs.

The process pins itself to one core before starting the sandbox, so the agent runtime
inherits the same affinity: on a VM a cross-core wake-up costs ~70 µs, a same-core switch
a few. On a shared machine other tenants' processes run whenever the loop blocks on the
agent; ``--isolate fifo`` (root) runs this process and the sandbox under SCHED_FIFO to
emulate a dedicated core (as on a production evaluator), for raw and loop alike.
Prints a Rich table, then one JSON line.

    .venv/bin/python bench/agent_rpc.py [--slots 8] [--rounds 16] [--steps 25]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from kinitro.evaluator.agent_client import AgentClient, CallTimeouts
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.results import EpisodeSpec
from kinitro.evaluator.rollout.episode import EpisodePlay, run_batch
from kinitro.evaluator.sandbox import BubblewrapSandbox, SandboxLimits
from kinitro.protocol.agent_rpc import ArraySpec, TaskInfo

ZERO_AGENT = """
import numpy as np

class Agent:
    def __init__(self):
        self.action = np.zeros(4, np.float32)

    def reset(self, task):
        pass

    def act(self, observation):
        return self.action
"""

ACTION_SPEC = ArraySpec("float32", (4,), -1.0, 1.0)
STATE_SPEC = ArraySpec("float64", (39,))
IMAGE_SPEC = ArraySpec("uint8", (84, 84, 3))
TIMEOUTS = CallTimeouts(hello=60.0, reset=10.0, act=5.0, close=1.0)
MODES: tuple[str, ...] = ("raw", "rawk", "loop", "loop1", "floor", "floork")


def make_bundle(root: Path, slots: int) -> Path:
    root.mkdir(mode=0o755)
    (root / "kinitro.toml").write_text(
        f'name = "zero"\nentrypoint = "agent:Agent"\nslots = {slots}\n'
    )
    (root / "agent.py").write_text(ZERO_AGENT)
    for p in root.iterdir():
        p.chmod(0o644)
    return root


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def round_trips(agent: AgentClient, obs: np.ndarray, calls: int) -> list[int]:
    for _ in range(200):  # warm-up
        agent.act(obs)
    out = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t = clock()
        agent.act(obs)
        out.append(clock() - t)
    return out


def mt10_tasks() -> list[str]:
    from metaworld import env_dict  # noqa: PLC0415 - the simulator loads only where an env is built

    return list(env_dict.MT10_V3)


def switches_of(pids: list[int]) -> int:
    """Context switches (voluntary + involuntary) of processes so far, from /proc."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.endswith("ctxt_switches", 0, line.find(":")):
                    total += int(line.split()[1])
    return total


def cpu_ns_of(pids: list[int]) -> int:
    """On-CPU time (ns) of other processes, from /proc/<pid>/schedstat (precise)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total


class Segment:
    """Accumulated wall and CPU time of measured steps (episode resets excluded)."""

    def __init__(self) -> None:
        self.wall = 0
        self.cpu = 0
        self.agent_cpu = 0
        self.steps = 0
        self.switches = 0
        self.blocks: list[int] = []
        """Wall time of each block added (all blocks of a mode have the same steps)."""

    def add(self, other: Segment) -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.agent_cpu += other.agent_cpu
        self.steps += other.steps
        self.switches += other.switches
        self.blocks.append(other.wall)

    def p10(self) -> float:
        """10th-percentile block time: the block as it runs without other tenants."""
        return float(np.percentile(self.blocks, 10))


ECHO_PEER = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
buf = bytearray(65536)
reply = bytes(16)
while s.recv_into(buf):
    s.sendall(reply)
"""


class EchoPeer:
    """Floor reference: a bare process on the same core that answers every request with 16
    bytes: no sandbox, no codec, no validation — only the two context switches."""

    def __init__(self) -> None:
        self.sock, child = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ECHO_PEER, str(child.fileno())], pass_fds=(child.fileno(),)
        )
        child.close()
        self.action = np.zeros(4, np.float32)
        self.buf = bytearray(64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.sock.sendall(obs.tobytes())
        self.sock.recv_into(self.buf)
        return self.action

    def close(self) -> None:
        self.sock.close()
        self.proc.wait(5)


class TaskEnvs:
    """K Meta-World environments of one task, stepped round robin (one per slot)."""

    def __init__(self, task: str, k: int, seed: int) -> None:
        import gymnasium as gym  # noqa: PLC0415 - the simulator loads only where an env is built
        import metaworld  # noqa: F401, PLC0415 - registers the Meta-World envs, where an env is built

        self.envs = []
        for i in range(k):
            env = gym.make("Meta-World/MT1", env_name=task, seed=seed + i)
            self.envs.append(env)
        self.obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]
        self.batch = np.empty((k, *self.obs[0].shape), self.obs[0].dtype)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def measure(
    te: TaskEnvs, mode: str, steps: int, agents: dict[str, Any], agent_pids: dict[str, list[int]]
) -> Segment:
    """``steps`` rounds of ``mode`` over the task's K envs (K env steps per round)."""
    k = len(te.envs)
    envs, obs, batch = te.envs, te.obs, te.batch
    zero = np.zeros(4, np.float32)
    slots = list(range(k))
    seg = Segment()
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    resets = 0
    pids = agent_pids.get(mode, [])
    agent0 = cpu_ns_of(pids)
    switches0 = switches_of(pids)
    cpu0 = cpu_clock()
    t0 = clock()
    batched = mode in ("loop", "loopu")
    for _ in range(steps):
        if batched:  # as run_batch does: the K latest observations, as a list
            actions = agents[mode].act_batch(slots, obs)
        elif mode == "floork":
            agents["floor"].act(batch)
        for j in slots:
            if mode == "raw":  # one env, consecutive steps: the simulator at its best
                o, _r, terminated, truncated, _info = envs[0].step(zero)
                if terminated or truncated:
                    r = clock()
                    o, _ = envs[0].reset()
                    resets += clock() - r
                obs[0] = o
                continue
            if mode in ("rawk", "floork"):
                action = zero
            elif batched:
                action = actions[j]
            else:
                action = agents[mode].act(obs[j])
            o, _r, terminated, truncated, _info = envs[j].step(action)
            if terminated or truncated:
                r = clock()
                o, _ = envs[j].reset()
                resets += clock() - r
            obs[j] = o
    seg.wall = clock() - t0 - resets
    seg.cpu = cpu_clock() - cpu0 - resets  # resets are CPU-bound: wall ≈ CPU
    seg.agent_cpu = cpu_ns_of(pids) - agent0
    seg.switches = switches_of(pids) - switches0
    seg.steps = steps * k
    return seg


def production(task: str, k: int, agent: AgentClient, steps: int, episode: int) -> tuple[int, int]:
    """(raw ns, driver ns) for K episodes of ``steps`` steps of ``task``, on the evaluator's
    own environments (``kinitro.evaluator.envs``): raw = reset + constant-action steps;
    driver = ``run_batch`` with the sandboxed agent (reset, act_batch, step, recording)."""

    class Session:  # the AgentSession surface of SandboxedAgent, over the bench's client
        def __init__(self, client: AgentClient) -> None:
            self.slots = client.slots
            self.act = client.act
            self.act_batch = client.act_batch
            self.reset = client.reset

    bench = get_benchmark("metaworld/MT10-v3")
    config = EnvConfig(max_steps=steps)
    envs = [make_env(bench, task, config) for _ in range(k)]
    info = TaskInfo(task, bench.benchmark_id, steps)
    specs = [EpisodeSpec(i, task, episode, 1000 * episode + i) for i in range(k)]
    zero = np.zeros(4, np.float32)
    t = time.perf_counter_ns()
    for env, spec in zip(envs, specs, strict=True):
        env.reset(spec.seed)
        for _ in range(steps):
            env.step(zero)
    raw = time.perf_counter_ns() - t
    plays = [
        EpisodePlay(env, spec, info, max_steps=steps, step_log_interval=50)
        for env, spec in zip(envs, specs, strict=True)
    ]
    t = time.perf_counter_ns()
    outcome = run_batch(plays, Session(agent))  # type: ignore[arg-type]
    driver = time.perf_counter_ns() - t
    assert len(outcome.runs) == k and not outcome.agent_failed, outcome
    for env in envs:
        env.close()
    return raw, driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--slots", type=int, default=8, help="episodes per round trip (K)")
    ap.add_argument("--rounds", type=int, default=16, help="interleaved rounds over MT10")
    ap.add_argument(
        "--steps", type=int, default=25, help="lockstep rounds per block (task, round, mode)"
    )
    ap.add_argument("--rtt-calls", type=int, default=5000, help="timed calls per RTT figure")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: last)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--isolate",
        choices=["none", "nice", "fifo"],
        default="none",
        help="emulate a dedicated core on a shared machine (root): nice -20 or SCHED_FIFO "
        "for this process and the sandbox it starts (inherited); raw and loop alike",
    )
    ap.add_argument(
        "--compare-unhardened",
        action="store_true",
        help="also run the loop through a sandbox without cgroup and seccomp, interleaved",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    modes = MODES + (("loopu",) if args.compare_unhardened else ())
    console = Console(stderr=True)
    k = max(1, args.slots)

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # the sandbox started below inherits this affinity
    if args.isolate == "nice":
        os.nice(-20)
    elif args.isolate == "fifo":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

    limits = SandboxLimits(memory_bytes=4 * 1024**3, cpu_seconds=3600)
    sandbox = BubblewrapSandbox(limits)
    plain = BubblewrapSandbox(limits, cgroups=None, allow_no_cgroup=True, require_seccomp=False)
    plain.seccomp = None  # the same sandbox without its cgroup and seccomp filter
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp) / "zero", k)
        console.print(f"[bold]pinned to CPU {cpu}[/]; starting sandboxes …")
        with (
            sandbox.start(bundle) as run_batched,
            sandbox.start(bundle) as run_single,
            sandbox.start(bundle) as run_image,
            plain.start(bundle) if args.compare_unhardened else contextlib.nullcontext() as run_u,
        ):

            def connect(running: Any, spec: ArraySpec, slots: int) -> AgentClient:
                client = AgentClient.connect(running.endpoint, spec, ACTION_SPEC, timeouts=TIMEOUTS)
                client.hello(slots)
                for slot in range(client.slots):
                    client.reset(TaskInfo("reach-v3", "metaworld/MT10-v3", 500), slot)
                return client

            batched = connect(run_batched, STATE_SPEC, k)
            single = connect(run_single, STATE_SPEC, 1)
            image_agent = connect(run_image, IMAGE_SPEC, 1)
            assert batched.slots == k, f"agent granted {batched.slots} of {k} slots"

            rng = np.random.default_rng(args.seed)
            state_rtt = round_trips(single, rng.random(39), args.rtt_calls)
            image = rng.integers(0, 255, (84, 84, 3), dtype=np.uint8)
            image_rtt = round_trips(image_agent, image, args.rtt_calls)
            image_agent.close()

            tasks = mt10_tasks()
            console.print(f"building {k} envs for each of the {len(tasks)} MT10 tasks …")
            envs = {t: TaskEnvs(t, k, args.seed + 100 * i) for i, t in enumerate(tasks)}
            echo = EchoPeer()
            agents: dict[str, Any] = {"loop": batched, "loop1": single, "floor": echo}
            if run_u is not None:
                agents["loopu"] = connect(run_u, STATE_SPEC, k)
            pids = {
                **({"loopu": run_u.pids()} if run_u is not None else {}),
                "loop": run_batched.pids(),
                "loop1": run_single.pids(),
                "floor": [echo.proc.pid],
                "floork": [echo.proc.pid],
            }
            totals = {m: {t: Segment() for t in tasks} for m in modes}
            for t in tasks:  # warm-up every path once per task
                for m in modes:
                    measure(envs[t], m, 5, agents, pids)
            load_before = os.getloadavg()[0]
            for r in range(args.rounds):
                console.print(f"round {r + 1}/{args.rounds}")
                for t in tasks:
                    shift = r % len(modes)
                    for m in modes[shift:] + modes[:shift]:  # rotate which mode goes first
                        totals[m][t].add(measure(envs[t], m, args.steps, agents, pids))
            for te in envs.values():
                te.close()
            console.print("production driver vs raw episodes …")
            prod_raw = prod_loop = 0
            for i, t in enumerate(tasks):
                raw_ns, prod_ns = production(t, k, batched, args.steps, i)
                prod_raw += raw_ns
                prod_loop += prod_ns
            load_after = os.getloadavg()[0]
            batched.close()
            single.close()
            echo.close()
            if "loopu" in agents:
                agents["loopu"].close()

    s50, s99 = percentiles(state_rtt)
    i50, i99 = percentiles(image_rtt)

    def total(mode: str, attr: str) -> int:
        return sum(getattr(seg, attr) for seg in totals[mode].values())

    n_steps = total("raw", "steps")
    wall = {m: total(m, "wall") for m in modes}
    cpu_ns = {m: total(m, "cpu") + total(m, "agent_cpu") for m in modes}
    ratio = {m: wall["raw"] / wall[m] for m in modes}
    cpu_ratio = {m: cpu_ns["raw"] / cpu_ns[m] for m in modes}
    robust = {
        m: sum(totals["raw"][t].p10() for t in tasks) / sum(totals[m][t].p10() for t in tasks)
        for m in modes
    }
    loop_round_trips = total("loop", "steps") / k
    switches = total("loop", "switches") / loop_round_trips

    def cpu_split(mode: str) -> tuple[float, float]:
        """CPU µs per round trip on top of K env steps in turn: the peer process's, and
        the evaluator thread's own share (client codec, syscalls, the switches' cost to it,
        the simulator's cache refill)."""
        trips = n_steps / k  # every mode runs the same number of env steps
        own = total(mode, "cpu") - total("rawk", "cpu")
        return total(mode, "agent_cpu") / trips / 1e3, own / trips / 1e3

    agent_us, client_us = cpu_split("loop")
    echo_us, echo_client_us = cpu_split("floork")
    per_task = {t: totals["raw"][t].wall / totals["loop"][t].wall for t in tasks}
    prod_ratio = prod_raw / prod_loop

    table = Table(
        title=f"Agent RPC through the bubblewrap sandbox (CPU {cpu}, same core, "
        f"K = {k} slots, isolation: {args.isolate})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("RPC round trip, 39-float state: p50 / p99", f"{s50:.1f} / {s99:.1f} µs")
    table.add_row("RPC round trip, 84×84×3 uint8: p50 / p99", f"{i50:.1f} / {i99:.1f} µs")
    us: Callable[[float], str] = lambda ns: f"{ns / n_steps / 1e3:.1f} µs"  # noqa: E731
    table.add_row("MT10 raw env step (one env, consecutive steps), wall (mean)", us(wall["raw"]))
    table.add_row(f"raw, {k} envs stepped in turn (lockstep's cache cost)", us(wall["rawk"]))
    table.add_row(f"loop: env step + agent, {k} episodes per round trip", us(wall["loop"]))
    table.add_row("loop, 1 episode per round trip", us(wall["loop1"]))
    table.add_row(
        f"[bold]throughput ratio loop / raw, wall[/] (K = {k}; target ≥ 0.90)",
        f"[bold]{ratio['loop']:.3f}[/]",
    )
    table.add_row("  robust: from each task's 10th-percentile block", f"{robust['loop']:.3f}")
    if "loopu" in ratio:
        table.add_row(
            "  the same sandbox without cgroup + seccomp (wall / robust)",
            f"{ratio['loopu']:.3f} / {robust['loopu']:.3f}",
        )
    table.add_row("  CPU-time ratio (evaluator + agent)", f"{cpu_ratio['loop']:.3f}")
    table.add_row(
        f"  of which: {k} envs in turn / RPC (loop vs raw in turn)",
        f"{ratio['rawk']:.3f} / {wall['rawk'] / wall['loop']:.3f}",
    )
    table.add_row(
        "ratio with 1 episode per round trip (wall / CPU)",
        f"{ratio['loop1']:.3f} / {cpu_ratio['loop1']:.3f}",
    )
    table.add_row(
        "floor: bare echo per step, no sandbox/codec (wall / CPU)",
        f"{ratio['floor']:.3f} / {cpu_ratio['floor']:.3f}",
    )
    table.add_row(
        f"floor: {k} envs in turn + bare echo per {k} steps (wall / robust)",
        f"{ratio['floork']:.3f} / {robust['floork']:.3f}",
    )
    table.add_row("agent context switches per round trip (loop)", f"{switches:.2f}")
    table.add_row(
        "CPU per round trip (loop, beyond K envs in turn): agent / evaluator",
        f"{agent_us:.1f} / {client_us:.1f} µs",
    )
    table.add_row(
        "  the same for the bare echo per K steps: echo / evaluator",
        f"{echo_us:.1f} / {echo_client_us:.1f} µs",
    )
    table.add_row("production driver (run_batch + recording) vs raw episodes", f"{prod_ratio:.3f}")
    table.add_row(
        "per-task loop ratio min / median / max",
        f"{min(per_task.values()):.3f} / {statistics.median(per_task.values()):.3f}"
        f" / {max(per_task.values()):.3f}",
    )
    table.add_row("load average before / after (2 cores)", f"{load_before:.2f} / {load_after:.2f}")
    table.add_row("env steps per mode", str(n_steps))
    Console().print(table)
    print(
        json.dumps(
            {
                "bench": "agent_rpc",
                "cpu": cpu,
                "slots": k,
                "isolate": args.isolate,
                "rpc_state_p50_us": round(s50, 2),
                "rpc_state_p99_us": round(s99, 2),
                "rpc_image_p50_us": round(i50, 2),
                "rpc_image_p99_us": round(i99, 2),
                "raw_step_us": round(wall["raw"] / n_steps / 1e3, 2),
                "loop_step_us": round(wall["loop"] / n_steps / 1e3, 2),
                "ratio": round(ratio["loop"], 4),
                "robust_ratio": round(robust["loop"], 4),
                "cpu_ratio": round(cpu_ratio["loop"], 4),
                "ratio_1_slot": round(ratio["loop1"], 4),
                **(
                    {
                        "ratio_unhardened": round(ratio["loopu"], 4),
                        "robust_ratio_unhardened": round(robust["loopu"], 4),
                    }
                    if "loopu" in ratio
                    else {}
                ),
                "raw_in_turn_ratio": round(ratio["rawk"], 4),
                "loop_vs_raw_in_turn": round(wall["rawk"] / wall["loop"], 4),
                "echo_floor_ratio": round(ratio["floor"], 4),
                "echo_floor_k_ratio": round(ratio["floork"], 4),
                "echo_floor_k_robust_ratio": round(robust["floork"], 4),
                "raw_in_turn_robust_ratio": round(robust["rawk"], 4),
                "agent_switches_per_round_trip": round(switches, 2),
                "agent_cpu_per_round_trip_us": round(agent_us, 1),
                "evaluator_cpu_per_round_trip_us": round(client_us, 1),
                "echo_cpu_per_round_trip_us": round(echo_us, 1),
                "echo_evaluator_cpu_per_round_trip_us": round(echo_client_us, 1),
                "production_ratio": round(prod_ratio, 4),
                "loadavg": [round(load_before, 2), round(load_after, 2)],
                "target": 0.90,
                "per_task_ratio": {t: round(v, 4) for t, v in per_task.items()},
                "steps_per_mode": n_steps,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
