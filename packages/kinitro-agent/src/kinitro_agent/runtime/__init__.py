"""The agent runtime: the only Kinitro code that imports a miner's code.

It runs *inside* the sandbox, on the agent environment (this distribution, numpy and
msgpack: nothing else of Kinitro, no simulator), started by the evaluator's sandbox::

    python -m kinitro_agent.runtime --bundle DIR (--fd N | --socket PATH | --tcp HOST:PORT)
                                    [--ready-fd N] [--max-frame BYTES]

It reads the bundle manifest ``kinitro.toml`` (``name``, ``entrypoint = "module:Class"``,
``spec_version``), puts the bundle directory first on ``sys.path``, imports the entrypoint
class and serves the agent RPC (``docs/agent-rpc.md``, :mod:`kinitro_agent.rpc`).

The agent class contract (Python)::

    class Agent:
        def __init__(self) -> None: ...                        # no arguments
        def setup(self, observation_spec, action_spec) -> None  # optional, called on hello
        def reset(self, task) -> None: ...                     # task info, never the seed
        def act(self, observation) -> numpy.ndarray: ...       # one action per step
        def close(self) -> None: ...                           # optional

``task`` is a dict (``name``, ``benchmark_id``, ``max_steps``, ``metadata``) that also
allows attribute access (``task.name``); see ``TaskView``. ``name`` is ``""`` when the
competition hides task names; nothing in it derives from the episode seed.

Readiness: the runtime writes ``ready\\n`` to ``--ready-fd`` once it can serve, *before*
importing any miner code, so a sandbox that never becomes ready is an infrastructure
fault while an import error or a hang in the miner's module is the agent's (reported as a
``load_failed`` error or a timeout on ``hello``).

Errors raised by the miner's code are answered with ``error`` messages (``agent_exception``,
``load_failed``, ``invalid_action``); the runtime itself keeps serving. Misbehaviour the
runtime cannot see (a miner writing to the socket directly) is caught by the client, which
validates everything it receives.
"""
