"""Root of Kinitro's exception tree.

Each package defines its own subtree under :class:`KinitroError`::

    KinitroError
    ├── ConfigError              bad or missing settings (core)
    ├── ProtocolError            malformed wire data (protocol)
    ├── ChainError               chain port failures (chain)
    ├── StorageError             artifact / media store failures (storage)
    ├── JobQueueError            validator database queue failures (jobqueue)
    └── <role>Error              one per role package

Errors are mapped to HTTP status codes, WebSocket close codes or CLI exit codes only
at the edge of a process.
"""


class KinitroError(Exception):
    """Base class of every error Kinitro raises on purpose."""


class ConfigError(KinitroError):
    """Settings are missing, malformed or unsafe for the chosen environment."""
