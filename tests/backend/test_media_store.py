"""Production media: the evaluators upload to an S3-compatible bucket (here moto over HTTPS
behind R2's gate, ``tests/s3_server.py``) and the backend serves it at ``/media`` itself,
under the embargo: 403 until the round's reveal, then the very bytes the evaluator put,
at the same link (byte ranges too: videos seek). No setting publishes the bucket:
``media_base_url`` is refused."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from kinitro.backend.settings import Settings
from kinitro.core.db import dsn
from kinitro.evaluator.episode_logger import action_log_key
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.media_s3 import S3MediaStore

from .conftest import Net, create_competition, login, wait_for
from .playing import deliver, episodes_for
from .test_flow import commit_artifact, get

BUCKET = "kinitro-media-backend"
PREFIX = "network"


async def test_media_from_the_bucket_are_served_sealed_then_open(
    make_backend: Any, net: Net, registry: LocalRegistry, s3_server: Any
) -> None:
    s3_server.create_bucket(BUCKET)
    options = s3_server.options()
    evaluator_store = S3MediaStore(BUCKET, prefix=PREFIX, **options)
    async with make_backend(
        media_url=f"s3://{BUCKET}/{PREFIX}",
        s3_endpoint_url=options["endpoint_url"],
        s3_region=options["region"],
        s3_access_key_id=options["access_key_id"],
        s3_secret_access_key=options["secret_access_key"],
        s3_ca_bundle=options["ca_bundle"],
    ) as backend:
        await create_competition(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        [episode, *_] = episodes_for(job, 1)
        key = action_log_key(job.job_id, 0, job.id)
        log = b"KACT\x00 an action log naming its seed " + str(episode.seed).encode()
        evaluator_store.put(key, log)  # what the validator's evaluator does
        ack = await deliver(client, episode.model_copy(update={"actions_ref": key}))
        assert ack.ok, ack
        [ep] = (await get(backend, "/api/v1/episodes", job_id=job.job_id))["items"]
        assert ep["actions_url"] == f"/media/{key}"

        async with backend.client(None) as http:
            sealed = await http.get(ep["actions_url"])
            assert sealed.status_code == 403 and sealed.json()["code"] == "sealed"
            assert sealed.json()["sealed_until"]
            assert str(episode.seed).encode() not in sealed.content
            other = f"episodes/{job.job_id}/{job.id}/7/actions.kact"
            assert (await http.get(f"/media/{other}")).status_code == 403  # sealed all the same
            assert (await http.get("/media/episodes/no-such-job/x/0/a.kact")).status_code == 404

            conn = await asyncpg.connect(dsn(backend.settings.database_url))
            try:  # the round ends (brought forward): revealed on the scheduler's next tick
                await conn.execute(
                    "UPDATE eval_rounds SET ends_at = now() WHERE id = $1", job.round_id
                )
            finally:
                await conn.close()

            async def opened() -> Any:
                r = await http.get(ep["actions_url"])
                return r if r.status_code == 200 else None

            served = await wait_for(opened, within=20, interval=0.3)
            assert served.content == log
            part = await http.get(ep["actions_url"], headers={"Range": "bytes=5-9"})
            assert part.status_code == 206 and part.content == log[5:10]
            assert part.headers["content-range"] == f"bytes 5-9/{len(log)}"
            tail = await http.get(ep["actions_url"], headers={"Range": "bytes=-4"})
            assert tail.status_code == 206 and tail.content == log[-4:]
            past = await http.get(ep["actions_url"], headers={"Range": f"bytes={len(log)}-"})
            assert past.status_code == 416
            assert (await http.get(f"/media/{other}")).status_code == 404  # never uploaded
        await client.close()


@pytest.mark.parametrize("removed", ["media_base_url", "media_dir"])
def test_a_public_media_link_setting_is_refused(
    removed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="no longer a setting"):
        Settings(**{removed: "https://media.example.org"})
    monkeypatch.setenv(f"KINITRO_BACKEND_{removed.upper()}", "https://media.example.org")
    with pytest.raises(ValueError, match="public bucket URL"):
        Settings()
