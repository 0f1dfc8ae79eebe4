"""Captions as current LiveKit clients render them: text streams on the
``lk.transcription`` topic, tied to the audio track they transcribe
(``lk.transcribed_track_id``), one stream per segment (``lk.segment_id``), marked final
(``lk.transcription_final``) when it closes. (The older transcription packet is
deprecated.)"""

from __future__ import annotations

from livekit import rtc

TOPIC = "lk.transcription"
CHAT_TOPIC = "lk.chat"
SEGMENT_ID = "lk.segment_id"
TRACK_ID = "lk.transcribed_track_id"
FINAL = "lk.transcription_final"


class Caption:
    """One segment being written."""

    def __init__(self, writer: rtc.TextStreamWriter) -> None:
        self.writer = writer
        self.stream_id = writer.info.stream_id

    async def write(self, text: str) -> None:
        await self.writer.write(text)

    async def close(self, reason: str = "") -> None:
        await self.writer.aclose(reason=reason, attributes={FINAL: "true"})


async def open_caption(
    participant: rtc.LocalParticipant,
    *,
    segment_id: str,
    track_sid: str,
    on_behalf_of: str | None = None,
) -> Caption:
    writer = await participant.stream_text(
        topic=TOPIC,
        attributes={SEGMENT_ID: segment_id, TRACK_ID: track_sid, FINAL: "false"},
        sender_identity=on_behalf_of,
    )
    return Caption(writer)


async def send_caption(
    participant: rtc.LocalParticipant,
    text: str,
    *,
    segment_id: str,
    track_sid: str,
    on_behalf_of: str | None = None,
) -> None:
    """A whole segment at once (what a person said, when their turn ended)."""
    caption = await open_caption(
        participant, segment_id=segment_id, track_sid=track_sid, on_behalf_of=on_behalf_of
    )
    await caption.write(text)
    await caption.close()
