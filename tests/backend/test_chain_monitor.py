"""Chain monitor: rejections with reasons (API + realtime feed), dedup, resumable scan."""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
from typing import Any

from kinitro.backend.chain_monitor import ChainMonitor
from kinitro.backend.db import repo_chain
from kinitro.chain.models import CommitmentRecord
from kinitro.protocol.commitment import encode_commitment
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, new_key, upload, wait_for
from .test_flow import commit_artifact, get
from .test_realtime import next_event, subscribe


async def _submission_of(backend: Backend, hotkey: str) -> dict[str, Any] | None:
    page = await get(backend, "/api/v1/submissions", miner_hotkey=hotkey)
    return page["items"][0] if page["items"] else None


async def _rejected(backend: Backend, hotkey: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        sub = await _submission_of(backend, hotkey)
        return sub if sub and sub["status"] == "rejected" else None

    try:
        return dict(await wait_for(check, within=15))
    except AssertionError:
        raise AssertionError(f"{hotkey}: {await _submission_of(backend, hotkey)}") from None


async def test_rejections_carry_reasons(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    # artifact_deadline_s=0: an unreadable artifact is rejected at the first look
    async with make_backend(artifact_max_bytes=1000, artifact_deadline_s=0) as backend:
        await create_competition(backend, "mt1")
        await create_competition(backend, "sleepy", active=False)
        feed, _ = await subscribe(backend, event_types=["submission_rejected"])

        garbage = await net.neuron()
        await net.chain.commit(garbage, "this is not a commitment")
        unknown = await commit_artifact(net, registry, cid="nope")
        inactive = await commit_artifact(net, registry, cid="sleepy", content=b"b2")
        mismatch = await commit_artifact(net, registry, content=b"b3", sha256="0" * 64)
        huge = await commit_artifact(net, registry, content=b"x" * 5000, repo="miner/big")
        missing = await net.neuron()
        await net.chain.commit(
            missing,
            encode_commitment(
                competition_id="mt1",
                registry="local",
                repo="miner/ghost",
                revision="0123456789abcdef",
                sha256="1" * 64,
            ),
        )
        expected = {
            garbage.ss58_address: "invalid_commitment",
            unknown.ss58_address: "unknown_competition",
            inactive.ss58_address: "competition_inactive",
            mismatch.ss58_address: "sha256_mismatch",
            huge.ss58_address: "artifact_too_large",
            missing.ss58_address: "artifact_unavailable",
        }
        for hotkey, reason in expected.items():
            sub = await _rejected(backend, hotkey)
            assert sub["rejection_reason"] == reason, sub
            assert sub["rejection_detail"]
        seen = {}
        while len(seen) < len(expected):
            event = await next_event(feed, within=10)
            seen[event.miner_hotkey] = event.reason
        assert seen == expected
        jobs = await get(backend, "/api/v1/jobs")
        assert jobs["total"] == 0
        await feed.close()


async def test_unregistered_hotkeys_are_ignored_and_scan_resumes(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend)
        miner = await commit_artifact(net, registry)
        await wait_for(lambda: _submission_of(backend, miner.ss58_address), within=15)
        progress = await _scan_block(backend)
        assert progress is not None
        # a commitment whose hotkey is no longer registered (uid None) is ignored
        monitor = ChainMonitor(backend.state)
        gone = CommitmentRecord(
            netuid=net.chain.netuid,
            hotkey=new_key().ss58_address,
            uid=None,
            block=3,
            data="whatever",
        )
        assert await monitor.record(gone) is False
        assert await _submission_of(backend, gone.hotkey) is None
    # the scan position survives a restart and the same commitment is not recorded twice
    async with make_backend() as backend:
        await asyncio.sleep(1.0)
        page = await get(backend, "/api/v1/submissions")
        assert page["total"] == 1
        assert (await _scan_block(backend) or 0) >= progress


async def _scan_block(backend: Backend) -> int | None:
    async with backend.state.engine.connect() as conn:
        return await repo_chain.last_block(conn, "commitments")


async def test_new_commitment_supersedes_and_copies_are_credited_to_the_first(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    original = await commit_artifact(net, registry, content=b"same-bundle")
    first = await wait_for(lambda: _scheduled(backend, original.ss58_address), within=15)
    copier = await commit_artifact(net, registry, content=b"same-bundle", repo="copier/agent")
    copy = await wait_for(lambda: _scheduled(backend, copier.ss58_address), within=15)
    assert copy["credited_submission_id"] == first["id"]
    assert first["credited_submission_id"] == first["id"]
    # the original miner commits a new bundle: the old submission is superseded
    await asyncio.sleep(0.3)  # commit rate limit: one block
    ref = upload(registry, "miner/agent", b"v2")
    await net.chain.commit(
        original,
        encode_commitment(
            competition_id="mt1",
            registry="local",
            repo=ref.repo,
            revision=ref.revision,
            sha256=ref.sha256,
        ),
    )

    async def superseded() -> bool:
        sub = await get(backend, f"/api/v1/submissions/{first['id']}")
        return sub["status"] == "superseded" and all(j["state"] == "cancelled" for j in sub["jobs"])

    await wait_for(superseded, within=15)


async def _scheduled(backend: Backend, hotkey: str) -> dict[str, Any] | None:
    sub = await _submission_of(backend, hotkey)
    return sub if sub and sub["status"] == "scheduled" else None


# ------------------------------------------------------------------ hostile miners


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


MANIFEST = _file(
    "kinitro.toml", b'name = "hostile"\nentrypoint = "agent:Agent"\nspec_version = 1\n'
)
AGENT = _file(
    "agent.py", b"class Agent:\n    def act(self, observation):\n        return observation\n"
)


def _hostile_archives() -> dict[str, tuple[bytes, str]]:
    """name → (archive bytes, expected problem in the rejection detail)."""
    link = tarfile.TarInfo("agent.py")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    bomb = tarfile.TarInfo("weights.bin")
    bomb.size = 10**12  # declared, never written: a header claiming a terabyte
    return {
        "traversal": (_tar([MANIFEST, AGENT, _file("../../escape.py", b"x")]), "unsafe"),
        "absolute": (_tar([MANIFEST, AGENT, _file("/etc/cron.d/x", b"x")]), "unsafe"),
        "symlink": (_tar([MANIFEST, (link, None)]), "regular files"),
        "bomb": (_tar([MANIFEST, AGENT, (bomb, None)]), "oversize"),
        "no-manifest": (_tar([AGENT]), "missing_manifest"),
        "no-entrypoint": (_tar([MANIFEST]), "missing_entrypoint"),
        "bad-manifest": (_tar([_file("kinitro.toml", b"name = [\x00"), AGENT]), "manifest"),
        "gzip": (gzip.compress(_tar([MANIFEST, AGENT])), "bad_archive"),
    }


async def test_hostile_commitments_and_bundles_are_rejected_and_the_monitor_keeps_going(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(artifact_max_bytes=256 * 1024) as backend:
        await create_competition(backend, "mt1")
        feed, _ = await subscribe(backend, event_types=["submission_rejected"])
        expected: dict[str, tuple[str, str]] = {}  # hotkey → (reason, detail fragment)

        # garbage and unicode-tricky text committed on the real chain
        texts = {
            "nul": ("k1:mt1:l:miner/agent\x00:r01:" + "A" * 43, "NUL"),
            "fullwidth": ("k1:mt1:l:ｍｉｎｅｒ/agent:r01:" + "A" * 43, "repo"),
            "rtl-override": ("k1:mt1\u202e:l:miner/agent:r01:" + "A" * 43, "competition_id"),
            "zero-width": ("k1:mt1:l:miner/age\u200bnt:r01:" + "A" * 43, "repo"),
            "emoji": ("🦀" * 32, "commitment"),
        }
        for text, fragment in texts.values():
            miner = await net.neuron()
            await net.chain.commit(miner, text)
            expected[miner.ss58_address] = (
                "invalid_commitment",
                fragment,
            )
        # archives that would escape, explode or not load, pinned correctly on chain
        for name, (archive, fragment) in _hostile_archives().items():
            miner = await commit_artifact(net, registry, content=archive, repo=f"evil/{name}")
            expected[miner.ss58_address] = ("invalid_bundle", fragment)
        # what another chain adapter could hand over: unpaired surrogates, oversize data
        monitor = ChainMonitor(backend.state)
        head = await net.chain.block()
        raw = {
            "k1:mt1:l:\ud800/agent:r01:" + "A" * 43: "Unicode",
            "k1:" + "界" * 5000: "128-byte limit",
        }
        for data, fragment in raw.items():
            hotkey = new_key().ss58_address
            record = CommitmentRecord(
                netuid=net.chain.netuid, hotkey=hotkey, uid=9, block=head, data=data
            )
            assert await monitor.record(record) is True
            expected[hotkey] = ("invalid_commitment", fragment)

        # ... and then an honest miner with a real bundle is accepted
        good = await commit_artifact(
            net, registry, content=_tar([MANIFEST, AGENT]), repo="honest/agent"
        )
        assert (await wait_for(lambda: _scheduled(backend, good.ss58_address), within=20))["id"]

        for hotkey, (reason, fragment) in expected.items():
            sub = await _rejected(backend, hotkey)
            assert sub["rejection_reason"] == reason, sub
            assert fragment in sub["rejection_detail"], sub
            assert len(sub["commitment"]) < 1000
        seen: dict[str, str] = {}
        while len(seen) < len(expected):
            event = await next_event(feed, within=10)
            seen[event.miner_hotkey] = event.reason
        assert seen == {hotkey: reason for hotkey, (reason, _) in expected.items()}
        await feed.close()


async def test_a_submission_whose_verification_keeps_crashing_does_not_block_others(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        real = backend.state.verifier

        class Exploding:
            """The real verifier, except for one repo where it hits an unexpected bug."""

            async def verify(self, commitment: Any, max_bytes: int) -> int:
                if commitment.repo == "bug/agent":
                    raise RuntimeError("unexpected")
                return int(await real.verify(commitment, max_bytes))

        backend.state.verifier = Exploding()
        await create_competition(backend, "mt1")
        poison = await commit_artifact(net, registry, content=b"p", repo="bug/agent")
        good = await commit_artifact(net, registry, content=b"g", repo="good/agent")
        await wait_for(lambda: _scheduled(backend, good.ss58_address), within=15)
        sub = await _rejected(backend, poison.ss58_address)
        assert sub["rejection_reason"] == "verification_failed"
        assert "RuntimeError" in sub["rejection_detail"]
