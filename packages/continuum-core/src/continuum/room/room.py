"""Rooms: participants, history, persona state, and persona turns over a shared backend.

A room turns an envelope into persona replies. The cascade policy picks who may answer
(people's messages only, mentions, cooldowns, a bound per message); each candidate gets an
inbox item. With several personas the message goes through shared cognition (one shared
analysis, a relevance gate, lever planning, lead-first renders — see
:mod:`continuum.cognition.shared`); a lone persona, or ``cognition="direct"``, answers
directly. Every persona composes its prompt stable-first and runs on its own warm slot. A
backend failure makes that persona say it cannot answer; the room goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum.backends.base import (
    Backend,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.backends.scheduler import InferenceScheduler
from continuum.cognition.gate import RelevanceGate
from continuum.cognition.state import InboxItem, PersonaState, PersonaStateStore
from continuum.compose import ComposedPrompt
from continuum.composition_cache import CompositionCache, history_tail_ids
from continuum.envelope import (
    AudioPart,
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
    PersonaStateChanged,
    PersonaUpdated,
    ProfileUpdated,
    ReplyDelta,
    ReplyPosted,
    ReputationChanged,
    ThinkBlockEmitted,
    TurnFailed,
    TurnStarted,
)
from continuum.memory.embeddings import Embedder
from continuum.memory.engine import EXPLICIT_REQUEST, MemoryEngine
from continuum.memory.journal import JournalEntry
from continuum.persona import Persona
from continuum.prompt_sources import (
    MemoizedCounter,
    Recipe,
    TurnContext,
    persona_turn_recipe,
    shared_cognition_recipe,
)
from continuum.thinking import ThinkBlock, split_think

log = logging.getLogger("continuum.room")


class RoomPolicy(BaseModel):
    """Who answers what, and how. Persona and bot messages never trigger persona turns, so
    personas cannot loop on each other; a person's message gets at most
    ``max_persona_turns_per_message`` persona turns (invited specialists included)."""

    model_config = ConfigDict(frozen=True)

    cognition: Literal["shared", "direct"] = "shared"  # shared needs >= 2 personas
    require_mention: bool = False
    max_persona_turns_per_message: int = Field(default=4, ge=0)
    cooldown_s: float = Field(default=0.0, ge=0.0)  # unmentioned personas wait this long
    quorum: int = Field(default=1, ge=0)  # voices a person's message gets even if none pass
    relevance_threshold: float = 0.25
    exhausted_below: float = Field(default=0.1, ge=0.0, le=1.0)  # energy: declines below
    reply_max_tokens: int = Field(default=160, gt=0)
    analysis_max_tokens: int = Field(default=256, gt=0)
    plan_max_tokens: int = Field(default=64, gt=0)
    max_think_budget: int = Field(default=256, ge=0)
    # on a parallel backend the others start once the lead has streamed this many deltas
    build_on_after_tokens: int = Field(default=16, ge=1)
    recall_k: int = Field(default=3, ge=0)
    stream_deltas: bool = True
    stale_after_s: float = Field(default=300.0, gt=0)  # unmentioned text waiting longer: let go
    max_pending: int = Field(default=256, ge=1)  # messages waiting for the floor


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
        state_store: PersonaStateStore | None = None,
        embedder: Embedder | None = None,
        gate: RelevanceGate | None = None,
    ) -> None:
        self.id = room_id
        self.backend = backend
        self.recipe = recipe or persona_turn_recipe()
        self.shared_recipe = shared_cognition_recipe()
        self.policy = policy or RoomPolicy()
        self.state_store = state_store
        self.states: dict[str, PersonaState] = {}
        if gate is None:
            gate = RelevanceGate(
                embedder or _default_embedder(memory), threshold=self.policy.relevance_threshold
            )
        self.gate = gate
        self._floor = InferenceScheduler(max_queue=self.policy.max_pending)
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
        self._topics: dict[str, list[str]] = {}  # message id -> analysis topics
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

    def candidates(self, envelope: Envelope) -> list[Persona]:
        """The cascade policy: who may consider this message at all. People's messages only
        (persona and bot messages never start persona turns); mentioned personas first;
        with ``require_mention`` only those; unmentioned personas in cooldown sit out.
        Everyone left out gets a PersonaSilent with the reason."""
        if envelope.author.kind != ParticipantKind.PERSON:
            for persona in self.personas.values():
                self._silent(persona.id, f"message from a {envelope.author.kind}")
            return []
        mentioned = [self.personas[m] for m in envelope.mentions if m in self.personas]
        chosen = list(mentioned)
        now = time.time()
        for persona in self.personas.values():
            if persona in mentioned:
                continue
            if self.policy.require_mention:
                self._silent(persona.id, "not mentioned (room requires a mention)")
                continue
            since = now - self.state(persona.id).last_spoke_at.get(self.id, 0.0)
            if since < self.policy.cooldown_s:
                self._silent(persona.id, f"cooling down ({since:.0f}s since it spoke)")
                continue
            chosen.append(persona)
        return chosen

    def responders(self, envelope: Envelope) -> list[Persona]:
        """Direct mode: candidates up to the per-message bound."""
        return self.candidates(envelope)[: self.policy.max_persona_turns_per_message]

    def _silent(self, persona_id: str, reason: str) -> None:
        self.events.emit(PersonaSilent(room_id=self.id, persona_id=persona_id, reason=reason))

    # --- persona state ---------------------------------------------------------------------

    def state(self, persona_id: str) -> PersonaState:
        state = self.states.get(persona_id)
        if state is None:
            state = (
                self.state_store.load(persona_id)
                if self.state_store is not None
                else PersonaState(persona_id=persona_id)
            )
            self.states[persona_id] = state
        return state

    def _state_changed(self, persona_id: str, reason: str) -> None:
        state = self.state(persona_id)
        self.events.emit(
            PersonaStateChanged(
                room_id=self.id,
                persona_id=persona_id,
                energy=round(state.energy, 4),
                mood=round(state.mood, 4),
                mood_label=state.mood_label,
                inbox=len(state.inbox),
                reason=reason,
            )
        )
        if self.state_store is not None:
            self.state_store.save(state)

    def enqueue(self, persona: Persona, envelope: Envelope) -> None:
        """Put the message in the persona's inbox (priority from sender kind, mention,
        modality, recency; queued items age upward; voice is never dropped)."""
        now = time.time()
        state = self.state(persona.id)
        state.rest_until(now)
        item = InboxItem(
            message_id=envelope.id,
            room_id=self.id,
            sender_kind=envelope.author.kind,
            mentioned=persona.id in envelope.mentions,
            modality="voice" if any(isinstance(p, AudioPart) for p in envelope.parts) else "text",
            received_at=now,
            preview=envelope.text[:80],
        )
        dropped = state.inbox.push(item, now)
        reason = "queued " + envelope.id
        if dropped is not None:
            reason += f"; inbox full, dropped {dropped.message_id}"
        self._state_changed(persona.id, reason)

    def finish_item(self, persona_id: str, message_id: str, outcome: str) -> None:
        self.state(persona_id).inbox.take(message_id)
        self._state_changed(persona_id, f"{outcome} ({message_id})")

    def react(self, message_id: str, positive: bool) -> None:
        """A person reacted to a persona's message (a host's thumbs up/down): trust,
        domain proficiency for the message's topics, and mood move with it."""
        message = next((m for m in self.history if m.id == message_id), None)
        if message is None or message.author.id not in self.personas:
            raise KeyError(f"no persona message {message_id} in room {self.id}")
        state = self.state(message.author.id)
        rep = state.reputation
        first_positive = positive and message_id not in state.contribution_topics.get("_liked", [])
        rep.record_reaction(positive, self._topics.get(message_id, []))
        if first_positive:
            rep.successful += 1
            state.contribution_topics.setdefault("_liked", []).append(message_id)
        state.feel(0.1 if positive else -0.1)
        self.events.emit(
            ReputationChanged(
                room_id=self.id,
                persona_id=message.author.id,
                message_id=message_id,
                positive=positive,
                trust=round(rep.trust, 4),
            )
        )
        self._state_changed(message.author.id, "reaction " + ("+" if positive else "-"))

    def _on_memory_change(self, persona_id: str, what: str) -> None:
        if persona_id in self.personas:
            self.events.emit(MemoryWritten(room_id=self.id, persona_id=persona_id, what=what))

    def turn_context(self, persona: Persona, upto: int | None = None, **extra: Any) -> TurnContext:
        """The persona's view: history before message ``upto`` (default: the latest) and
        that message as the new one. Memory enters only as the profile snapshot
        (SEMI_STABLE) and recalled entries (VOLATILE), so a memory write never moves the
        invariant prefix. ``extra`` sets shared-cognition fields (analysis, ...)."""
        upto = len(self.history) - 1 if upto is None else upto
        new_message = self.history[upto]
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
            history=tuple(self.history[:upto]),
            new_message=new_message,
            participants=tuple(self.participants.values()),
            guidance=self.guidance,
            profile_snapshot=profile,
            retrieval=retrieval,
            count_tokens=self._count,
            **extra,
        )

    def compose(self, persona: Persona) -> ComposedPrompt:
        tail = history_tail_ids(self.history[:-1], self.history[-1])
        key = self.cache.key(persona.id, self.id, self.recipe.id, tail)
        return self.cache.get_or_compose(
            key, lambda: self.recipe.compose(self.turn_context(persona))
        )

    def receive(self, envelope: Envelope) -> RoomMessage:
        """Admit a message and append it to the history at once (no waiting for the floor)."""
        message = self.admit(envelope)
        self.history.append(message)
        return message

    def admit(self, envelope: Envelope) -> RoomMessage:
        """Register a message as arrived (MessageReceived, explicit remember requests)
        without putting it in the history yet: the history gets it when it has the floor."""
        author = envelope.author
        self.participants.setdefault(author.id, author)
        message = RoomMessage(
            id=envelope.id, author=author, text=envelope.text, timestamp=envelope.timestamp
        )
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
        """Take a message in and let the personas answer; ``on_reply`` is awaited with each
        reply as soon as it is ready (hosts post it right away).

        Safe to call for many messages at once: each waits in the personas' inboxes for
        the floor (one message is answered at a time, so replies follow their message in
        the history), voice first, then messages that mention a persona, then the rest
        in arrival order. A message that waited longer than ``stale_after_s`` without a
        mention or voice is let go (the personas say so on the stream)."""
        message = self.admit(envelope)
        candidates = self.candidates(envelope)
        for persona in candidates:
            self.enqueue(persona, envelope)
        if not candidates:
            self.history.append(message)
            return []
        voice = any(isinstance(p, AudioPart) for p in envelope.parts)
        mentioned = any(m in self.personas for m in envelope.mentions)
        arrived = time.monotonic()
        async with self._floor.turn(0 if voice else 1 if mentioned else 2, None):
            self.history.append(message)
            waited = time.monotonic() - arrived
            if waited > self.policy.stale_after_s and not (voice or mentioned):
                for persona in candidates:
                    self._silent(persona.id, f"let go: the message waited {waited:.0f}s")
                    self.finish_item(persona.id, envelope.id, "stale")
                return []
            return await self._respond(envelope, message, candidates, on_reply)

    async def _respond(
        self,
        envelope: Envelope,
        message: RoomMessage,
        candidates: list[Persona],
        on_reply: Callable[[PersonaReply], Awaitable[None]] | None,
    ) -> list[PersonaReply]:
        if self.policy.cognition == "shared" and len(self.personas) > 1:
            from continuum.cognition.shared import SharedCognition

            return await SharedCognition(self).respond(envelope, message, candidates, on_reply)
        replies = []
        bound = self.policy.max_persona_turns_per_message
        for persona in candidates[bound:]:
            self._silent(persona.id, f"room turn bound reached ({bound} per message)")
            self.finish_item(persona.id, envelope.id, "silent: turn bound")
        for persona in candidates[:bound]:
            reply = (await self.persona_turn(persona, envelope)).reply
            replies.append(reply)
            if on_reply is not None:
                await on_reply(reply)
        return replies

    async def persona_turn(self, persona: Persona, envelope: Envelope) -> TurnResult:
        """Direct mode: the persona answers the latest message from its own prompt."""
        composed = self.compose(persona)
        max_tokens = persona.model.max_tokens or self.policy.reply_max_tokens
        return await self._infer(persona, envelope, composed, max_tokens, topics=[])

    async def render_turn(
        self,
        persona: Persona,
        envelope: Envelope,
        composed: ComposedPrompt,
        *,
        max_tokens: int,
        topics: list[str],
        min_tokens: int = 0,
        raw_prefix: str = "",
    ) -> PersonaReply:
        """Shared cognition: run an already composed render for ``persona``.
        ``raw_prefix``: text the prompt already holds of this reply (e.g. its think-block),
        kept in the message's raw text so the persona's next prompt re-renders it."""
        result = await self._infer(
            persona, envelope, composed, max_tokens, topics, min_tokens, raw_prefix
        )
        return result.reply

    async def post_status(self, persona: Persona, envelope: Envelope, text: str) -> PersonaReply:
        """A reply that needs no model call (e.g. a tired persona saying it needs rest)."""
        message = RoomMessage(author=self.participants[persona.id], text=text)
        self.history.append(message)
        metrics = InferenceMetrics.nothing("none")
        self.events.emit(
            ReplyPosted(room_id=self.id, persona_id=persona.id, message=message, metrics=metrics)
        )
        return self._reply(persona, message, envelope)

    async def _infer(
        self,
        persona: Persona,
        envelope: Envelope,
        composed: ComposedPrompt,
        max_tokens: int,
        topics: list[str],
        min_tokens: int = 0,
        raw_prefix: str = "",
    ) -> TurnResult:
        self.events.emit(TurnStarted(room_id=self.id, persona_id=persona.id))
        settings = GenerationSettings.for_persona(
            persona, max_tokens=max_tokens, min_tokens=min(min_tokens, max_tokens)
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
            self.finish_item(persona.id, envelope.id, "failed")
            return TurnResult(
                reply=self._reply(persona, message, envelope, error=str(exc)), composed=composed
            )

        raw = raw_prefix + completion.text
        visible, thinks = split_think(raw)
        visible = _strip_speaker_prefix(visible, [p.name for p in self.participants.values()])
        if completion.metrics.moved:  # its server went away: the KV was rebuilt elsewhere
            visible = f"(catching up: I moved to another server) {visible}"
            self._state_changed(persona.id, "catching up on another server")
        message = RoomMessage(author=self.participants[persona.id], text=visible, raw_text=raw)
        self.history.append(message)
        self._topics[message.id] = topics
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
        now = time.time()
        state = self.state(persona.id)
        state.spend(completion.metrics.generated_tokens, now)
        state.last_spoke_at[self.id] = now
        state.reputation.contributions += 1
        state.inbox.take(envelope.id)
        self._state_changed(persona.id, f"replied ({envelope.id})")
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


def _default_embedder(memory: MemoryEngine | None) -> Embedder | None:
    """The relevance gate's sentence embedder: memory's if there is one, else WordLlama
    (a core dependency); without it the gate falls back to expertise words only."""
    if memory is not None and getattr(memory, "embedder", None) is not None:
        return memory.embedder
    try:
        from continuum.memory.embeddings import WordLlamaEmbedder

        return _shared_wordllama(WordLlamaEmbedder)
    except ContinuumError as exc:
        log.warning("relevance gate without embeddings: %s", exc)
        return None


_WORDLLAMA: list[Embedder] = []


def _shared_wordllama(factory: Callable[[], Embedder]) -> Embedder:
    if not _WORDLLAMA:
        _WORDLLAMA.append(factory())
    return _WORDLLAMA[0]
