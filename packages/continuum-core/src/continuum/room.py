"""Rooms: participants, history, and persona turns over a shared backend.

A room turns an envelope into persona replies. Each persona composes its own prompt
(stable-first, through the composition cache), runs on its own warm slot, and its reply
joins the history the next persona sees. A backend failure makes that persona say it
cannot answer; the room goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from continuum.backends.base import (
    Backend,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.compose import ComposedPrompt
from continuum.composition_cache import CompositionCache, history_tail_ids
from continuum.envelope import (
    Envelope,
    Participant,
    ParticipantKind,
    PersonaReply,
    RoomMessage,
)
from continuum.errors import ContinuumError
from continuum.events import (
    EventLog,
    HistoryEdited,
    MemoryWritten,
    MessageReceived,
    PersonaSilent,
    PersonaUpdated,
    ProfileUpdated,
    ReplyDelta,
    ReplyPosted,
    ThinkBlockEmitted,
    TurnFailed,
    TurnStarted,
)
from continuum.memory.engine import EXPLICIT_REQUEST, MemoryEngine
from continuum.memory.journal import JournalEntry
from continuum.persona import Persona
from continuum.prompt_sources import MemoizedCounter, Recipe, TurnContext, persona_turn_recipe
from continuum.thinking import ThinkBlock, split_think

log = logging.getLogger("continuum.room")


class RoomPolicy(BaseModel):
    """Who answers what. Persona and bot messages never trigger persona turns (no loops)."""

    model_config = ConfigDict(frozen=True)

    require_mention: bool = False
    max_persona_turns_per_message: int = Field(default=8, ge=0)
    reply_max_tokens: int = Field(default=160, gt=0)
    recall_k: int = Field(default=3, ge=0)
    stream_deltas: bool = True


class TurnResult(BaseModel):
    reply: PersonaReply
    composed: ComposedPrompt
    metrics: InferenceMetrics | None = None


class Room:
    def __init__(
        self,
        room_id: str,
        personas: Sequence[Persona],
        backend: Backend,
        *,
        recipe: Recipe | None = None,
        policy: RoomPolicy | None = None,
        guidance: str = "",
        cache: CompositionCache | None = None,
        memory: MemoryEngine | None = None,
    ) -> None:
        self.id = room_id
        self.backend = backend
        self.recipe = recipe or persona_turn_recipe()
        self.policy = policy or RoomPolicy()
        self.guidance = guidance
        self.events = EventLog()
        self.cache = cache or CompositionCache()
        self.cache.watch(self.events, room_id)
        self.history: list[RoomMessage] = []
        self.personas: dict[str, Persona] = {}
        self.participants: dict[str, Participant] = {}
        self.profile_snapshots: dict[str, str] = {}
        self._count = MemoizedCounter(backend.count_tokens)
        self.memory = memory
        self._recalled: dict[str, tuple[str, ...]] = {}
        if memory is not None:
            memory.on_change(self._on_memory_change)
        for persona in personas:
            self.add_persona(persona)

    # --- membership and inputs -----------------------------------------------------------

    def add_persona(self, persona: Persona) -> None:
        if persona.id in self.personas:
            self.events.emit(PersonaUpdated(room_id=self.id, persona_id=persona.id))
        self.personas[persona.id] = persona
        self.participants[persona.id] = Participant(
            id=persona.id, name=persona.name, kind=ParticipantKind.PERSONA
        )

    def set_profile_snapshot(self, persona_id: str, snapshot: str) -> None:
        if self.profile_snapshots.get(persona_id) != snapshot:
            self.profile_snapshots[persona_id] = snapshot
            self.events.emit(ProfileUpdated(room_id=self.id, persona_id=persona_id))

    def edit_message(self, message_id: str, text: str) -> None:
        for i, message in enumerate(self.history):
            if message.id == message_id:
                self.history[i] = message.model_copy(update={"text": text, "raw_text": None})
                self.events.emit(HistoryEdited(room_id=self.id, message_id=message_id))
                return
        raise KeyError(message_id)

    # --- turns -----------------------------------------------------------------------------

    def responders(self, envelope: Envelope) -> list[Persona]:
        """Which personas answer: people's messages only; mentioned ones first."""
        if envelope.author.kind != ParticipantKind.PERSON:
            return []
        mentioned = [self.personas[m] for m in envelope.mentions if m in self.personas]
        if self.policy.require_mention:
            chosen = mentioned
        else:
            chosen = mentioned + [p for p in self.personas.values() if p not in mentioned]
        return chosen[: self.policy.max_persona_turns_per_message]

    def _on_memory_change(self, persona_id: str, what: str) -> None:
        if persona_id in self.personas:
            self.events.emit(MemoryWritten(room_id=self.id, persona_id=persona_id, what=what))

    def turn_context(self, persona: Persona) -> TurnContext:
        """The persona's view: everything so far, the latest message as the new one.
        Memory enters only as the profile snapshot (SEMI_STABLE) and recalled entries
        (VOLATILE), so a memory write never moves the invariant prefix."""
        new_message = self.history[-1]
        retrieval: tuple[str, ...] = ()
        profile = self.profile_snapshots.get(persona.id, "")
        if self.memory is not None:
            recalled = self.memory.recall(persona.id, new_message.text, k=self.policy.recall_k)
            retrieval = tuple(r.render() for r in recalled)
            self._recalled[persona.id] = retrieval
            profile = self.memory.snapshot(persona.id) or profile
        return TurnContext(
            persona=persona,
            room_id=self.id,
            history=tuple(self.history[:-1]),
            new_message=self.history[-1],
            participants=tuple(self.participants.values()),
            guidance=self.guidance,
            profile_snapshot=profile,
            retrieval=retrieval,
            count_tokens=self._count,
        )

    def compose(self, persona: Persona) -> ComposedPrompt:
        tail = history_tail_ids(self.history[:-1], self.history[-1])
        key = self.cache.key(persona.id, self.id, self.recipe.id, tail)
        return self.cache.get_or_compose(
            key, lambda: self.recipe.compose(self.turn_context(persona))
        )

    def receive(self, envelope: Envelope) -> RoomMessage:
        author = envelope.author
        self.participants.setdefault(author.id, author)
        message = RoomMessage(
            id=envelope.id, author=author, text=envelope.text, timestamp=envelope.timestamp
        )
        self.history.append(message)
        self.events.emit(MessageReceived(room_id=self.id, message=message))
        if (
            self.memory is not None
            and author.kind == ParticipantKind.PERSON
            and EXPLICIT_REQUEST.search(message.text)
        ):
            self._remember_explicitly(envelope, message)
        return message

    def _remember_explicitly(self, envelope: Envelope, message: RoomMessage) -> None:
        """A person asked to remember something: always honoured, by the personas addressed
        (or everyone present)."""
        assert self.memory is not None
        targets = [m for m in envelope.mentions if m in self.personas] or list(self.personas)
        for persona_id in targets:
            self.memory.remember(
                JournalEntry(
                    persona=persona_id,
                    host=envelope.host,
                    room=self.id,
                    partners=(message.author.id,),
                    salience=1.0,
                    summary=f"{message.author.name} asked me to remember this.",
                    text=f"{message.author.name}: {message.text}",
                )
            )

    async def handle(
        self,
        envelope: Envelope,
        on_reply: Callable[[PersonaReply], Awaitable[None]] | None = None,
    ) -> list[PersonaReply]:
        """Take a message in and let each responding persona answer in turn; ``on_reply``
        is awaited with each reply as soon as it is ready (hosts post it right away)."""
        self.receive(envelope)
        responders = self.responders(envelope)
        if not responders and envelope.author.kind != ParticipantKind.PERSON:
            for persona in self.personas.values():
                self.events.emit(
                    PersonaSilent(
                        room_id=self.id,
                        persona_id=persona.id,
                        reason=f"message from a {envelope.author.kind}",
                    )
                )
        replies = []
        for persona in responders:
            reply = (await self.persona_turn(persona, envelope)).reply
            replies.append(reply)
            if on_reply is not None:
                await on_reply(reply)
        return replies

    async def persona_turn(self, persona: Persona, envelope: Envelope) -> TurnResult:
        self.events.emit(TurnStarted(room_id=self.id, persona_id=persona.id))
        composed = self.compose(persona)
        settings = GenerationSettings.for_persona(
            persona,
            **({} if persona.model.max_tokens else {"max_tokens": self.policy.reply_max_tokens}),
        )
        # Small models like to write the next speaker's line too: stop at any other name.
        stops = tuple(f"\n{p.name}:" for p in self.participants.values() if p.id != persona.id)
        settings = settings.model_copy(update={"stop": settings.stop + stops})
        request = CompletionRequest(
            prompt=composed.prompt,
            slot=SlotKey.for_persona(persona),
            settings=settings,
            priority=Priority.RENDER,
        )

        def on_token(text: str) -> None:
            if self.policy.stream_deltas:
                self.events.emit(ReplyDelta(room_id=self.id, persona_id=persona.id, text=text))

        try:
            completion = await self.backend.complete(request, on_token=on_token)
        except ContinuumError as exc:
            log.warning("%s could not answer in %s: %s", persona.id, self.id, exc)
            self.events.emit(TurnFailed(room_id=self.id, persona_id=persona.id, error=str(exc)))
            text = f"({persona.name} can't answer right now: {exc})"
            message = RoomMessage(author=self.participants[persona.id], text=text)
            return TurnResult(
                reply=self._reply(persona, message, envelope, error=str(exc)), composed=composed
            )

        visible, thinks = split_think(completion.text)
        visible = _strip_speaker_prefix(visible, [p.name for p in self.participants.values()])
        message = RoomMessage(
            author=self.participants[persona.id], text=visible, raw_text=completion.text
        )
        self.history.append(message)
        for think in thinks:
            self.events.emit(
                ThinkBlockEmitted(
                    room_id=self.id,
                    think=ThinkBlock(persona_id=persona.id, message_id=message.id, text=think),
                )
            )
        self.events.emit(
            ReplyPosted(
                room_id=self.id,
                persona_id=persona.id,
                message=message,
                metrics=completion.metrics,
                recalled=self._recalled.get(persona.id, ()),
            )
        )
        return TurnResult(
            reply=self._reply(persona, message, envelope),
            composed=composed,
            metrics=completion.metrics,
        )

    def _reply(
        self, persona: Persona, message: RoomMessage, envelope: Envelope, error: str | None = None
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
        )


def _strip_speaker_prefix(text: str, names: Sequence[str]) -> str:
    """Small models often start a reply with 'Name:' (theirs or another's); others should
    not see it. The author's raw text keeps it, so its own KV stays reusable."""
    for name in sorted(names, key=len, reverse=True):
        if text.startswith(f"{name}:"):
            return text[len(name) + 1 :].lstrip()
    return text
