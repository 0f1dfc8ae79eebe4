"""One turn runner for every persona turn: a composed prompt → the backend on the
persona's slot → visible text streamed to the host's reply sink → the room's history.

Direct answers, shared-cognition renders and think passes all end here, so streaming,
think-block stripping, failure handling and the host message id are done once. The
runner knows the room only through :class:`TurnRoom` (no import of ``room.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from continuum.backends.base import (
    AdapterUse,
    Backend,
    Completion,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.compose import ComposedPrompt
from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    ParticipantKind,
    PersonaReply,
    RoomMessage,
    new_id,
)
from continuum.errors import ContinuumError, MediaRejected
from continuum.events import (
    EventLog,
    ReplyDelta,
    ReplyPosted,
    ThinkBlockEmitted,
    TurnFailed,
    TurnStarted,
)
from continuum.hosts.base import ReplySink, ReplyStart
from continuum.media.placeholder import MISSING, unreadable_note
from continuum.persona import Persona
from continuum.room.policy import RoomPolicy
from continuum.sanitize import PERSONA_TAG
from continuum.thinking import ThinkBlock, VisibleStream, split_think, visible_text
from continuum.tiers import Tier

log = logging.getLogger("continuum.turn")

ReplyOpener = Callable[[ReplyStart], Awaitable[ReplySink]]

MOVED_NOTE = "(catching up: I moved to another server)"


def cannot_think(persona: Persona) -> str:
    """What a persona says when its backend fails. The error itself goes to the log and
    the coordination stream, never into a channel as the persona's words."""
    return f"({persona.name} can't think right now; please try again in a moment.)"


class TurnRoom(Protocol):
    """What the runner needs of a room."""

    id: str
    key: str
    backend: Backend
    events: EventLog
    policy: RoomPolicy
    participants: Mapping[str, Participant]

    def slot_for(self, persona: Persona, extra: Sequence[AdapterUse] = ()) -> SlotKey: ...

    def adapters_for(
        self, persona: Persona, extra: Sequence[AdapterUse] = ()
    ) -> tuple[AdapterUse, ...]: ...

    def record_reply(
        self,
        persona: Persona,
        envelope: Envelope,
        message: RoomMessage,
        metrics: InferenceMetrics | None,
        topics: list[str],
    ) -> None: ...

    def record_failure(self, persona: Persona, envelope: Envelope) -> None: ...

    def record_interrupted(
        self, persona: Persona, envelope: Envelope, message_id: str, spoken: str
    ) -> RoomMessage | None: ...

    def media_in(self, prompt: str) -> dict[str, AudioPart | ImagePart]: ...

    def reject_media(self, media_ids: Iterable[str]) -> None: ...

    def record_training(
        self, persona: Persona, message_id: str, prompt: str, response: str, topics: list[str]
    ) -> None: ...


@dataclass
class RenderJob:
    persona: Persona
    envelope: Envelope
    composed: ComposedPrompt
    max_tokens: int
    topics: list[str] = field(default_factory=list)
    min_tokens: int = 0
    raw_prefix: str = ""  # text the prompt already holds of this reply (its think-block)
    recalled: tuple[str, ...] = ()
    extra_adapters: tuple[AdapterUse, ...] = ()  # paged in for this render only


@dataclass
class TurnResult:
    reply: PersonaReply
    composed: ComposedPrompt
    metrics: InferenceMetrics | None = None


class TurnRunner:
    def __init__(self, room: TurnRoom) -> None:
        self.room = room

    def _start(self, persona: Persona, envelope: Envelope, topics: list[str]) -> ReplyStart:
        return ReplyStart(
            persona_id=persona.id,
            persona_name=persona.name,
            avatar_url=persona.avatar_url,
            voice=persona.voice.voice,
            reply_to=envelope.reply_to,
            in_reply_to=envelope.id,
            reply_id=new_id(),
            recipient=envelope.platform_author or envelope.author,
            room_key=self.room.key,
            topics=tuple(topics),
        )

    async def open(self, start: ReplyStart, replies: ReplyOpener | None) -> ReplySink | None:
        if replies is None:
            return None
        try:
            return await replies(start)
        except Exception:  # a host that cannot post must not stop the room
            log.exception("%s: could not open a reply for %s", self.room.key, start.persona_id)
            return None

    async def post_text(
        self,
        persona: Persona,
        envelope: Envelope,
        text: str,
        replies: ReplyOpener | None,
        error: str | None = None,
    ) -> PersonaReply:
        """A reply that needs no model call (a status line, a tired persona)."""
        start = self._start(persona, envelope, [])
        sink = await self.open(start, replies)
        host_id = None
        if sink is not None:
            host_id = await _finish(sink, text, self.room.key)
        message = RoomMessage(
            id=start.reply_id, author=self.room.participants[persona.id], text=text
        )
        self.room.record_reply(persona, envelope, message, None, [])
        self.room.events.emit(
            ReplyPosted(
                room_id=self.room.id,
                persona_id=persona.id,
                message=message,
                metrics=InferenceMetrics.nothing("none"),
            )
        )
        return _reply(persona, message, envelope, error=error, host_message_id=host_id)

    async def _complete(
        self, request: CompletionRequest, on_token: Callable[[str], None]
    ) -> Completion:
        """The model's answer; a media part it cannot take is named instead and the turn
        runs again without it (once), and the room never sends that part again."""
        try:
            return await self.room.backend.complete(request, on_token=on_token)
        except MediaRejected as exc:
            log.warning("%s: media the model could not take: %s", self.room.key, exc)
            self.room.reject_media(exc.media_ids)
            prompt = request.prompt
            for mid in exc.media_ids:
                part = request.media.get(mid)
                note = unreadable_note(part) if part is not None else MISSING
                prompt = prompt.replace(f"<__media:{mid}__>", note)
            media = {k: v for k, v in request.media.items() if k not in exc.media_ids}
            retry = request.model_copy(update={"prompt": prompt, "media": media})
            return await self.room.backend.complete(retry, on_token=on_token)

    async def run(self, job: RenderJob, replies: ReplyOpener | None = None) -> TurnResult:
        room, persona = self.room, job.persona
        # a reply may start with a speaker's label, tagged as others read it or not
        names = [p.name for p in room.participants.values()]
        names += [
            f"{p.name} {PERSONA_TAG}"
            for p in room.participants.values()
            if p.kind == ParticipantKind.PERSONA
        ]
        start = self._start(persona, job.envelope, job.topics)
        room.events.emit(TurnStarted(room_id=room.id, persona_id=persona.id))
        sink = await self.open(start, replies)
        settings = GenerationSettings.for_persona(
            persona, max_tokens=job.max_tokens, min_tokens=min(job.min_tokens, job.max_tokens)
        )
        # Small models like to write the next speaker's line too: stop at any other name.
        stops = tuple(
            f"\n{name}"
            for p in room.participants.values()
            if p.id != persona.id
            for name in (f"{p.name}:", f"{p.name} {PERSONA_TAG}:")
        )
        settings = settings.model_copy(update={"stop": settings.stop + stops})
        wanted = job.envelope.reply_format  # a reply asked for as JSON (an editor's review)
        if wanted is not None:
            settings = settings.model_copy(
                update={"max_tokens": wanted.max_tokens, "min_tokens": 0, "stop": ()}
            )
        request = CompletionRequest(
            prompt=job.composed.prompt,
            slot=room.slot_for(persona, job.extra_adapters),
            adapters=room.adapters_for(persona, job.extra_adapters),
            settings=settings,
            priority=Priority.RENDER,
            media=room.media_in(job.composed.prompt),
            json_schema=wanted.json_schema if wanted is not None else None,
        )
        stream = VisibleStream(names)
        stream.feed(job.raw_prefix)  # a think-block already in the prompt shows nothing
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        written: list[str] = []

        def on_token(text: str) -> None:
            if room.policy.stream_deltas:
                room.events.emit(ReplyDelta(room_id=room.id, persona_id=persona.id, text=text))
            delta = stream.feed(text)
            if delta:
                send.send_nowait(delta)

        broken: list[bool] = []

        async def pump() -> None:
            async with receive:
                async for delta in receive:
                    if sink is None or broken:
                        continue  # a host that failed once gets no more of this reply
                    if await _write(sink, delta, room.key):
                        written.append(delta)
                    else:
                        broken.append(True)

        completion: Completion | None = None
        failure: ContinuumError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump)
                try:
                    completion = await self._complete(request, on_token)
                except ContinuumError as exc:
                    failure = exc
                finally:
                    tail = stream.close() if failure is None else ""
                    if tail:
                        send.send_nowait(tail)
                    send.close()
        except BaseException:
            await self._cut_off(job, start, sink, written)
            raise

        if failure is not None or completion is None:
            log.warning("%s could not answer in %s: %s", persona.id, room.key, failure)
            room.events.emit(TurnFailed(room_id=room.id, persona_id=persona.id, error=str(failure)))
            text = cannot_think(persona)
            host_id = None
            if sink is not None:
                host_id = await _finish(sink, ("\n" if written else "") + text, room.key)
            message = RoomMessage(
                id=start.reply_id, author=room.participants[persona.id], text=text
            )
            room.record_failure(persona, job.envelope)
            reply = _reply(
                persona, message, job.envelope, error=str(failure), host_message_id=host_id
            )
            return TurnResult(reply=reply, composed=job.composed)

        raw = job.raw_prefix + completion.text
        visible = visible_text(raw, names)
        host_id = None
        if completion.metrics.moved:  # its server went away: the KV was rebuilt elsewhere
            visible = f"{visible} {MOVED_NOTE}".strip()
            if sink is not None:
                await _write(sink, f" {MOVED_NOTE}", room.key)
        if sink is not None and not broken:
            try:  # a spoken reply finishes when it has been heard out: it can be cut off
                host_id = await _finish(sink, "", room.key)
            except BaseException:
                await self._cut_off(job, start, sink, written)
                raise
        message = RoomMessage(
            id=start.reply_id, author=room.participants[persona.id], text=visible, raw_text=raw
        )
        room.record_reply(persona, job.envelope, message, completion.metrics, job.topics)
        if not completion.metrics.moved:
            room.record_training(
                persona, message.id, job.composed.prompt, completion.text, job.topics
            )
        _, thinks = split_think(raw)
        for think in thinks:
            room.events.emit(
                ThinkBlockEmitted(
                    room_id=room.id,
                    think=ThinkBlock(persona_id=persona.id, message_id=message.id, text=think),
                )
            )
        room.events.emit(
            ReplyPosted(
                room_id=room.id,
                persona_id=persona.id,
                message=message,
                metrics=completion.metrics,
                recalled=job.recalled,
                volatile_tokens=job.composed.tokens_in(Tier.VOLATILE),
            )
        )
        reply = _reply(persona, message, job.envelope, host_message_id=host_id)
        return TurnResult(reply=reply, composed=job.composed, metrics=completion.metrics)

    async def _cut_off(
        self, job: RenderJob, start: ReplyStart, sink: ReplySink | None, written: list[str]
    ) -> None:
        """A turn cancelled midway (a barge-in, shutdown): the reply ends cleanly on the
        host, and the history keeps what people got of it (the words played, the text
        already shown), marked as cut off — and nothing more."""
        if sink is None:
            return
        with anyio.CancelScope(shield=True):
            await _abort(sink, "cancelled", self.room.key)
        heard = _heard(sink, written)
        if heard:
            self.room.record_interrupted(job.persona, job.envelope, start.reply_id, heard)


def _reply(
    persona: Persona,
    message: RoomMessage,
    envelope: Envelope,
    error: str | None = None,
    host_message_id: str | None = None,
) -> PersonaReply:
    return PersonaReply(
        message=message,
        persona_id=persona.id,
        persona_name=persona.name,
        avatar_url=persona.avatar_url,
        voice=persona.voice.voice,
        reply_to=envelope.reply_to,
        in_reply_to=envelope.id,
        error=error,
        host_message_id=host_message_id,
    )


def _heard(sink: ReplySink, written: list[str]) -> str:
    try:
        heard = sink.heard()
    except Exception:
        log.exception("a reply sink could not say what was heard")
        heard = ""
    text = ("".join(written) if heard is None else heard).strip()
    if text and heard is None:
        text += "—"  # cut off after this
    return text


async def _write(sink: ReplySink, delta: str, where: str) -> bool:
    try:
        await sink.write(delta)
        return True
    except Exception:
        log.exception("%s: the host failed to take a reply delta", where)
        return False


async def _finish(sink: ReplySink, tail: str, where: str) -> str | None:
    try:
        if tail:
            await sink.write(tail)
        return await sink.finish()
    except Exception:
        log.exception("%s: the host failed to post a reply", where)
        return None


async def _abort(sink: ReplySink, reason: str, where: str) -> None:
    try:
        await sink.abort(reason)
    except Exception:
        log.exception("%s: the host failed to abort a reply", where)
