"""Kinitro wire protocol: every message, the commitment codec and the agent RPC codec.

A pure library (no I/O): pydantic v2 models combined into one discriminated union per
channel, parsed once with a ``TypeAdapter`` and dispatched with ``match``.

* :mod:`kinitro.protocol.common` — shared enums (``JobState``, ``FailureCause``,
  ``ErrorCode``), constrained types and models (``ArtifactRef``, ``BenchmarkSpec``,
  ``TaskMetrics``, ``EvalMetrics``).
* :mod:`kinitro.protocol.conditions` — competition knobs (``Conditions``);
  :mod:`kinitro.protocol.baselines` — reference-agent baselines of a competition;
  :mod:`kinitro.protocol.presets` — competition presets;
  :mod:`kinitro.protocol.coverage` — the coverage rule (when a job's results count).
* :mod:`kinitro.protocol.validator_ws` — backend ↔ validator WebSocket (``/ws/validator``).
* :mod:`kinitro.protocol.runtime` — evaluator runtime versions (simulator stack, benchmark
  ``-vN``) carried by the handshake and every result.
* :mod:`kinitro.protocol.realtime` — public realtime WebSocket (``/ws/realtime``).
* :mod:`kinitro.protocol.commitment` — the ≤ 128-byte chain commitment codec.
* :mod:`kinitro.protocol.agent_rpc` — evaluator ↔ sandboxed agent RPC (msgpack frames).

Errors (all in :mod:`kinitro.protocol.errors`; each carries an ``ErrorCode`` in
``.code``, a default per class)::

    ProtocolError                          (KinitroError)           invalid_message
    ├── MalformedFrameError                not UTF-8 / JSON / an object   malformed_frame
    ├── FrameTooLargeError                 over the channel size limit    frame_too_large
    ├── UnknownMessageTypeError            missing / unknown ``type``     unknown_message_type
    ├── InvalidMessageError                bad fields (``.issues``)       invalid_message
    ├── UnsupportedVersionError            unknown protocol version       unsupported_version
    ├── InvalidArrayError                  wrong dtype / shape / length   invalid_array
    ├── NonFiniteValueError                NaN / inf where forbidden      non_finite_value
    └── CommitmentError                    bad commitment (``.field``)    invalid_commitment
        ├── CommitmentTooLongError         over 128 bytes                 commitment_too_long
        └── UnsupportedCommitmentVersionError  (also UnsupportedVersionError)
                                                                          unsupported_version

Decoders never let another exception escape for bad input: random bytes, truncated or
mutated JSON, unknown types and wrong field types all become one of the above.
"""
