"""The hippocampus: turns what happens in rooms into long-term memory, off the reply path.

It subscribes to every room's events (handlers only enqueue; they never block a room) and
a background task works the queue:

- **What people say** is consolidated at once, without the model: the personal facts,
  preferences, commitments and corrections in a person's message
  (:mod:`continuum.memory.extract`) are written, verbatim and attributed, into the journal
  of every persona who heard them — with who told them, who they are about, where, and how
  public the room was, so recall can keep one person's private words from another. A
  correction supersedes what it corrects (kept in history, no longer recalled).
- **What personas say and think** (replies, think-blocks) gets a grammar-constrained
  consolidation pass on the model at BACKGROUND priority when the rooms are quiet
  (``quiet_s``); a new message cancels an in-flight pass (it is retried later), so the
  model is never held while a person waits. While busy: cheap heuristics over
  think-blocks only. A salient summary is written even when the model listed no facts.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from continuum.backends.base import Backend, CompletionRequest, GenerationSettings, Priority
from continuum.envelope import ParticipantKind
from continuum.errors import BackendPreempted, ContinuumError
from continuum.events import (
    MessageReceived,
    MessageTaken,
    ReplyPosted,
    RoomEvent,
    ThinkBlockEmitted,
)
from continuum.memory.engine import EXPLICIT_REQUEST, MemoryEngine
from continuum.memory.extract import Extracted, extract, self_contained
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
    """What the model extracts from one exchange. Its schema constrains generation: every
    field the store needs is required, so a small model cannot skip ``facts``."""

    model_config = ConfigDict(extra="forbid")
    summary: str = Field(max_length=300)
    facts: list[str] = Field(max_length=5)
    people: list[PersonNote] = Field(max_length=4)
    commitments: list[str] = Field(max_length=3)
    topics: list[str] = Field(max_length=5)
    emotions: list[str] = Field(default_factory=list, max_length=3)
    salience: Annotated[float, _clamp(0.0, 1.0)] = Field(ge=0.0, le=1.0)


EMPTY = Consolidation(summary="", facts=[], people=[], commitments=[], topics=[], salience=0.0)


@dataclass
class _Item:
    kind: str  # "said" (a person's message) | "think" | "turn" (a persona's reply)
    persona_id: str  # the persona who thought/said it; "" for a person's message
    room_id: str
    text: str
    context: str
    partners: dict[str, str]  # name -> participant id
    visibility: str = "public"
    author: str | None = None  # a person's id ("said")
    author_name: str = ""
    listeners: tuple[str, ...] = ()  # personas who heard it ("said")
    at: float = field(default_factory=time.monotonic)


@dataclass
class HippocampusStats:
    full: int = 0
    reduced: int = 0
    cancelled: int = 0
    written: int = 0
    said: int = 0  # people's messages consolidated
    superseded: int = 0
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
        self._visibility: dict[str, str] = {}  # room -> visibility
        self._listeners: dict[str, Callable[[], list[str]]] = {}  # room -> persona ids
        self.last: Consolidation | None = None  # the latest model consolidation

    # --- event intake (synchronous, never blocks the room) -----------------------------

    def attach(
        self,
        events: object,
        room_id: str | None = None,
        personas: Callable[[], list[str]] | None = None,
    ) -> None:
        """Follow a room's events; ``personas`` says who is in it (who hears people)."""
        if personas is not None and room_id is not None:
            self._listeners[room_id] = personas
        events.subscribe(self.on_event)  # type: ignore[attr-defined]

    def someone_speaks(self) -> None:
        """Someone is speaking in a voice room: the conversation is live, so the model is
        not taken for consolidation now (an in-flight pass gives it back)."""
        self._last_activity = time.monotonic()
        if self._inflight is not None:
            self._inflight.cancel()

    def on_event(self, event: RoomEvent) -> None:
        if isinstance(event, MessageTaken):  # a turn is starting (a held voice turn too,
            self._last_activity = time.monotonic()  # whose arrival is told later)
            if self._inflight is not None:
                self._inflight.cancel()
            return
        if isinstance(event, MessageReceived):
            self._last_activity = time.monotonic()
            author = event.message.author
            self._visibility[event.room_id] = event.visibility
            if author.kind == ParticipantKind.PERSON:
                self._last_human[event.room_id] = (author.id, author.name, event.message.text)
                self._people.setdefault(event.room_id, {})[author.name.lower()] = author.id
                if not EXPLICIT_REQUEST.search(event.message.text):  # the room wrote those
                    listeners = self._listeners.get(event.room_id)
                    self.queue.append(
                        _Item(
                            "said",
                            "",
                            event.room_id,
                            event.message.text,
                            "",
                            {},
                            visibility=event.visibility,
                            author=author.id,
                            author_name=author.name,
                            listeners=tuple(listeners()) if listeners else (),
                        )
                    )
                    self._wake.set()
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
                visibility=self._visibility.get(event.room_id, "public"),
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
                self.consolidate_said()
                if not self.queue:
                    break
                if self.busy or self.backend is None:
                    self.consolidate_reduced()
                    if self.queue:  # turns wait for a quiet moment
                        await anyio.sleep(max(0.05, self.quiet_s / 2))
                    continue
                await self.consolidate_full_once()

    async def drain(self) -> int:
        """Consolidate what is queued now, before a short-lived process exits: people's
        words and think-blocks (no model calls)."""
        return self.consolidate_said() + self.consolidate_reduced()

    def consolidate_said(self) -> int:
        """People's messages: deterministic extraction, written at once."""
        said = [i for i in self.queue if i.kind == "said"]
        for item in said:
            self.queue.remove(item)
            self._remember_said(item)
            self.stats.said += 1
        return len(said)

    def consolidate_reduced(self) -> int:
        """Busy-room work: heuristics over think-blocks only; turns stay queued."""
        done = self.consolidate_said()
        for item in [i for i in self.queue if i.kind == "think"]:
            self.queue.remove(item)
            self._reduce(item)
            done += 1
        return done

    def _remember_said(self, item: _Item) -> None:
        found = extract(item.text)
        if not found or item.author is None:
            return
        for persona_id in item.listeners:
            for fact in found:
                self._write_fact(persona_id, item, fact)

    def _write_fact(self, persona_id: str, item: _Item, fact: Extracted) -> None:
        entry = JournalEntry(
            persona=persona_id,
            host=item.room_id.split(":", 1)[0] if ":" in item.room_id else None,
            room=item.room_id,
            visibility=item.visibility,  # type: ignore[arg-type]
            told_by=item.author,
            about=(item.author,),
            partners=(item.author,),
            kind=fact.kind,
            salience=fact.salience,
            commitments=(fact.text,) if fact.kind == "commitment" else (),
            text=f"{item.author_name} said: {fact.text}",
        )
        old = self._corrected(persona_id, item, fact) if fact.kind == "correction" else []
        written = self.memory.consider(entry)
        if written is None:
            return
        self.stats.written += 1
        for old_id in old:
            if self.memory.supersede(persona_id, old_id, written.id):
                self.stats.superseded += 1

    def _corrected(self, persona_id: str, item: _Item, fact: Extracted) -> list[str]:
        """Earlier entries of the same teller this correction replaces."""
        assert item.author is not None
        return self.memory.corrected_by(
            persona_id,
            teller=item.author,
            room=item.room_id,
            visibility=item.visibility,
            text=fact.text,
            replaces=fact.replaces,
        )

    def _reduce(self, item: _Item) -> None:
        """Heuristics only (no model): a think-block becomes a low-salience entry, one with
        a commitment a salient one; a turn is left to the full pass."""
        if item.kind == "think":
            commitment = bool(_COMMITMENT.search(item.text))
            entry = JournalEntry(
                persona=item.persona_id,
                room=item.room_id,
                visibility=item.visibility,  # type: ignore[arg-type]
                partners=tuple(item.partners.values()),
                salience=0.7 if commitment else 0.4,
                summary=item.context[:300],
                commitments=(item.text[:200],) if commitment else (),
                kind="commitment" if commitment else "note",
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
        if item.kind == "said":
            self.consolidate_said()
            return True
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
                result = await complete_structured(self.backend, request, Consolidation, EMPTY)
            except BackendPreempted:  # a turn took the model: this item waits its turn
                self.stats.cancelled += 1
                return False
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
        # only clean, self-contained sentences: a small model sometimes lists bare names
        # or numbers as "facts" (the summary then holds the real content)
        facts = [f.strip() for f in c.facts if self_contained(f)]
        commitments = [x.strip() for x in c.commitments if self_contained(x)]
        # Facts or commitments when there are some; else a salient summary on its own (a
        # small model often puts the one thing worth keeping there). Nothing salient and
        # nothing extracted: nothing is written (chatter would outrank real facts).
        text = "\n".join(f"- {f}" for f in facts or commitments)
        summary = c.summary.strip()
        if not text and self_contained(summary) and c.salience >= self.memory.policy.min_salience:
            text = summary  # a bare name or a stray comma as "summary" is not kept either
        if text:
            entry = JournalEntry(
                persona=item.persona_id,
                room=item.room_id,
                visibility=item.visibility,  # type: ignore[arg-type]
                partners=partners or tuple(item.partners.values()),
                topics=tuple(c.topics),
                emotions=tuple(c.emotions),
                salience=c.salience,
                commitments=tuple(commitments),
                kind="commitment" if commitments and not facts else "note",
                summary=c.summary or item.context[:300],
                text=text,
            )
            if self.memory.consider(entry):
                self.stats.written += 1
        if item.visibility != "public":
            return  # notes about people from a private room would reach every prompt
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
