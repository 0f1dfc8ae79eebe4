"""Rooms: participants, history, persona state, and persona turns over a shared backend.

A room turns an envelope into persona replies. The cascade policy picks who may answer
(people's messages only, mentions, cooldowns, a bound per message); each candidate gets an
inbox item. With several personas the message goes through shared cognition (one shared
analysis, a relevance gate, lever planning, lead-first renders — see
:mod:`continuum.cognition.shared`); a lone persona, or ``cognition="direct"``, answers
directly. Every turn runs through the one :class:`~continuum.room.turn.TurnRunner`:
composed stable-first (through the composition cache), on the persona's warm slot for
this room, streamed as visible text to the host's reply sink. A backend failure makes that
persona say it cannot think right now; the room goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC
from typing import Any, Literal

from continuum.backends.base import (
    AdapterUse,
    Backend,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.backends.scheduler import InferenceScheduler
from continuum.cognition.gate import RelevanceGate, needs_answer
from continuum.cognition.shared import SharedCognition
from continuum.cognition.state import InboxItem, PersonaState, PersonaStateStore
from continuum.compose import ComposedPrompt
from continuum.composition_cache import CompositionCache, history_tail_ids
from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    ParticipantKind,
    PersonaReply,
    RoomMessage,
    Visibility,
    new_id,
)
from continuum.errors import ContinuumError, UnknownMessage
from continuum.events import (
    EventLog,
    HistoryEdited,
    MediaBridged,
    MemoryWritten,
    MessageReceived,
    MessageTaken,
    PersonaSilent,
    PersonaStateChanged,
    PersonaUpdated,
    ReplyPosted,
    ReputationChanged,
)
from continuum.genome.pairs import PairLog, TrainingPair, domain_slug
from continuum.media import Bridged, MediaBridge
from continuum.media.placeholder import media_id, media_of, unreadable_note
from continuum.memory.embeddings import Embedder
from continuum.memory.engine import EXPLICIT_REQUEST, MemoryEngine
from continuum.memory.extract import extract
from continuum.memory.index import RecallScope
from continuum.memory.journal import JournalEntry
from continuum.persona import Persona
from continuum.prompt_sources import (
    MemoizedCounter,
    Recipe,
    TurnContext,
    persona_turn_recipe,
    shared_cognition_recipe,
)
from continuum.room.policy import RoomPolicy
from continuum.room.turn import RenderJob, ReplyOpener, TurnResult, TurnRunner

log = logging.getLogger("continuum.room")

ReplyCallback = Callable[[PersonaReply], Awaitable[None]]

__all__ = ["Room", "RoomPolicy", "TurnResult"]


class Room:
    def __init__(
        self,
        room_id: str,
        personas: Sequence[Persona],
        backend: Backend,
        *,
        key: str | None = None,
        recipe: Recipe | None = None,
        policy: RoomPolicy | None = None,
        guidance: str = "",
        cache: CompositionCache | None = None,
        memory: MemoryEngine | None = None,
        state_store: PersonaStateStore | None = None,
        embedder: Embedder | None = None,
        gate: RelevanceGate | None = None,
        names: Callable[[str], str | None] | None = None,
        identities: Callable[[str], Sequence[str]] | None = None,
        shared_adapters: Sequence[AdapterUse] = (),
        bridge: MediaBridge | None = None,
        pairs: PairLog | None = None,
    ) -> None:
        self.id = room_id
        # training pairs from the turns of personas that opted in (persona.learning)
        self.pairs = pairs
        # audio and images for a model that cannot take them: transcribed / described (or
        # the persona is told plainly what it cannot hear or see)
        self.bridge = bridge or MediaBridge()
        self.shared_adapters = {u.id: u for u in shared_adapters}
        self.key = key or room_id  # "<host>:<room id>" under a router
        self.backend = backend
        self.recipe = recipe or persona_turn_recipe()
        self.shared_recipe = shared_cognition_recipe(self.recipe)
        self.policy = policy or RoomPolicy()
        self.state_store = state_store
        self.states: dict[str, PersonaState] = {}
        if gate is None:
            gate_embedder = embedder or default_gate_embedder()
            # phrase-level similarity where its bar was calibrated (MiniLM:
            # bench/eval/gate_held_out.py), else the single cosine and its bar
            phrase_bar = getattr(gate_embedder, "phrase_bar", None)
            mode: Literal["phrases", "single"] = "phrases" if phrase_bar else "single"
            bar = self.policy.relevance_threshold
            if bar is None:
                bar = phrase_bar or getattr(gate_embedder, "relevance_bar", 0.15)
            gate = RelevanceGate(
                gate_embedder, threshold=bar, mode=mode, stand_out=self.policy.quorum_stand_out
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
        self._count = MemoizedCounter(backend.count_tokens)
        self.memory = memory
        self._recalled: dict[tuple[str, str], tuple[str, ...]] = {}  # (persona, msg) -> lines
        # (persona, msg) -> whose words those lines hold (tellers and partners)
        self._recalled_people: dict[tuple[str, str], frozenset[str]] = {}
        self._topics: dict[str, list[str]] = {}  # persona message id -> analysis topics
        self.current: Envelope | None = None  # the message that holds the floor
        self.visibility: Visibility = "public"  # as the host says (latest message)
        self.names = names  # person id -> display name (the runtime's people directory)
        # person id -> every id their words may be stored under (linked host ids)
        self.identities = identities
        # voice turns delivered in the pause (message id -> what their arrival still owes:
        # MessageReceived, an explicit remember), until confirmed or retracted
        self._held: dict[str, list[Callable[[], None]]] = {}
        self.turns = TurnRunner(self)
        self.cognition = SharedCognition(self)
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

    def remove_persona(self, persona_id: str) -> None:
        self.personas.pop(persona_id, None)
        self.participants.pop(persona_id, None)

    def adapters_for(
        self, persona: Persona, extra: Sequence[AdapterUse] = ()
    ) -> tuple[AdapterUse, ...]:
        """The LoRA adapters a persona's text turns run under: its skill adapters (its
        specialty in its weights), plus any it paged in for this render."""
        own = tuple(
            AdapterUse(id=a.id, path=a.path, scale=a.scale, pinned=a.pinned)
            for a in persona.adapters
            if a.kind == "skill"
        )
        mine = {u.id for u in own}
        return own + tuple(u for u in extra if u.id not in mine)

    def slot_for(self, persona: Persona, extra: Sequence[AdapterUse] = ()) -> SlotKey:
        """The persona's KV slot in this room (per room unless ``slot_scope='persona'``),
        for the adapter set it runs under: KV under one set is wrong under another."""
        room = self.key if self.policy.slot_scope == "room" else None
        ids = frozenset(u.id for u in self.adapters_for(persona, extra))
        return SlotKey.for_persona(persona, active_adapters=ids, room=room)

    def library(self) -> dict[str, AdapterUse]:
        """Skill adapters a persona here may page in for one render
        (``requestCrossDomainAdapter``): every persona's skills, and the shared library."""
        found: dict[str, AdapterUse] = dict(self.shared_adapters)
        for persona in self.personas.values():
            for use in self.adapters_for(persona):
                found.setdefault(use.id, use.model_copy(update={"pinned": False}))
        return found

    def edit_message(self, message_id: str, text: str) -> None:
        """A person edited a message: history shows the new text; compositions over it go."""
        for i, message in enumerate(self.history):
            if message.id == message_id:
                self.history[i] = message.model_copy(update={"text": text, "raw_text": None})
                self.events.emit(HistoryEdited(room_id=self.id, message_id=message_id))
                return
        raise UnknownMessage(f"no message {message_id} in room {self.key}")

    def delete_message(self, message_id: str) -> None:
        """A message was deleted on the host: it leaves the history (and every prompt)."""
        for i, message in enumerate(self.history):
            if message.id == message_id:
                del self.history[i]
                self.events.emit(HistoryEdited(room_id=self.id, message_id=message_id))
                return
        raise UnknownMessage(f"no message {message_id} in room {self.key}")

    # --- the cascade ---------------------------------------------------------------------

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

    def _state_changed(self, persona_id: str, reason: str, durable: bool = False) -> None:
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
            self.state_store.save(state, force=durable)

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
        )
        dropped = state.inbox.push(item, now)
        reason = "queued " + envelope.id
        if dropped is not None:
            reason += f"; inbox full, dropped {dropped.message_id}"
        self._state_changed(persona.id, reason)

    def finish_item(self, persona_id: str, message_id: str, outcome: str) -> None:
        self.state(persona_id).inbox.take(message_id)
        self._state_changed(persona_id, f"{outcome} ({message_id})")

    def react(
        self,
        message_id: str,
        positive: bool,
        *,
        persona_id: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        """A person reacted to a persona's message (a host's thumbs up/down): trust,
        domain proficiency for the message's topics, and mood move with it. ``persona_id``
        and ``topics`` come from the router's persisted message map when the message is no
        longer in this process's history (a reaction after a restart)."""
        if persona_id is None:
            message = next((m for m in self.history if m.id == message_id), None)
            if message is None or message.author.id not in self.personas:
                raise UnknownMessage(f"no persona message {message_id} in room {self.key}")
            persona_id = message.author.id
        state = self.state(persona_id)
        rep = state.reputation
        liked = state.contribution_topics.setdefault("_liked", [])
        first_positive = positive and message_id not in liked
        rep.record_reaction(positive, list(topics or self._topics.get(message_id, [])))
        if first_positive:
            rep.successful += 1
            liked.append(message_id)
            del liked[:-256]
        state.feel(0.1 if positive else -0.1)
        if self.pairs is not None and (p := self.personas.get(persona_id)) and p.learning.enabled:
            try:
                self.pairs.react(persona_id, message_id, positive)
            except (OSError, ContinuumError):
                log.exception("%s: could not record a reaction for training", self.key)
        self.events.emit(
            ReputationChanged(
                room_id=self.id,
                persona_id=persona_id,
                message_id=message_id,
                positive=positive,
                trust=round(rep.trust, 4),
            )
        )
        self._state_changed(persona_id, "reaction " + ("+" if positive else "-"), durable=True)

    def _on_memory_change(self, persona_id: str, what: str) -> None:
        if persona_id in self.personas:
            self.events.emit(MemoryWritten(room_id=self.id, persona_id=persona_id, what=what))

    # --- composing -----------------------------------------------------------------------

    def name_of(self, person_id: str) -> str | None:
        """A person's display name for recall lines (never their raw host id)."""
        if self.names is not None and (name := self.names(person_id)):
            return name
        wanted = person_id.lower()
        return next((p.name for p in self.participants.values() if p.id.lower() == wanted), None)

    def recall(self, persona: Persona, message: RoomMessage) -> tuple[str, ...]:
        """Recalled memory lines for ``persona`` on ``message`` (once per message), scoped
        to who asks and where: the asker's own words, this room's, public rooms' — never
        another person's DM or private-room words, never a superseded memory."""
        if self.memory is None or not self.policy.recall_k:
            return ()
        key = (persona.id, message.id)
        lines = self._recalled.get(key)
        if lines is None:
            asker = message.author.id if message.author.kind == ParticipantKind.PERSON else None
            aliases = tuple(self.identities(asker)) if asker and self.identities else ()
            scope = RecallScope(
                asker=asker, asker_aliases=aliases, room=self.key, visibility=self.visibility
            )
            recalled = self.memory.recall(
                persona.id, message.text, k=self.policy.recall_k, scope=scope
            )

            def name(person_id: str) -> str | None:
                """Two people may share a name: another one is named as such."""
                found = self.name_of(person_id)
                same = asker and found == message.author.name and person_id != asker.lower()
                return f"another person named {found}" if same else found

            lines = tuple(r.render(name) for r in recalled)
            if len(self._recalled) > 4096:
                self._recalled.clear()
                self._recalled_people.clear()
            self._recalled[key] = lines
            self._recalled_people[key] = frozenset(
                p.lower() for r in recalled for p in (*r.partners, r.told_by or "") if p
            )
        return lines

    def turn_context(self, persona: Persona, upto: int | None = None, **extra: Any) -> TurnContext:
        """The persona's view: history before message ``upto`` (default: the latest) and
        that message as the new one. Memory enters only as the profile snapshot
        (SEMI_STABLE) and recalled entries (VOLATILE), so a memory write never moves the
        invariant prefix. ``extra`` sets shared-cognition fields (analysis, ...)."""
        upto = len(self.history) - 1 if upto is None else upto
        new_message = self.history[upto]
        profile = self.memory.snapshot(persona.id) if self.memory is not None else ""
        return TurnContext(
            persona=persona,
            room_id=self.id,
            history=tuple(self.history[:upto]),
            new_message=new_message,
            participants=tuple(self.participants.values()),
            guidance=self.guidance,
            conversation="dm" if self.visibility == "dm" and len(self.personas) == 1 else "group",
            profile_snapshot=profile,
            retrieval=self.recall(persona, new_message),
            count_tokens=self._count,
            **extra,
        )

    @property
    def turn_recipe(self) -> Recipe:
        """The recipe of a persona's direct turns. In a shared-cognition room it is the
        shared recipe (the lever menu in its invariant tier; the analysis tail empty), so
        a persona answering by name and answering through shared cognition compose the
        same stable prefix and its warm slot serves both (a voice room alternates them)."""
        if self.policy.cognition == "shared" and len(self.personas) > 1:
            return self.shared_recipe
        return self.recipe

    def warm_prefix(self, persona: Persona) -> str | None:
        """What ``persona``'s next turn will start with: its prompt composed as if one more
        message followed the whole history, cut where that message's turn opens (what it
        recalls and the message itself are not known yet). None for an empty room."""
        if not self.history:
            return None
        marker = "\u2063continuum-next\u2063"
        last = self.history[-1]
        ctx = dataclasses.replace(
            self.turn_context(persona, len(self.history) - 1),
            history=tuple(self.history),
            new_message=RoomMessage(author=last.author, text=marker),
            retrieval=(),
        )
        recipe = self.turn_recipe
        prompt = recipe.compose(ctx).prompt
        at = prompt.rfind(marker)
        turn_open = recipe.template.open.split("{role}")[0]
        cut = prompt.rfind(turn_open, 0, at) if at >= 0 else -1
        return prompt[:cut] if cut > 0 else None

    async def keep_warm(self, skip: Iterable[str] = ()) -> int:
        """Bring the warm slots of the personas not in ``skip`` up to date with the history
        (the room's ``keep_warm``): one background-priority pass each, queued behind any
        render. Returns the passes run. A persona with no warm slot is left cold."""
        slot_tokens = getattr(self.backend, "slot_tokens", None)
        done = 0
        skipped = set(skip)
        seen = len(self.history)
        for persona in list(self.personas.values()):
            if len(self.history) != seen:  # a new message: its turn, not this, gets the model
                break
            key = self.slot_for(persona)
            if persona.id in skipped or slot_tokens is None or not slot_tokens(key):
                continue
            prefix = self.warm_prefix(persona)
            limit = getattr(self.backend, "slot_ctx", None)
            if not prefix or (isinstance(limit, int) and self._count(prefix) > limit // 2):
                continue
            request = CompletionRequest(
                prompt=prefix,
                slot=key,
                adapters=self.adapters_for(persona),
                settings=GenerationSettings(max_tokens=1, temperature=0.0),
                priority=Priority.BACKGROUND,
            )
            try:
                await self.backend.complete(request)
            except ContinuumError as exc:  # busy or gone: the next turn runs as it would
                log.debug("%s: %s not kept warm: %s", self.key, persona.id, exc)
                break
            done += 1
        return done

    def compose(
        self,
        persona: Persona,
        upto: int | None = None,
        recipe: Recipe | None = None,
        **extra: Any,
    ) -> ComposedPrompt:
        """Compose ``persona``'s prompt through the composition cache (keyed by persona,
        room, recipe, the history tail, and any shared-cognition extras)."""
        recipe = recipe or self.recipe
        upto = len(self.history) - 1 if upto is None else upto
        tail = history_tail_ids(self.history[:upto], self.history[upto])
        if extra:
            digest = hashlib.sha256(repr(sorted(extra.items())).encode()).hexdigest()[:16]
            tail = (*tail, digest)
        composed = self._compose_cached(persona, upto, recipe, tail, extra)
        # it must fit the persona's slot with room to answer: else less history (once or
        # twice, never below nothing) — a clear error from the backend only if even that
        # cannot fit (a single message larger than the slot)
        limit = getattr(self.backend, "slot_ctx", None)
        reserve = max(self.policy.reply_max_tokens, persona.model.max_tokens or 0)
        budget = recipe.history_budget()
        for _ in range(3):
            if not isinstance(limit, int) or budget is None:
                break
            over = self._count(composed.prompt) + reserve + 16 - limit
            if over <= 0 or budget == 0:
                break
            budget = budget // 2 if budget > 256 else 0  # coarse steps: the same budget
            recipe = recipe.with_history_budget(budget)  # next turn, a stable prefix
            composed = self._compose_cached(persona, upto, recipe, tail, extra)
        return composed

    def _compose_cached(
        self, persona: Persona, upto: int, recipe: Recipe, tail: tuple, extra: dict[str, Any]
    ) -> ComposedPrompt:
        key = self.cache.key(persona.id, self.id, recipe.id, tail)
        return self.cache.get_or_compose(
            key, lambda: recipe.compose(self.turn_context(persona, upto, **extra))
        )

    # --- messages --------------------------------------------------------------------------

    def receive(self, envelope: Envelope) -> RoomMessage:
        """Admit a message and append it to the history at once (no waiting for the floor)."""
        message = self.admit(envelope)
        self.history.append(message)
        return message

    def admit(self, envelope: Envelope, bridged: Bridged | None = None) -> RoomMessage:
        """Register a message as arrived (MessageReceived, explicit remember requests)
        without putting it in the history yet: the history gets it when it has the floor.
        ``bridged``: what the media bridge made of its audio and images."""
        author = envelope.author
        self.participants.setdefault(author.id, author)
        self.visibility = envelope.visibility
        media = tuple(p for p in envelope.parts if isinstance(p, AudioPart | ImagePart))
        message = RoomMessage(
            id=envelope.id,
            author=author,
            text=bridged.text if bridged is not None else envelope.text,
            timestamp=envelope.timestamp,
            parts=media,
            media=None if bridged is None or bridged.path == "text" else bridged.path,
            context=envelope.context or "",
        )
        if bridged is not None and bridged.path != "text":
            self.events.emit(
                MediaBridged(
                    room_id=self.id,
                    message_id=envelope.id,
                    path=bridged.path,
                    stt_calls=bridged.stt_calls,
                    describe_calls=bridged.describe_calls,
                )
            )
        effects: list[Callable[[], None]] = [
            lambda: self.events.emit(
                MessageReceived(room_id=self.id, message=message, visibility=envelope.visibility)
            )
        ]
        if (
            self.memory is not None
            and author.kind == ParticipantKind.PERSON
            and EXPLICIT_REQUEST.search(message.text)
        ):
            effects.append(lambda: self._remember_explicitly(envelope, message))
        if envelope.id in self._held:  # a held voice turn: remembered once confirmed
            self._held[envelope.id].extend(effects)
        else:
            for effect in effects:
                effect()
        return message

    def hold(self, message_id: str) -> None:
        """A voice turn delivered before its end of turn: its arrival (memory, the
        coordination stream) waits for :meth:`confirm`; :meth:`retract` drops it."""
        self._held.setdefault(message_id, [])

    def confirm(self, message_id: str) -> None:
        for effect in self._held.pop(message_id, []):
            effect()

    def retract(self, message_id: str) -> None:
        """Take a held message back: out of the history, never remembered. (Its replies
        were never heard: the turn runner records none.)"""
        self._held.pop(message_id, None)
        with contextlib.suppress(UnknownMessage):
            self.delete_message(message_id)

    def _remember_explicitly(self, envelope: Envelope, message: RoomMessage) -> None:
        """A person asked to remember something: always honoured, by the personas addressed
        (or everyone present)."""
        assert self.memory is not None
        targets = [m for m in envelope.mentions if m in self.personas] or list(self.personas)
        for persona_id in targets:
            # one entry per (persona, message), whatever replays a crash causes: its id
            # comes from the message, and an entry already there is not written again
            digest = hashlib.sha256(f"{persona_id}\0{envelope.id}".encode()).hexdigest()[:6]
            entry_id = f"{envelope.timestamp.astimezone(UTC):%Y%m%dT%H%M%S}-{digest}"
            if self.memory.journal(persona_id).path_for(entry_id).exists():
                continue
            # a note that corrects an earlier one ("remember: the standup is at ten now,
            # not nine") supersedes it, as a correction said in passing does
            corrected = [
                old
                for fact in extract(message.text)
                if fact.kind == "correction"
                for old in self.memory.corrected_by(
                    persona_id,
                    teller=message.author.id,
                    room=self.key,
                    visibility=envelope.visibility,
                    text=fact.text,
                    replaces=fact.replaces,
                )
            ]
            written = self.memory.remember(
                JournalEntry(
                    id=entry_id,
                    persona=persona_id,
                    host=envelope.host,
                    room=self.key,
                    visibility=envelope.visibility,
                    told_by=message.author.id,
                    about=(message.author.id,),
                    partners=(message.author.id,),
                    salience=1.0,
                    kind="note",
                    summary=f"{message.author.name} asked me to remember this.",
                    text=f"{message.author.name}: {message.text}",
                )
            )
            for old in dict.fromkeys(corrected):
                self.memory.supersede(persona_id, old, written.id)

    async def handle(
        self,
        envelope: Envelope,
        on_reply: ReplyCallback | None = None,
        replies: ReplyOpener | None = None,
    ) -> list[PersonaReply]:
        """Take a message in and let the personas answer. ``replies`` opens a reply on the
        host for each persona turn (visible deltas stream into it; its ``finish`` gives the
        host's message id); ``on_reply`` is awaited with each finished reply.

        Safe to call for many messages at once: each waits in the personas' inboxes for
        the floor (one message is answered at a time, so replies follow their message in
        the history), voice first, then messages that mention a persona, then the rest
        in arrival order. A message that waited longer than ``stale_after_s`` without a
        mention or voice is let go (the personas say so on the stream)."""
        bridged = None
        if any(isinstance(p, AudioPart | ImagePart) for p in envelope.parts):
            bridged = await self.bridge.render(envelope.parts, self.backend.capabilities)
        message = self.admit(envelope, bridged)
        candidates = self.candidates(envelope)
        for persona in candidates:
            self.enqueue(persona, envelope)
        if not candidates:
            self.history.append(message)
            return []
        voice = any(isinstance(p, AudioPart) for p in envelope.parts)
        mentioned = any(m in self.personas for m in envelope.mentions)
        arrived = time.monotonic()
        try:
            async with self._floor.turn(0 if voice else 1 if mentioned else 2, None):
                self.current = envelope
                self.events.emit(MessageTaken(room_id=self.id, message_id=envelope.id))
                self.history.append(message)
                waited = time.monotonic() - arrived
                if waited > self.policy.stale_after_s and not (voice or mentioned):
                    for persona in candidates:
                        self._silent(persona.id, f"let go: the message waited {waited:.0f}s")
                        self.finish_item(persona.id, envelope.id, "stale")
                    return []
                return await self._respond(envelope, message, candidates, on_reply, replies)
        finally:
            if self.current is envelope:
                self.current = None
            # whatever happened (cancelled, shed, failed), no inbox item outlives its turn
            for persona in candidates:
                if self.state(persona.id).inbox.take(envelope.id) is not None:
                    self._state_changed(persona.id, f"ended ({envelope.id})")

    async def _respond(
        self,
        envelope: Envelope,
        message: RoomMessage,
        candidates: list[Persona],
        on_reply: ReplyCallback | None,
        replies: ReplyOpener | None,
    ) -> list[PersonaReply]:
        addressed = [p for p in candidates if p.id in envelope.mentions]
        if addressed and self.policy.addressed == "direct":
            # addressed to these personas: they answer, nobody else chimes in
            names = ", ".join(p.name for p in addressed)
            for persona in candidates:
                if persona not in addressed:
                    self._silent(persona.id, f"not addressed (the message is for {names})")
                    self.finish_item(persona.id, envelope.id, "silent: not addressed")
            candidates = []
            out: list[PersonaReply] = []
            now = time.time()
            for persona in addressed:  # asked directly while exhausted: says so, no model
                state = self.state(persona.id)
                state.rest_until(now)
                if state.energy >= self.policy.exhausted_below:
                    candidates.append(persona)
                    continue
                out.append(await self.post_status(persona, envelope, state.how_i_feel(), replies))
                if on_reply is not None:
                    await on_reply(out[-1])
                self._silent(persona.id, f"declined: {state.how_i_feel()}")
                self.finish_item(persona.id, envelope.id, "declined: exhausted")
            return out + await self._direct(envelope, candidates, on_reply, replies)
        if self.policy.cognition == "shared" and len(self.personas) > 1:
            return await self.cognition.respond(envelope, message, candidates, on_reply, replies)
        # "ok thanks" is owed no reply; audio the model hears itself has no text to judge
        if not (needs_answer(message.text) if message.text.strip() else message.parts):
            for persona in candidates:
                self._silent(persona.id, "no reply needed (an acknowledgement)")
                self.finish_item(persona.id, envelope.id, "silent: acknowledgement")
            return []
        return await self._direct(envelope, candidates, on_reply, replies)

    async def _direct(
        self,
        envelope: Envelope,
        candidates: list[Persona],
        on_reply: ReplyCallback | None,
        replies: ReplyOpener | None,
    ) -> list[PersonaReply]:
        """Each candidate answers from its own prompt, in order, up to the turn bound."""
        out = []
        bound = self.policy.max_persona_turns_per_message
        for persona in candidates[bound:]:
            self._silent(persona.id, f"room turn bound reached ({bound} per message)")
            self.finish_item(persona.id, envelope.id, "silent: turn bound")
        for persona in candidates[:bound]:
            reply = (await self.persona_turn(persona, envelope, replies)).reply
            out.append(reply)
            if on_reply is not None:
                await on_reply(reply)
        return out

    async def persona_turn(
        self, persona: Persona, envelope: Envelope, replies: ReplyOpener | None = None
    ) -> TurnResult:
        """Direct mode: the persona answers the latest message from its own prompt."""
        composed = self.compose(persona, recipe=self.turn_recipe)
        max_tokens = persona.model.max_tokens or self.policy.reply_max_tokens
        return await self.turns.run(
            RenderJob(
                persona=persona,
                envelope=envelope,
                composed=composed,
                max_tokens=max_tokens,
                recalled=self.recall(persona, self.history[-1]),
            ),
            replies,
        )

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
        replies: ReplyOpener | None = None,
        extra_adapters: Sequence[AdapterUse] = (),
    ) -> PersonaReply:
        """Shared cognition: run an already composed render for ``persona``.
        ``raw_prefix``: text the prompt already holds of this reply (e.g. its think-block),
        kept in the message's raw text so the persona's next prompt re-renders it."""
        upto = next(
            (i for i, m in enumerate(self.history) if m.id == envelope.id), len(self.history) - 1
        )
        job = RenderJob(
            persona=persona,
            envelope=envelope,
            composed=composed,
            max_tokens=max_tokens,
            topics=topics,
            min_tokens=min_tokens,
            raw_prefix=raw_prefix,
            recalled=self.recall(persona, self.history[upto]),
            extra_adapters=tuple(extra_adapters),
        )
        return (await self.turns.run(job, replies)).reply

    async def post_status(
        self,
        persona: Persona,
        envelope: Envelope,
        text: str,
        replies: ReplyOpener | None = None,
    ) -> PersonaReply:
        """A reply that needs no model call (e.g. a tired persona saying it needs rest)."""
        return await self.turns.post_text(persona, envelope, text, replies)

    # --- TurnRoom: what the turn runner reports back ---------------------------------------

    def record_reply(
        self,
        persona: Persona,
        envelope: Envelope,
        message: RoomMessage,
        metrics: InferenceMetrics | None,
        topics: list[str],
    ) -> None:
        self.history.append(message)
        self._topics[message.id] = topics
        if len(self._topics) > 4096:
            for old in list(self._topics)[:1024]:
                del self._topics[old]
        if metrics is None:
            return
        now = time.time()
        state = self.state(persona.id)
        state.spend(metrics.generated_tokens, now)
        state.last_spoke_at[self.id] = now
        state.reputation.contributions += 1
        state.inbox.take(envelope.id)
        self._state_changed(persona.id, f"replied ({envelope.id})")

    def record_interrupted(
        self, persona: Persona, envelope: Envelope, message_id: str, spoken: str
    ) -> RoomMessage | None:
        """A spoken reply the person cut off: the history keeps what was heard, and the
        unspoken rest is gone (never said later as if it had been)."""
        if not spoken:
            return None
        message = RoomMessage(
            id=message_id or new_id(),
            author=self.participants[persona.id],
            text=spoken,
            interrupted=True,
        )
        self.record_reply(persona, envelope, message, None, [])
        self.events.emit(
            ReplyPosted(
                room_id=self.id,
                persona_id=persona.id,
                message=message,
                metrics=InferenceMetrics.nothing("interrupted"),
            )
        )
        return message

    def record_failure(self, persona: Persona, envelope: Envelope) -> None:
        self.finish_item(persona.id, envelope.id, "failed")

    def forget_author(self, author_ids: Iterable[str]) -> int:
        """Drop what these people said from this room's history (``/continuum forget``):
        no later prompt shows it. Returns how many messages went."""
        ids = set(author_ids)
        kept = [m for m in self.history if m.author.id not in ids]
        gone = len(self.history) - len(kept)
        if gone:
            self.history[:] = kept
            self.cache.invalidate(room_id=self.id)
        return gone

    def reject_media(self, media_ids: Iterable[str]) -> None:
        """Parts the model could not take (``MediaRejected``) leave every later prompt of
        this room: each is named in its message's line instead, so one broken image does
        not fail every turn after it."""
        ids = set(media_ids)
        for i, m in enumerate(self.history):
            if m.media != "direct" or not any(media_id(p) in ids for p in m.parts):
                continue
            kept = tuple(p for p in m.parts if media_id(p) not in ids)
            notes = [unreadable_note(p) for p in m.parts if media_id(p) in ids]
            self.history[i] = m.model_copy(
                update={
                    "parts": kept,
                    "text": "\n".join([m.text, *notes]).strip(),
                    "media": "direct" if kept else "told",
                }
            )
        self.cache.invalidate(room_id=self.id)

    def media_in(self, prompt: str) -> dict[str, AudioPart | ImagePart]:
        """The raw parts behind the media placeholders in ``prompt`` (messages whose
        audio or images the model takes directly), for the request that carries it."""
        return media_of(prompt, self.history)

    def record_training(
        self, persona: Persona, message_id: str, prompt: str, response: str, topics: list[str]
    ) -> None:
        """A turn of a persona that learns from its turns becomes a training pair, filed
        under the first of the turn's topics that is one of the persona's expertise."""
        if self.pairs is None or not persona.learning.enabled or not response.strip():
            return
        if self.visibility != "public" and not persona.learning.private_rooms:
            return  # what one person told it in private never goes into shared weights
        expertise = {domain_slug(e) for e in persona.expertise}
        domain = next(
            (d for d in map(domain_slug, topics) if d in expertise), persona.learning.domain
        )
        people = {
            m.author.id.lower() for m in self.history if m.author.kind is ParticipantKind.PERSON
        }
        # recalled memories put other people's words in the prompt too: they are listed,
        # so their /continuum forget reaches this pair and adapters trained on it
        for (persona_id, message), whose in self._recalled_people.items():
            lines = self._recalled.get((persona_id, message), ())
            if persona_id == persona.id and any(line in prompt for line in lines):
                people |= whose
        pair = TrainingPair(
            id=message_id,
            persona_id=persona.id,
            domain=domain,
            room=self.key,
            prompt=prompt,
            response=response,
            people=tuple(sorted(people)),
        )
        try:
            self.pairs.record(pair)
        except (OSError, ContinuumError):  # learning is never worth a lost reply
            log.exception("%s: could not record a training pair for %s", self.key, persona.id)


def default_gate_embedder() -> Embedder | None:
    """The relevance gate's sentence embedder: all-MiniLM-L6-v2 (separates on- and
    off-topic messages; bench/eval/gate_calibration.py), else WordLlama (a core
    dependency) with its own calibrated bar; without either, expertise words only."""
    if not _EMBEDDERS:
        try:
            from continuum.memory.minilm import MiniLMEmbedder

            _EMBEDDERS.append(MiniLMEmbedder.shared())
        except ContinuumError as exc:
            log.warning("relevance gate on WordLlama (less precise): %s", exc)
            try:
                from continuum.memory.embeddings import WordLlamaEmbedder

                _EMBEDDERS.append(WordLlamaEmbedder())
            except ContinuumError as exc2:
                log.warning("relevance gate without embeddings: %s", exc2)
                _EMBEDDERS.append(None)
    return _EMBEDDERS[0]


_EMBEDDERS: list[Embedder | None] = []
