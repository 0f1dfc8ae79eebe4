"""InferenceScheduler: one llama.cpp context serves one request at a time.

Requests wait in a priority queue (lower priority value first, FIFO within a priority),
with backpressure (a bounded queue raises BackendBusy) and queue timeouts. A holder that
passed a ``preempt`` event (background work: memory consolidation, keeping slots warm)
has it set as soon as a request of a more urgent priority waits: it stops at its next
batch and gives the model back, so a turn never waits out a background pass.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from continuum.errors import BackendBusy, BackendTimeout


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    event: anyio.Event = field(compare=False)
    active: bool = field(default=True, compare=False)


class InferenceScheduler:
    def __init__(self, max_queue: int = 64) -> None:
        self.max_queue = max_queue
        self._busy = False
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self.served = 0
        self.max_depth_seen = 0
        self.preempted = 0
        # the holder's priority and its preempt event (None: it runs to its end)
        self._holder: tuple[int, threading.Event | None] | None = None

    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiters if w.active)

    @asynccontextmanager
    async def turn(
        self,
        priority: int,
        queue_timeout_s: float | None = None,
        preempt: threading.Event | None = None,
    ) -> AsyncIterator[None]:
        """Hold the context exclusively for the duration of the block. ``preempt`` is set
        when a more urgent request starts waiting (the holder should stop soon)."""
        await self._acquire(priority, queue_timeout_s)
        self._holder = (priority, preempt)
        try:
            if preempt is not None and any(
                w.active and w.priority < priority for w in self._waiters
            ):
                self._preempt()
            yield
        finally:
            self._holder = None
            self.served += 1
            self._release()

    def _preempt(self) -> None:
        holder = self._holder
        if holder is not None and holder[1] is not None and not holder[1].is_set():
            holder[1].set()
            self.preempted += 1

    async def _acquire(self, priority: int, timeout: float | None) -> None:
        if not self._busy and self.queue_depth == 0:
            self._busy = True
            return
        if self.queue_depth >= self.max_queue:
            raise BackendBusy(f"inference queue full ({self.max_queue} waiting)")
        waiter = _Waiter(priority, next(self._seq), anyio.Event())
        heapq.heappush(self._waiters, waiter)
        if self._holder is not None and priority < self._holder[0]:
            self._preempt()
        self.max_depth_seen = max(self.max_depth_seen, self.queue_depth)
        try:
            with anyio.fail_after(timeout):
                await waiter.event.wait()
        except BaseException as exc:
            if waiter.event.is_set():  # granted as we left: hand the turn on
                self._release()
            else:
                waiter.active = False
            if isinstance(exc, TimeoutError):
                raise BackendTimeout(f"waited more than {timeout}s for the model") from exc
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = heapq.heappop(self._waiters)
            if waiter.active:
                waiter.active = False
                waiter.event.set()  # ownership passes directly; _busy stays True
                return
        self._busy = False
