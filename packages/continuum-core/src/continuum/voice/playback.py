"""Playing a reply: in real time, into whatever carries the sound (a LiveKit track, a
file, a speaker), pausable within one frame, and knowing how much of each piece was
actually heard (so the persona's history keeps only what it said)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import numpy as np

Sink = Callable[[np.ndarray, int], Awaitable[None]]


class Player:
    def __init__(self, sink: Sink | None = None, realtime: bool = True, frame_ms: int = 20) -> None:
        self.sink = sink
        self.realtime = realtime
        self.frame_ms = frame_ms
        self._running = anyio.Event()
        self._running.set()
        self.stopped = False
        self.paused_at: float | None = None  # time.monotonic() of the last pause
        self.played_s = 0.0

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        if not self.paused:
            self.paused_at = time.monotonic()
            self._running = anyio.Event()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.stopped = True
        self._running.set()

    async def play(self, samples: np.ndarray, rate: int) -> float:
        """Play one piece; returns the fraction of it that was heard (1.0: all of it)."""
        step = max(1, rate * self.frame_ms // 1000)
        if not self.realtime:
            if self.sink is not None and not self.stopped:
                await self.sink(samples, rate)
            return 0.0 if self.stopped else 1.0
        due = time.monotonic()
        for start in range(0, len(samples), step):
            if self.paused:
                await self._running.wait()
                due = time.monotonic()
            if self.stopped:
                return start / max(1, len(samples))
            frame = samples[start : start + step]
            if self.sink is not None:
                await self.sink(frame, rate)
            self.played_s += len(frame) / rate
            due += len(frame) / rate
            await anyio.sleep(max(0.0, due - time.monotonic()))
        return 1.0
