"""Backend role: ``kinitro backend run``.

FastAPI REST + admin API, the validator WebSocket, the public realtime WebSocket, the
chain monitor, the scheduler, scoring and weights, over the backend PostgreSQL.

Modules: :mod:`.app` (``create_app``), :mod:`.deps`, :mod:`.api` (routes),
:mod:`.validator_ws` (the socket) with :mod:`.validator_auth` (``authorize()``) and
:mod:`.validator_signin` (its I/O),
:mod:`.ingest` (reports in, :class:`~.ingest.IngestOutcome` out),
:mod:`.validator_outgoing`, :mod:`.validator_presence` and :mod:`.validator_hub`,
:mod:`.realtime` (the socket) with :mod:`.broadcaster` and :mod:`.snapshot`,
:mod:`.events` (typed realtime events through NOTIFY), :mod:`.chain_monitor`,
:mod:`.scheduler`, :mod:`.rounds` and :mod:`.embargo` (sealed rounds), :mod:`.scoring`
(pure rules), :mod:`.score_engine`, :mod:`.crosscheck`, :mod:`.vetting` and
:mod:`.standing` (checks on ingest, strikes), :mod:`.audits` with :mod:`.audit_pool`
(replay audits after a round's reveal), :mod:`.explain` (leaderboard reasons),
:mod:`.renders` (episode videos), :mod:`.apikeys`, :mod:`.db` (models + repositories).

Errors (:mod:`.errors`)::

    BackendError (KinitroError)
    ├── NotFoundError        404 — unknown competition / submission / job …
    ├── ConflictError        409 — natural key already used with other content
    ├── BadRequestError      400 — well-formed request that makes no sense
    ├── AuthError            401 — missing / unknown / expired / revoked API key
    ├── ForbiddenError       403 — key lacks the role
    │   └── SealedError      403 — derives from a round secret not revealed yet
    │                              (the body carries ``sealed_until``)
    ├── QueueFullError       429 — a bounded queue (episode videos) is full
    ├── UnavailableError     503 — the media store cannot be read now
    ├── AuditWorkerError         — an audit worker did not answer (the audit is retried)
    └── LogMissing               — an action log is not where its validator said
"""
