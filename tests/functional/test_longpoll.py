"""The agents' assignment long-poll: answered as soon as the host's generation moves (a
new assignment), else when the wait runs out; one watcher query serves all waiters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from controlplane.api.longpoll import GenerationWatch
from tests.api_helper import Api, check

pytestmark = pytest.mark.usefixtures("backend")


def poll(api: Api, agent: Any, generation: int, wait: float) -> dict[str, Any]:
    response = api.client.get(
        f"/v1/agent/hosts/{agent.host_id}/assignments",
        params={"generation": generation, "wait": wait},
        headers=agent.headers,
    )
    body: dict[str, Any] = check(response, 200).json()
    return body


def test_a_waiting_poll_is_answered_when_an_instance_is_assigned(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    generation = agent.assignments()["generation"]
    answer: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: answer.update(poll(api, agent, generation, wait=60)), daemon=True
    )
    waiting.start()
    created = api.create_instance("web-1")
    waiting.join(timeout=30)

    assert not waiting.is_alive()  # answered long before its 60 s wait
    assert answer["generation"] > generation
    assert [a["instance_id"] for a in answer["assignments"]] == [created["id"]]


def test_an_unchanged_host_is_answered_when_the_wait_runs_out(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    generation = agent.assignments()["generation"]
    answer = poll(api, agent, generation, wait=0.3)
    assert answer["generation"] == generation
    assert answer["assignments"] == []


def test_one_read_serves_every_waiter_and_wakes_only_the_changed_hosts() -> None:
    generations = {"h1": 1, "h2": 1}
    reads: list[set[str]] = []

    def read(host_ids: Iterable[str]) -> dict[str, int]:
        ids = set(host_ids)
        reads.append(ids)
        return {h: generations[h] for h in ids}

    watch = GenerationWatch(read, step_s=0.01)

    async def scenario() -> tuple[bool, bool]:
        first = asyncio.create_task(watch.wait("h1", 1, timeout_s=5))
        second = asyncio.create_task(watch.wait("h2", 1, timeout_s=0.3))
        await asyncio.sleep(0.05)
        generations["h1"] = 2
        await asyncio.wait_for(first, 2)
        return first.done(), second.done()

    first_done, second_done = asyncio.run(scenario())
    assert first_done
    assert not second_done  # h2 did not change; it was still waiting
    assert {"h1", "h2"} in reads  # both waiters in one query
    assert watch.seen("h1") == 2  # the watcher's last reading, for the next poll
    assert watch.seen("h3") is None  # never read


def test_a_poll_behind_the_watchers_reading_is_answered_at_once(api: Api) -> None:
    """The long-poll decides from the watcher's last reading whether to wait: a host
    whose generation the watcher saw move past the agent's is answered without waiting."""
    agent = api.register_host("tpe1-h01")
    generation = agent.assignments()["generation"]
    assert poll(api, agent, generation, wait=0.3)["generation"] == generation  # read once
    api.create_instance("web-1")
    moved = poll(api, agent, generation, wait=60)  # the watcher has not seen it yet
    assert moved["generation"] > generation
    watch: GenerationWatch = api.app.state.longpoll
    assert watch.seen(agent.host_id) == moved["generation"]
    answer: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: answer.update(poll(api, agent, generation, wait=60)), daemon=True
    )
    waiting.start()
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    assert answer == moved
