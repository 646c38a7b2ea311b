"""``kinitro watch`` says "sealed until <time>" where an episode's sealed data would be:
the episode_completed event carries its round's ``sealed_until`` over the real feed, and
the watch view renders it in the episode's row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from kinitro.devnet.watch import View, sealed_note
from kinitro.protocol import realtime as rt
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Net, create_competition, login
from .playing import deliver, episodes_for
from .scraping import Feed
from .test_flow import commit_artifact, get


async def test_watch_shows_until_when_an_episode_is_sealed(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend)
        feed = await Feed.open(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        assert (await deliver(client, episodes_for(job, 1)[0])).ok
        frames = await feed.drain()
        await feed.close()
        await client.close()
        rnd = await get(backend, f"/api/v1/rounds/{job.round_id}")

    view = View()
    for frame in frames[1:]:
        message = rt.parse_server_message(frame)
        assert isinstance(message, rt.Events)
        for event in message.events:
            view.apply(event)
    [episode] = view.episodes
    until = datetime.fromisoformat(rnd["ends_at"])
    assert episode["sealed_until"] == until and rnd["secret"] is None
    console = Console(width=200, record=True)
    console.print(view.render())
    text = console.export_text()
    assert f"sealed until {until:%Y-%m-%d %H:%M:%S}Z" in text, text
    assert str(job.seed) not in text


def test_an_open_episode_says_where_its_data_is() -> None:
    assert sealed_note(None) == "open (/api/v1/episodes)"
    assert sealed_note(datetime(2026, 12, 6, 12, 0, tzinfo=UTC)) == (
        "sealed until 2026-12-06 12:00:00Z"
    )
