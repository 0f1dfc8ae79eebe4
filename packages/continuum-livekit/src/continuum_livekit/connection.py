"""One participant's connection to one room, kept up.

LiveKit's SDK resumes a connection through short network blips by itself (the room
emits ``reconnecting`` / ``reconnected``). When the connection is lost for good — the
server restarted, the blip outlasted the SDK's retries — the room emits
``disconnected``; a :class:`Presence` then joins again with a fresh token and a new
``rtc.Room``, with backoff, until it is cancelled. Each time it is connected it calls
``on_connected(room)`` so the owner publishes its track and installs its handlers anew.
Every loss and every rejoin is logged with how long the participant was away: what was
said in the room in between was not heard, and the log says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio
from livekit import rtc

log = logging.getLogger("continuum.livekit")


class Presence:
    def __init__(
        self,
        url: str,
        token: Callable[[], str],
        *,
        label: str,
        on_connected: Callable[[rtc.Room], Awaitable[None]],
        on_lost: Callable[[], None] | None = None,
        auto_subscribe: bool = False,
        retry_max_s: float = 5.0,
    ) -> None:
        self.url = url
        self.token = token
        self.label = label
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.auto_subscribe = auto_subscribe
        self.retry_max_s = retry_max_s
        self.room: rtc.Room | None = None
        self.connected = anyio.Event()
        self.generation = 0  # bumped on every (re)connection
        self.rejoins = 0

    async def run(self) -> None:
        delay = 0.25
        lost_at: float | None = None
        while True:
            room = rtc.Room()
            gone = anyio.Event()
            reason: list[str] = []

            def on_disconnected(why: object, _gone: anyio.Event = gone, _r: list = reason) -> None:
                _r.append(str(why))
                _gone.set()

            room.on("disconnected", on_disconnected)
            room.on("reconnecting", lambda: log.info("%s: connection interrupted", self.label))
            room.on("reconnected", lambda: log.info("%s: connection resumed", self.label))
            try:
                await room.connect(
                    self.url, self.token(), rtc.RoomOptions(auto_subscribe=self.auto_subscribe)
                )
            except Exception as exc:  # ConnectError, a refused socket, a bad token
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning("%s: cannot join (%s); retrying", self.label, exc)
                with anyio.CancelScope(shield=True):
                    await _quietly_disconnect(room)
                await anyio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            delay = 0.25
            if lost_at is not None:
                self.rejoins += 1
                log.warning(
                    "%s: rejoined after %.1f s away (what was said meanwhile was not heard)",
                    self.label,
                    time.monotonic() - lost_at,
                )
                lost_at = None
            self.room = room
            self.generation += 1
            try:
                await self.on_connected(room)
                self.connected.set()
                await gone.wait()
                lost_at = time.monotonic()
                log.warning("%s: connection lost (%s); rejoining", self.label, ", ".join(reason))
            finally:
                self.room = None
                self.connected = anyio.Event()
                if self.on_lost is not None:
                    self.on_lost()
                with anyio.CancelScope(shield=True):
                    await _quietly_disconnect(room)

    async def wait_connected(self, timeout_s: float) -> rtc.Room | None:
        with anyio.move_on_after(timeout_s):
            await self.connected.wait()
        return self.room


async def _quietly_disconnect(room: rtc.Room) -> None:
    try:
        with anyio.move_on_after(5):
            await room.disconnect()
    except Exception:  # already gone
        log.debug("disconnect failed", exc_info=True)
