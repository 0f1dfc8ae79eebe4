"""The room's one listener: a hidden participant that hears every person for all the
personas.

It subscribes only to people's audio tracks (never to the personas' own), gives each
track one ear of the runtime's (``services.ear``) and moves its frames there — at 16 kHz
mono, resampled by LiveKit's SDK, which is what the ear works at. The runtime ends the
turn, transcribes once for the whole room and lets shared cognition pick who answers;
when a turn ends this module publishes its transcript as the person's caption. Typed
chat (``lk.chat`` text streams) becomes messages like any text host's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from functools import partial

import anyio
import numpy as np
from anyio.abc import TaskGroup
from livekit import rtc

from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart, new_id
from continuum.hosts.audio import Ear
from continuum.hosts.base import HostServices
from continuum_livekit.captions import CHAT_TOPIC, send_caption

log = logging.getLogger("continuum.livekit")

EAR_RATE = 16_000
MAX_CHAT_CHARS = 8_000
MAX_WAITING_FRAMES = 3_000  # 30 s of 10 ms frames kept while an ear opens


class RoomListener:
    """Hears one room (kept connected by a :class:`~continuum_livekit.connection.Presence`
    that calls :meth:`on_connected` and :meth:`on_lost`)."""

    def __init__(
        self,
        host: str,
        room_name: str,
        services: HostServices,
        tasks: TaskGroup,
        *,
        ours: Callable[[str], bool],
        captions: bool,
        chat: bool,
    ) -> None:
        self.host = host
        self.room_name = room_name
        self.services = services
        self.tasks = tasks
        self.ours = ours  # is this identity one of continuum's own participants?
        self.captions = captions
        self.chat = chat
        self.room: rtc.Room | None = None
        self.hearing: dict[str, anyio.CancelScope] = {}  # track sid -> its ear's task
        self.listening: set[str] = set()  # identities whose ear is open
        self.people_seen_at = 0.0  # monotonic; a person was in the room then

    @property
    def reply_to(self) -> ReplyTarget:
        return ReplyTarget(host=self.host, channel=self.room_name)

    async def on_connected(self, room: rtc.Room) -> None:
        self.room = room
        room.on("track_published", self._published)
        room.on("track_subscribed", self._subscribed)
        room.on("track_unsubscribed", self._unsubscribed)
        if self.chat:
            room.register_text_stream_handler(CHAT_TOPIC, self._chat)
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                self._published(publication, participant)

    def on_lost(self) -> None:
        self.room = None
        for scope in self.hearing.values():  # each ear closes: what was said is answered
            scope.cancel()
        self.hearing.clear()

    def people(self) -> Collection[str]:
        room = self.room
        if room is None:
            return ()
        return [i for i in room.remote_participants if not self.ours(i)]

    # --- audio ------------------------------------------------------------------------------

    def _published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if publication.kind == rtc.TrackKind.KIND_AUDIO and not self.ours(participant.identity):
            publication.set_subscribed(True)

    def _subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or self.ours(participant.identity):
            return
        if track.sid in self.hearing:
            return
        scope = anyio.CancelScope()
        self.hearing[track.sid] = scope
        self.tasks.start_soon(self._hear, track, participant, scope)

    def _unsubscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        scope = self.hearing.pop(track.sid, None)
        if scope is not None:
            scope.cancel()

    async def _hear(
        self, track: rtc.Track, participant: rtc.RemoteParticipant, scope: anyio.CancelScope
    ) -> None:
        """The person's frames into their ear. The stream opens first: frames that arrive
        while the runtime readies the ear (its speech models load on the first one) are
        kept and pushed when it is ready, so a first sentence is not clipped."""
        who = Participant(id=participant.identity, name=participant.name or participant.identity)
        caption = partial(self._caption_person, participant.identity, track.sid)
        stream = rtc.AudioStream(track, sample_rate=EAR_RATE, num_channels=1)
        ear: Ear | None = None
        waiting: list[np.ndarray] = []
        try:
            with scope:
                async with anyio.create_task_group() as tg:

                    async def open_ear() -> None:
                        nonlocal ear
                        ear = await self.services.ear(
                            self.room_name,
                            who,
                            reply_to=self.reply_to,
                            on_heard=caption if self.captions else None,
                        )
                        self.listening.add(participant.identity)
                        log.info("%s: listening to %s (track %s)", self.room_name, who.id,
                                 track.sid)  # fmt: skip

                    tg.start_soon(open_ear)
                    async for event in stream:
                        samples = np.frombuffer(event.frame.data, np.int16)
                        if ear is None:
                            if len(waiting) < MAX_WAITING_FRAMES:
                                waiting.append(samples)
                            continue
                        if waiting:
                            await ear.push(np.concatenate(waiting), EAR_RATE, 1)
                            waiting.clear()
                        await ear.push(samples, EAR_RATE, 1)
        except Exception:
            log.exception("%s: cannot listen to %s", self.room_name, participant.identity)
        finally:
            with anyio.CancelScope(shield=True):
                self.listening.discard(participant.identity)
                if self.hearing.get(track.sid) is scope:
                    del self.hearing[track.sid]
                with anyio.move_on_after(2):
                    await stream.aclose()
                if ear is not None:
                    with anyio.move_on_after(60):  # what was said before is still answered
                        await ear.close()

    async def _caption_person(self, identity: str, track_sid: str, transcript: str) -> None:
        room = self.room
        if room is None:
            return
        try:
            await send_caption(
                room.local_participant,
                transcript,
                segment_id=new_id(),
                track_sid=track_sid,
                on_behalf_of=identity,
            )
        except Exception as exc:  # captions are best effort
            log.info("%s: caption for %s not sent (%s)", self.room_name, identity, exc)

    # --- chat -------------------------------------------------------------------------------

    def _chat(self, reader: rtc.TextStreamReader, identity: str) -> None:
        if self.ours(identity):
            self.tasks.start_soon(_drain, reader)
            return
        self.tasks.start_soon(self._read_chat, reader, identity)

    async def _read_chat(self, reader: rtc.TextStreamReader, identity: str) -> None:
        try:
            with anyio.fail_after(30):
                text = await reader.read_all()
        except Exception as exc:
            log.warning("%s: chat message from %s not read (%s)", self.room_name, identity, exc)
            return
        text = text.strip()
        if not text:
            return
        if len(text) > MAX_CHAT_CHARS:
            log.warning("%s: chat message from %s cut to %d chars", self.room_name, identity,
                        MAX_CHAT_CHARS)  # fmt: skip
            text = text[:MAX_CHAT_CHARS]
        room = self.room
        remote = room.remote_participants.get(identity) if room is not None else None
        name = remote.name if remote is not None and remote.name else identity
        envelope = Envelope(
            host=self.host,
            room_id=self.room_name,
            author=Participant(id=identity, name=name),
            parts=(TextPart(text=text),),
            reply_to=self.reply_to,
            mentions=self.services.addressed(text),
            host_message_id=reader.info.stream_id,
        )
        await self.services.deliver(envelope)


async def _drain(reader: rtc.TextStreamReader) -> None:
    """Our own personas' chat: read and dropped (the reader must be consumed or closed)."""
    try:
        with anyio.move_on_after(30):
            await reader.read_all()
    except Exception:
        log.debug("own chat stream not read", exc_info=True)
