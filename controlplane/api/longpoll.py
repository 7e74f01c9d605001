"""Agents' assignment long-polls, answered by one watcher per API process.

Each waiting agent used to re-read its own host's generation every 0.2 s: with 300 idle
agents that was ~1,500 queries a second before any work arrived. Now the waiting
requests register here and one daemon thread reads the generations of all waiting hosts
in a single query per step, and wakes (thread-safely, on whatever event loop each request
runs on) those whose generation moved. The thread starts with the first waiter and ends
after a second without any. Replicas each run their own watcher over the shared
database, so a change committed by any replica is seen within one step. The watcher's
last reading of each host (:meth:`GenerationWatch.seen`) lets a long-poll decide whether
to wait without reading the database itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)
ReadGenerations = Callable[[Iterable[str]], dict[str, int]]
#: How often the watcher reads the waiting hosts' generations (one query per step).
POLL_STEP_S = 0.2


@dataclass(eq=False)
class _Waiter:
    host_id: str
    generation: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class GenerationWatch:
    """Wake long-polls when their host's assignment generation changes."""

    def __init__(
        self, read: ReadGenerations, step_s: float = POLL_STEP_S, idle_s: float = 1.0
    ) -> None:
        self._read = read
        self.step_s = step_s
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._waiters: set[_Waiter] = set()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, int] = {}

    def seen(self, host_id: str) -> int | None:
        """The generation of ``host_id`` at the watcher's last reading (None if it has not
        read it yet). Generations only grow, so the host's real one is at least this."""
        return self._seen.get(host_id)

    async def wait(self, host_id: str, generation: int, timeout_s: float) -> None:
        """Return when ``host_id``'s generation differs from ``generation``, or after
        ``timeout_s``, whichever comes first."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(host_id, generation, loop, loop.create_future())
        with self._lock:
            self._waiters.add(waiter)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="longpoll", daemon=True)
                self._thread.start()
        try:
            await asyncio.wait_for(waiter.future, timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _run(self) -> None:
        idle = 0.0
        stop = threading.Event()
        while idle < self.idle_s:
            stop.wait(self.step_s)
            with self._lock:
                waiting = list(self._waiters)
            if not waiting:
                idle += self.step_s
                continue
            idle = 0.0
            try:
                current = self._read({w.host_id for w in waiting})
            except Exception:
                log.exception("reading assignment generations failed; retrying")
                continue
            self._seen.update(current)
            for waiter in waiting:
                if current.get(waiter.host_id, waiter.generation) != waiter.generation:
                    waiter.wake()
        with self._lock:
            self._thread = None
            if self._waiters:  # a waiter arrived as we were leaving: keep serving
                self._thread = threading.Thread(target=self._run, name="longpoll", daemon=True)
                self._thread.start()
