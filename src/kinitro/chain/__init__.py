"""Chain library: the ``ChainClient`` port and its adapters.

* :mod:`kinitro.chain.port` — the ``ChainClient`` protocol every role codes against.
* :mod:`kinitro.chain.local` — ``LocalChain``: the embedded devnet chain, a small
  persistent HTTP service (``kinitro chain run``) plus the client adapter.
* :mod:`kinitro.chain.bittensor_chain` — ``BittensorChain`` on the bittensor 11 SDK
  (imported lazily).
* :mod:`kinitro.chain.wallets` — bittensor-layout wallets with real sr25519 keys.
* :mod:`kinitro.chain.signing` — sign / verify messages with hotkeys.

Errors (all in :mod:`kinitro.chain.errors`)::

    ChainError                     (KinitroError)
    ├── ChainUnavailableError      endpoint unreachable / bad answer
    ├── NotRegisteredError         hotkey has no uid on the subnet
    ├── AlreadyRegisteredError     hotkey already registered
    ├── PermissionDeniedError      wrong owner, no validator permit
    ├── InvalidSignatureError      signature does not verify
    ├── CommitmentTooLargeError    > 128 bytes
    ├── RateLimitedError           commitment / weights rate limit (retry_in_blocks)
    ├── InvalidWeightsError        empty / negative / unknown uids
    ├── BadNonceError              replayed or raced signed call
    ├── WalletError                missing / unreadable / existing key files
    └── InvalidRequestError        malformed call
"""
