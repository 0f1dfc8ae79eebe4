"""What crosses the host seam: envelopes in, persona replies out, messages in history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class ParticipantKind(StrEnum):
    PERSON = "person"
    PERSONA = "persona"
    BOT = "bot"
    SYSTEM = "system"


class Participant(BaseModel):
    """Someone in a room: a person, a persona, another bot, or the system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: ParticipantKind = ParticipantKind.PERSON


class TextPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["text"] = "text"
    text: str


class AudioPart(BaseModel):
    """Audio sent straight to models that accept it (else transcribed)."""

    # bytes travel as base64 in JSON (the router's pending store, host wire formats)
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )
    type: Literal["audio"] = "audio"
    data: bytes | None = None
    url: str | None = None
    mime: str = "audio/wav"
    sample_rate: int | None = None
    # what was said, when the host already knows (its own speech-to-text, a voice session
    # that transcribed during the pause): the media bridge then does not transcribe again
    transcript: str | None = None


class ImagePart(BaseModel):
    """An image sent straight to models that accept it (else described)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )
    type: Literal["image"] = "image"
    data: bytes | None = None
    url: str | None = None
    mime: str = "image/png"


ContentPart = Annotated[TextPart | AudioPart | ImagePart, Field(discriminator="type")]


# public: recalled anywhere; private / dm: for the people in it; sealed: only in that very
# room, for anyone in it (an editor workspace: repo A's code and conventions never surface
# in repo B, not even for the same person)
Visibility = Literal["dm", "private", "public", "sealed"]


class ReplyTarget(BaseModel):
    """Where a reply goes back to on the host (channel, thread, message)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    channel: str
    thread: str | None = None
    message_id: str | None = None


class ReplyFormat(BaseModel):
    """A reply asked for as data: the addressed persona answers with JSON matching
    ``json_schema`` (grammar-constrained where the backend can), up to ``max_tokens`` —
    an editor's review as diagnostics, a host's form. Still the persona's own turn: its
    identity, memory and the room's history are in the prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    json_schema: dict[str, Any]
    max_tokens: int = Field(default=512, gt=0, le=8192)


class Envelope(BaseModel):
    """A host event turned into continuum's terms: who said what, where, and where to answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id)
    host: str
    room_id: str
    author: Participant
    parts: tuple[ContentPart, ...]
    reply_to: ReplyTarget
    mentions: tuple[str, ...] = ()  # persona ids addressed directly
    timestamp: datetime = Field(default_factory=utc_now)
    host_message_id: str | None = None  # the platform's id for this message (edits, reactions)
    # who can read the room: a DM (one person), a private channel, a public one. Memories
    # told here are recalled only in rooms at least as private (continuum.memory scoping).
    visibility: Visibility = "public"
    # the author as the host delivered them (the platform's own user id), kept when the
    # runtime resolves ``author`` to continuum's person id
    platform_author: Participant | None = None
    # the reply is asked for as JSON (see ReplyFormat); None: words, as usual
    reply_format: ReplyFormat | None = None
    # material for this message's own turn only (an editor's selection, a window of the
    # file, its outline): the persona reads it with the message; the room's history and
    # memory keep only the message itself, so later prompts stay small and reusable
    context: str | None = Field(default=None, max_length=200_000)

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


class RoomMessage(BaseModel):
    """One message in a room's history.

    ``text`` is what participants see; ``raw_text`` is exactly what its author (a persona)
    generated, think-blocks included, so the author's own prompt re-renders it byte for
    byte and its KV slot stays reusable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id)
    author: Participant
    text: str
    raw_text: str | None = None
    timestamp: datetime = Field(default_factory=utc_now)
    # audio and images as they arrived (for a model that takes them); ``text`` then holds
    # what the media bridge made of them, and ``media`` which path ran (continuum.media)
    parts: tuple[AudioPart | ImagePart, ...] = ()
    media: Literal["direct", "stt", "describe", "told"] | None = None
    # a reply cut off midway (a barge-in, a cancelled turn): ``text`` is only what people
    # got of it (the words played, the text shown)
    interrupted: bool = False
    # Envelope.context: shown with this message when it is the one being answered, never
    # when it is history
    context: str = ""

    def rendered_for_author(self) -> str:
        return self.raw_text if self.raw_text is not None else self.text


class PersonaReply(BaseModel):
    """A persona's reply, ready for a host to post under the persona's identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: RoomMessage
    persona_id: str
    persona_name: str
    avatar_url: str | None = None
    voice: str | None = None
    reply_to: ReplyTarget
    in_reply_to: str  # envelope id
    error: str | None = None  # set when the persona could not think (backend down, ...)
    host_message_id: str | None = None  # what the host's ReplySink.finish returned
