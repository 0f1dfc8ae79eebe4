"""A persona in a LiveKit room: its own participant (one connection), its own audio track,
and the two things a reply opens on it — the spoken audio (:class:`TrackOutput`) and the
captions of what it says (:class:`CaptionSink`)."""

from __future__ import annotations

import logging

import anyio
import numpy as np
from livekit import rtc

from continuum.errors import ContinuumError
from continuum.hosts.audio import AudioOutput
from continuum.hosts.base import PersonaCard, ReplySink, ReplyStart
from continuum_livekit.captions import CHAT_TOPIC, TOPIC, open_caption
from continuum_livekit.connection import Presence

log = logging.getLogger("continuum.livekit")

RATE = 48_000
FRAME = RATE // 100  # 10 ms, what LiveKit's audio source moves
QUEUE_MS = 1000  # the source's buffer; the core writes ~100 ms ahead of playback


class PersonaSeat:
    """One persona's participant in one room (kept connected by its :class:`Presence`)."""

    def __init__(self, room: str, card: PersonaCard) -> None:
        self.room_name = room
        self.card = card
        self.presence: Presence | None = None
        self.source: rtc.AudioSource | None = None
        self.track_sid: str | None = None
        self.outputs: list[TrackOutput] = []  # replies open on this seat

    async def on_connected(self, room: rtc.Room) -> None:
        # the listener reads the room's text; a persona's own connection drops it unread
        for topic in (TOPIC, CHAT_TOPIC):
            room.register_text_stream_handler(topic, _drop)
        source = rtc.AudioSource(RATE, 1, queue_size_ms=QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track(f"{self.card.id}-voice", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        publication = await room.local_participant.publish_track(track, options)
        self.source, self.track_sid = source, publication.sid

    def on_lost(self) -> None:
        """The connection dropped: replies playing here end with what was heard."""
        self.source = None
        for output in self.outputs:
            output.lose()

    @property
    def participant(self) -> rtc.LocalParticipant | None:
        room = self.presence.room if self.presence is not None else None
        return room.local_participant if room is not None else None

    async def open_audio(self, wait_s: float = 5.0) -> TrackOutput:
        if self.presence is not None and self.source is None:
            await self.presence.wait_connected(wait_s)
        if self.source is None:
            raise ContinuumError(
                f"{self.card.name} is not connected to LiveKit room {self.room_name}"
            )
        output = TrackOutput(self, self.source)
        self.outputs.append(output)
        return output

    async def open_reply(self, start: ReplyStart, captions: bool) -> ReplySink:
        return CaptionSink(self, start, enabled=captions)


class TrackOutput(AudioOutput):
    """One spoken reply on a persona's track. The playout clock is what the source has
    been given minus what it still holds (``AudioSource.queued_duration``)."""

    sample_rate = RATE

    def __init__(self, seat: PersonaSeat, source: rtc.AudioSource) -> None:
        self.seat = seat
        self.source = source
        self._captured = 0.0  # seconds handed to the source (after the last clear)
        self._frozen: float | None = None  # played when the connection was lost

    async def write(self, samples: np.ndarray) -> None:
        if self.broken:
            return
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype(np.int16)
        # whole 10 ms frames: the core writes 20 ms at a time, so only a reply's last
        # write is padded (with silence)
        pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, np.int16)])
        for i in range(0, len(pcm), FRAME):
            frame = rtc.AudioFrame(pcm[i : i + FRAME].tobytes(), RATE, 1, FRAME)
            try:
                await self.source.capture_frame(frame)
            except Exception as exc:  # the source went with its connection
                log.warning("%s: audio not sent (%s)", self.seat.card.id, exc)
                self.lose()
                return
            self._captured += FRAME / RATE

    def played_s(self) -> float:
        if self._frozen is not None:
            return self._frozen
        return max(0.0, self._captured - self.source.queued_duration)

    def clear(self) -> None:
        if self.broken:
            return
        played = self.played_s()
        self.source.clear_queue()
        self._captured = played

    def lose(self) -> None:
        if not self.broken:
            self._frozen = self.played_s()
            self.broken = True
            log.warning(
                "%s: the connection dropped mid-reply; %.1f s of it was heard",
                self.seat.card.id,
                self._frozen,
            )

    async def close(self) -> None:
        if not self.broken:  # what is queued plays out before the reply ends
            with anyio.move_on_after(self.source.queued_duration + 0.5):
                await self.source.wait_for_playout()
        if self in self.seat.outputs:
            self.seat.outputs.remove(self)


class CaptionSink(ReplySink):
    """The reply's words as a caption on the persona's track (``lk.transcription``), as
    they are written; the stream is closed final when the reply ends. Captions are best
    effort: a lost connection never fails the reply."""

    def __init__(self, seat: PersonaSeat, start: ReplyStart, *, enabled: bool) -> None:
        self.seat = seat
        self.start = start
        self.enabled = enabled
        self._caption = None
        self._failed = False

    async def write(self, delta: str) -> None:
        if not self.enabled or self._failed or not delta:
            return
        try:
            if self._caption is None:
                participant = self.seat.participant
                if participant is None or self.seat.track_sid is None:
                    self._failed = True
                    return
                self._caption = await open_caption(
                    participant, segment_id=self.start.reply_id, track_sid=self.seat.track_sid
                )
            await self._caption.write(delta)
        except Exception as exc:
            self._failed = True
            log.info("%s: caption not sent (%s)", self.seat.card.id, exc)

    async def finish(self) -> str | None:
        return await self._close("")

    async def abort(self, reason: str) -> None:
        await self._close(reason)

    async def _close(self, reason: str) -> str | None:
        caption, self._caption = self._caption, None
        if caption is None:
            return None
        try:
            await caption.close(reason)
        except Exception as exc:
            log.info("%s: caption not closed (%s)", self.seat.card.id, exc)
            return None
        self.posted(caption.stream_id)
        return caption.stream_id


def _drop(reader: rtc.TextStreamReader, identity: str) -> None:
    reader.close()
