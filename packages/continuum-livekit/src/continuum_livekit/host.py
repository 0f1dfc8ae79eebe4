"""LiveKitHost: continuum's personas in LiveKit rooms.

In each room every persona is its own participant — its own connection, identity (the
persona id), name and avatar, and its own audio track, on which it speaks in its own
voice. One hidden listener hears the room for all of them (:mod:`continuum_livekit.listener`):
one ear per person's track, not one per persona. The runtime ends each turn, transcribes it
once (or not at all, for a model that hears audio), lets shared cognition choose who
answers, and speaks the reply on that persona's track (:mod:`continuum_livekit.seat`),
paced by the track's playout clock; a person speaking over it stops it, and only what was
heard stays in the history. Captions of both sides go out as ``lk.transcription`` text
streams; ``lk.chat`` text is a message like any text host's. Every connection rejoins by
itself after a server restart or a network loss (:mod:`continuum_livekit.connection`).

Rooms come from ``rooms`` (joined at start) and ``join`` (a pattern: rooms that appear on
the server are joined, and left when no person has been there for ``idle_leave_s``).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup
from livekit import api, rtc

from continuum.errors import ContinuumError
from continuum.hosts.audio import AudioOutput
from continuum.hosts.base import (
    HostAdapter,
    HostCapabilities,
    HostServices,
    PersonaCard,
    ReplySink,
    ReplyStart,
)
from continuum_livekit.config import LiveKitConfig
from continuum_livekit.connection import Presence
from continuum_livekit.listener import RoomListener
from continuum_livekit.seat import PersonaSeat
from continuum_livekit.tokens import mint_token

log = logging.getLogger("continuum.livekit")


class JoinedRoom:
    """Continuum's participants in one room: the listener and a seat per persona."""

    def __init__(
        self,
        name: str,
        listener: RoomListener,
        listener_presence: Presence,
        seats: dict[str, PersonaSeat],
    ) -> None:
        self.name = name
        self.listener = listener
        self.listener_presence = listener_presence
        self.seats = seats
        self.scope = anyio.CancelScope()
        self.joined_at = time.monotonic()


class LiveKitHost(HostAdapter):
    name = "livekit"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        streaming=True, audio_in=True, audio_out=True, markup="plain"
    )
    config_model = LiveKitConfig

    def __init__(self, services: HostServices, config: LiveKitConfig | None = None) -> None:
        super().__init__(services, config)
        self.config: LiveKitConfig = self.config  # type: ignore[assignment]
        self.rooms: dict[str, JoinedRoom] = {}
        self.ready = anyio.Event()  # every configured room joined once
        self._tasks: TaskGroup | None = None

    # --- who is ours --------------------------------------------------------------------------

    def cards(self) -> list[PersonaCard]:
        cards = list(self.services.personas())
        wanted = self.config.personas
        if wanted:
            unknown = sorted(set(wanted) - {c.id for c in cards})
            if unknown:
                raise ContinuumError(f"[hosts.livekit] personas: no persona {', '.join(unknown)}")
            cards = [c for c in cards if c.id in wanted]
        return cards

    def ours(self, identity: str) -> bool:
        return identity == self.config.listener_identity or any(
            c.id == identity for c in self.services.personas()
        )

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        url = self.config.server_url()
        key, secret = self.config.credentials()
        cards = self.cards()
        if not cards:
            raise ContinuumError("[hosts.livekit]: no persona to join with")
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            for room in self.config.rooms:
                self._join(tg, url, key, secret, room, cards)
            for joined in list(self.rooms.values()):
                await self._wait_joined(joined)
            self.ready.set()
            log.info("livekit: in %d room(s) at %s as %s", len(self.rooms), url,
                     ", ".join(c.name for c in cards))  # fmt: skip
            if self.config.join:
                tg.start_soon(self._follow_rooms, tg, url, key, secret, cards)

    async def _wait_joined(self, joined: JoinedRoom, timeout_s: float = 30.0) -> None:
        presences = [joined.listener_presence] + [
            s.presence for s in joined.seats.values() if s.presence is not None
        ]
        with anyio.move_on_after(timeout_s) as scope:
            for presence in presences:
                await presence.connected.wait()
        if scope.cancelled_caught:
            log.warning("livekit: %s not fully joined after %.0f s; still trying",
                        joined.name, timeout_s)  # fmt: skip

    def _join(
        self, tg: TaskGroup, url: str, key: str, secret: str, room: str, cards: list[PersonaCard]
    ) -> JoinedRoom:
        cfg = self.config
        listener = RoomListener(
            self.name, room, self.services, tg,
            ours=self.ours, captions=cfg.captions, chat=cfg.chat,
        )  # fmt: skip
        seats = {c.id: PersonaSeat(room, c) for c in cards}

        def presence(
            identity: str,
            on_connected: Callable[[rtc.Room], Awaitable[None]],
            on_lost: Callable[[], None],
            **grant: Any,
        ) -> Presence:
            """One participant's kept-up connection, with a fresh token each time."""
            return Presence(
                url,
                lambda: mint_token(key, secret, room, identity, kind="agent", **grant),
                label=f"{room}/{identity}",
                on_connected=on_connected,
                on_lost=on_lost,
                retry_max_s=cfg.reconnect_max_s,
            )

        listener_presence = presence(
            cfg.listener_identity, listener.on_connected, listener.on_lost,
            name="continuum", hidden=True, publish=False,
        )  # fmt: skip
        joined = JoinedRoom(room, listener, listener_presence, seats)
        for seat in seats.values():
            card = seat.card
            metadata = {"persona": card.id}
            if card.avatar_url:
                metadata["avatar_url"] = card.avatar_url
            seat.presence = presence(
                card.id, seat.on_connected, seat.on_lost,
                name=card.name, metadata=metadata, subscribe=False,
            )  # fmt: skip
        self.rooms[room] = joined

        async def keep(joined: JoinedRoom = joined) -> None:
            with joined.scope:
                async with anyio.create_task_group() as inner:
                    inner.start_soon(joined.listener_presence.run)
                    for seat in joined.seats.values():
                        assert seat.presence is not None
                        inner.start_soon(seat.presence.run)
            self.rooms.pop(joined.name, None)
            log.info("livekit: left %s", joined.name)

        tg.start_soon(keep)
        return joined

    async def _follow_rooms(
        self, tg: TaskGroup, url: str, key: str, secret: str, cards: list[PersonaCard]
    ) -> None:
        """Join rooms matching ``join`` as they appear; leave them when no person has been
        in them for ``idle_leave_s``."""
        pattern = self.config.join or ""
        http = url.replace("wss://", "https://").replace("ws://", "http://")
        async with api.LiveKitAPI(http, key, secret) as lk:
            while True:
                try:
                    listed = await lk.room.list_rooms(api.ListRoomsRequest())
                except Exception as exc:
                    log.warning("livekit: cannot list rooms (%s)", exc)
                    listed = None
                now = time.monotonic()
                if listed is not None:
                    for room in listed.rooms:
                        if fnmatch.fnmatchcase(room.name, pattern) and room.name not in self.rooms:
                            log.info("livekit: joining %s (matches %r)", room.name, pattern)
                            self._join(tg, url, key, secret, room.name, cards)
                for joined in list(self.rooms.values()):
                    if joined.name in self.config.rooms:
                        continue
                    if joined.listener.people():
                        joined.listener.people_seen_at = now
                    last = max(joined.listener.people_seen_at, joined.joined_at)
                    if now - last > self.config.idle_leave_s:
                        log.info("livekit: leaving %s (nobody there for %.0f s)", joined.name,
                                 now - last)  # fmt: skip
                        joined.scope.cancel()
                await anyio.sleep(self.config.poll_s)

    # --- replies ------------------------------------------------------------------------------

    def _seat(self, start: ReplyStart) -> PersonaSeat:
        room = start.reply_to.channel
        joined = self.rooms.get(room)
        if joined is None or start.persona_id not in joined.seats:
            raise ContinuumError(f"{start.persona_name} is not in LiveKit room {room}")
        return joined.seats[start.persona_id]

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        return await self._seat(start).open_reply(start, captions=self.config.captions)

    async def open_audio(self, start: ReplyStart) -> AudioOutput:
        return await self._seat(start).open_audio()
