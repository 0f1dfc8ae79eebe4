"""The hippocampus: consolidates think-blocks and turns into long-term memory, off the
reply path.

It subscribes to a room's events (never blocking them: handlers only enqueue) and a
background task consolidates the queue. Full work — a grammar-constrained consolidation
pass on the model at BACKGROUND priority, producing journal entries (through the write
policy) and validated profile updates — happens only when the room has been quiet for
``quiet_s``. While the room is busy it does reduced work: cheap heuristics over
think-blocks, no model calls. A new message cancels an in-flight model pass (it is
retried later), so consolidation never holds the model while a person waits.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from continuum.backends.base import Backend, CompletionRequest, GenerationSettings, Priority
from continuum.envelope import ParticipantKind
from continuum.errors import ContinuumError
from continuum.events import MessageReceived, ReplyPosted, RoomEvent, ThinkBlockEmitted
from continuum.memory.engine import MemoryEngine
from continuum.memory.journal import JournalEntry
from continuum.memory.profile import ContactUpdate, ProfileUpdate
from continuum.sanitize import as_data
from continuum.structured import complete_structured

log = logging.getLogger("continuum.hippocampus")

_COMMITMENT = re.compile(
    r"\b(i will|i'll|i promise|i decided|we agreed|next time|tomorrow)\b", re.IGNORECASE
)


def _clamp(low: float, high: float) -> Any:
    """JSON grammars constrain shape, not numeric ranges: clamp instead of discarding."""

    def clamp(value: Any) -> Any:
        return min(high, max(low, value)) if isinstance(value, int | float) else value

    return BeforeValidator(clamp)


class PersonNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=80)
    note: str = Field(default="", max_length=200)
    sentiment: Annotated[float, _clamp(-0.5, 0.5)] = Field(default=0.0, ge=-0.5, le=0.5)


class Consolidation(BaseModel):
    """What the model extracts from one exchange (its schema constrains generation)."""

    model_config = ConfigDict(extra="forbid")
    summary: str = Field(max_length=300)
    facts: list[str] = Field(default_factory=list, max_length=5)
    people: list[PersonNote] = Field(default_factory=list, max_length=4)
    commitments: list[str] = Field(default_factory=list, max_length=3)
    topics: list[str] = Field(default_factory=list, max_length=5)
    emotions: list[str] = Field(default_factory=list, max_length=3)
    salience: Annotated[float, _clamp(0.0, 1.0)] = Field(ge=0.0, le=1.0)


@dataclass
class _Item:
    kind: str  # "think" | "turn"
    persona_id: str
    room_id: str
    text: str
    context: str
    partners: dict[str, str]  # name -> participant id
    at: float = field(default_factory=time.monotonic)


@dataclass
class HippocampusStats:
    full: int = 0
    reduced: int = 0
    cancelled: int = 0
    written: int = 0
    profile_updates: int = 0
    failed: int = 0


class Hippocampus:
    def __init__(
        self,
        memory: MemoryEngine,
        backend: Backend | None = None,
        *,
        quiet_s: float = 3.0,
        max_queue: int = 512,
        max_tokens: int = 160,
    ) -> None:
        self.memory = memory
        self.backend = backend
        self.quiet_s = quiet_s
        self.max_tokens = max_tokens
        self.queue: deque[_Item] = deque(maxlen=max_queue)
        self.stats = HippocampusStats()
        self._last_activity = 0.0
        self._wake = anyio.Event()
        self._inflight: anyio.CancelScope | None = None
        self._last_human: dict[str, tuple[str, str, str]] = {}  # room -> (id, name, text)
        self._people: dict[str, dict[str, str]] = {}  # room -> name -> id
        self.last: Consolidation | None = None  # the latest model consolidation

    # --- event intake (synchronous, never blocks the room) -----------------------------

    def attach(self, events: object) -> None:
        events.subscribe(self.on_event)  # type: ignore[attr-defined]

    def on_event(self, event: RoomEvent) -> None:
        if isinstance(event, MessageReceived):
            self._last_activity = time.monotonic()
            author = event.message.author
            if author.kind == ParticipantKind.PERSON:
                self._last_human[event.room_id] = (author.id, author.name, event.message.text)
                self._people.setdefault(event.room_id, {})[author.name.lower()] = author.id
            if self._inflight is not None:  # someone is waiting: give the model back
                self._inflight.cancel()
            return
        if isinstance(event, ThinkBlockEmitted):
            kind, persona, text = "think", event.think.persona_id, event.think.text
        elif isinstance(event, ReplyPosted):
            kind, persona, text = "turn", event.persona_id, event.message.text
        else:
            return
        human = self._last_human.get(event.room_id)
        context = f"{human[1]}: {human[2]}" if human else ""
        self.queue.append(
            _Item(
                kind,
                persona,
                event.room_id,
                text,
                context,
                dict(self._people.get(event.room_id, {})),
            )
        )
        self._wake.set()

    # --- consolidation -------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return time.monotonic() - self._last_activity < self.quiet_s

    async def run(self) -> None:
        """Run forever (start it in a task group next to the host)."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self.queue:
                if self.busy or self.backend is None:
                    self.consolidate_reduced()
                    if self.queue:  # turns wait for a quiet moment
                        await anyio.sleep(max(0.05, self.quiet_s / 2))
                    continue
                await self.consolidate_full_once()

    async def drain(self) -> int:
        """Consolidate what is queued now, before a short-lived process exits."""
        return self.consolidate_reduced()

    def consolidate_reduced(self) -> int:
        """Busy-room work: heuristics over think-blocks only; turns stay queued."""
        done = 0
        for item in [i for i in self.queue if i.kind == "think"]:
            self.queue.remove(item)
            self._reduce(item)
            done += 1
        return done

    def _reduce(self, item: _Item) -> None:
        """Heuristics only (no model): a think-block becomes a low-salience entry, one with
        a commitment a salient one; a turn is left to the full pass."""
        if item.kind == "think":
            commitment = bool(_COMMITMENT.search(item.text))
            entry = JournalEntry(
                persona=item.persona_id,
                room=item.room_id,
                partners=tuple(item.partners.values()),
                salience=0.7 if commitment else 0.4,
                summary=item.context[:300],
                commitments=(item.text[:200],) if commitment else (),
                text=item.text,
            )
            if self.memory.consider(entry):
                self.stats.written += 1
        self.stats.reduced += 1

    async def consolidate_full_once(self) -> bool:
        """Consolidate the oldest queued item with the model; False if cancelled."""
        if not self.queue:
            return False
        item = self.queue[0]
        if self.backend is None:
            self.consolidate_reduced()
            return True
        prompt = (
            "<|im_start|>system\nYou are the memory of a persona. Read the exchange and "
            "extract what is worth remembering long-term as JSON: a one-sentence summary, "
            "facts, people (by name, with a short note and a sentiment change between -0.5 "
            "and 0.5), commitments, topics, emotions, and salience from 0 (trivial) to 1 "
            "(must remember).<|im_end|>\n<|im_start|>user\n"
            f"{as_data(item.context)}\n{'(private thought) ' if item.kind == 'think' else ''}"
            f"{item.persona_id}: {as_data(item.text)}<|im_end|>\n<|im_start|>assistant\n"
        )
        request = CompletionRequest(
            prompt=prompt,
            priority=Priority.BACKGROUND,
            settings=GenerationSettings(max_tokens=self.max_tokens, temperature=0.2),
        )
        with anyio.CancelScope() as scope:
            self._inflight = scope
            try:
                result = await complete_structured(
                    self.backend,
                    request,
                    Consolidation,
                    default=Consolidation(summary="", salience=0.0),
                )
            except ContinuumError as exc:  # the backend is down: heuristics instead
                log.warning("consolidation pass failed (%s); using heuristics", exc)
                self.stats.failed += 1
                self.queue.popleft()
                self._reduce(item)
                return True
            finally:
                self._inflight = None
        if scope.cancelled_caught:
            self.stats.cancelled += 1
            return False
        self.queue.popleft()
        self.stats.full += 1
        self._store(item, result.value)
        return True

    def _store(self, item: _Item, c: Consolidation) -> None:
        partners = tuple(
            item.partners[p.name.lower()] for p in c.people if p.name.lower() in item.partners
        )
        self.last = c
        facts = [f.strip() for f in c.facts if f.strip()]
        commitments = [x.strip() for x in c.commitments if x.strip()]
        # Nothing extracted means nothing to remember: writing the raw turn would fill
        # recall with chatter that outranks real facts.
        text = "\n".join(f"- {f}" for f in facts or commitments)
        if text:
            entry = JournalEntry(
                persona=item.persona_id,
                room=item.room_id,
                partners=partners or tuple(item.partners.values()),
                topics=tuple(c.topics),
                emotions=tuple(c.emotions),
                salience=c.salience,
                commitments=tuple(commitments),
                summary=c.summary or item.context[:300],
                text=text,
            )
            if self.memory.consider(entry):
                self.stats.written += 1
        contacts: dict[str, ContactUpdate] = {}
        for p in c.people:
            person_id = item.partners.get(p.name.lower())
            if person_id and person_id not in contacts:
                contacts[person_id] = ContactUpdate(
                    person_id=person_id,
                    name=p.name,
                    sentiment_delta=p.sentiment,
                    note=p.note or None,
                )
        if contacts and self.memory.apply_profile_update(
            item.persona_id, ProfileUpdate(contacts=list(contacts.values()))
        ):
            self.stats.profile_updates += 1
