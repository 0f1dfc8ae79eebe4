"""Persona state: an inbox serviced by priority, energy and mood, trust and reputation.

All of it is plain pydantic data, persisted per persona as JSON (crash-safe writes), so a
persona that was tired or had a queue before a restart still has them after it. Time
enters only through the ``now`` arguments (seconds since the epoch), so the rules are
deterministic and testable.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.envelope import ParticipantKind
from continuum.memory.atomic import atomic_write_bytes, private_dir
from continuum.memory.journal import check_persona_id

log = logging.getLogger("continuum.cognition.state")

Modality = Literal["text", "voice", "image"]

# Base priority by who sent the item; people first, other personas and bots well below.
SENDER_WEIGHT: dict[str, float] = {
    ParticipantKind.PERSON.value: 1.0,
    ParticipantKind.SYSTEM.value: 0.6,
    ParticipantKind.PERSONA.value: 0.3,
    ParticipantKind.BOT.value: 0.1,
}
MENTION_BONUS = 1.0
VOICE_BONUS = 1.2  # voice first: someone is waiting on the line
RECENCY_HALF_LIFE_S = 120.0  # a fresh item is worth up to +0.5 more than a stale one
AGING_PER_MINUTE = 0.25  # a queued item climbs so it is never starved


class InboxItem(BaseModel):
    """Something a persona has been asked to consider."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    room_id: str
    sender_kind: ParticipantKind
    mentioned: bool = False
    modality: Modality = "text"
    received_at: float

    def priority(self, now: float) -> float:
        age = max(0.0, now - self.received_at)
        base = SENDER_WEIGHT[self.sender_kind.value]
        base += MENTION_BONUS if self.mentioned else 0.0
        base += VOICE_BONUS if self.modality == "voice" else 0.0
        recency = 0.5 * 0.5 ** (age / RECENCY_HALF_LIFE_S)
        aging = AGING_PER_MINUTE * age / 60.0
        return base + recency + aging


class Inbox(BaseModel):
    """A bounded priority inbox. Voice items are never dropped; when the inbox is full the
    lowest-priority non-voice item goes (and is reported)."""

    capacity: int = Field(default=16, ge=1)
    items: list[InboxItem] = Field(default_factory=list)

    def push(self, item: InboxItem, now: float) -> InboxItem | None:
        """Queue ``item``; returns the item dropped to make room, if any. A message already
        queued (replayed after a crash) is not queued twice."""
        if any(i.message_id == item.message_id for i in self.items):
            return None
        self.items.append(item)
        if len(self.items) <= self.capacity:
            return None
        droppable = [i for i in self.items if i.modality != "voice"]
        if not droppable:
            return None  # all voice: the inbox grows rather than lose a voice item
        victim = min(droppable, key=lambda i: i.priority(now))
        self.items.remove(victim)
        return victim

    def take(self, message_id: str) -> InboxItem | None:
        for item in self.items:
            if item.message_id == message_id:
                self.items.remove(item)
                return item
        return None

    def ordered(self, now: float) -> list[InboxItem]:
        return sorted(self.items, key=lambda i: i.priority(now), reverse=True)

    def __len__(self) -> int:
        return len(self.items)


class Reputation(BaseModel):
    """Trust a persona has earned in a room: contributions, people's reactions, domains."""

    contributions: int = 0
    successful: int = 0  # contributions people reacted to positively
    positive_reactions: int = 0
    negative_reactions: int = 0
    # topic -> proficiency in [0, 1] (exponential average of reactions on that topic)
    proficiency: dict[str, float] = Field(default_factory=dict)

    @property
    def trust(self) -> float:
        """Laplace-smoothed share of positive reactions, 0.5 with no evidence."""
        return (self.positive_reactions + 1) / (
            self.positive_reactions + self.negative_reactions + 2
        )

    def domain_score(self, topics: list[str]) -> float:
        """Mean proficiency over the topics it has a record in (0.5 = no evidence)."""
        known = [self.proficiency[t] for t in (t.lower() for t in topics) if t in self.proficiency]
        return sum(known) / len(known) if known else 0.5

    def record_reaction(self, positive: bool, topics: list[str], alpha: float = 0.3) -> None:
        if positive:
            self.positive_reactions += 1
        else:
            self.negative_reactions += 1
        target = 1.0 if positive else 0.0
        for topic in {t.lower() for t in topics}:
            old = self.proficiency.get(topic, 0.5)
            self.proficiency[topic] = round(old + alpha * (target - old), 4)


class PersonaState(BaseModel):
    """A persona's working state: energy and mood that move with work and rest, its inbox,
    the topics of its recent contributions (for reactions), and its reputation."""

    persona_id: str
    energy: float = Field(default=1.0, ge=0.0, le=1.0)
    mood: float = Field(default=0.0, ge=-1.0, le=1.0)  # negative: stressed, positive: upbeat
    updated_at: float = Field(default_factory=time.time)
    last_spoke_at: dict[str, float] = Field(default_factory=dict)  # room -> time
    inbox: Inbox = Field(default_factory=Inbox)
    reputation: Reputation = Field(default_factory=Reputation)
    contribution_topics: dict[str, list[str]] = Field(default_factory=dict)  # message -> topics

    # energy: a 100-token reply costs ~0.08; a full recovery takes ~10 minutes of rest
    COST_PER_TOKEN: ClassVar[float] = 0.0008
    COST_PER_TURN: ClassVar[float] = 0.02
    RECOVERY_PER_S: ClassVar[float] = 1.0 / 600.0
    MOOD_RECOVERY_PER_S: ClassVar[float] = 1.0 / 900.0

    def rest_until(self, now: float) -> None:
        """Apply rest since the last update: energy climbs back, mood drifts to neutral."""
        dt = max(0.0, now - self.updated_at)
        self.energy = min(1.0, self.energy + dt * self.RECOVERY_PER_S)
        drift = dt * self.MOOD_RECOVERY_PER_S
        self.mood = max(0.0, self.mood - drift) if self.mood > 0 else min(0.0, self.mood + drift)
        self.updated_at = max(self.updated_at, now)

    def spend(self, tokens: int, now: float) -> None:
        self.rest_until(now)
        self.energy = max(0.0, self.energy - self.COST_PER_TURN - tokens * self.COST_PER_TOKEN)
        if len(self.inbox) > self.inbox.capacity // 2:  # busy: work under pressure sours mood
            self.mood = max(-1.0, self.mood - 0.05)

    def feel(self, delta: float) -> None:
        self.mood = max(-1.0, min(1.0, self.mood + delta))

    @property
    def tired(self) -> bool:
        return self.energy < 0.25

    @property
    def overwhelmed(self) -> bool:
        return len(self.inbox) >= max(2, (3 * self.inbox.capacity) // 4) or self.mood <= -0.6

    @property
    def mood_label(self) -> str:
        if self.mood <= -0.6:
            return "overwhelmed"
        if self.mood < -0.2:
            return "strained"
        if self.mood > 0.3:
            return "upbeat"
        return "steady"

    def engagement_bar(self) -> float:
        """How much signal this persona needs before it speaks: higher when tired/stressed."""
        bar = 0.0
        if self.energy < 0.5:
            bar += (0.5 - self.energy) * 0.8  # up to +0.4 when exhausted
        if self.mood < 0:
            bar += -self.mood * 0.2
        if self.overwhelmed:
            bar += 0.2
        return bar

    def how_i_feel(self) -> str:
        """What the persona says when asked, or when it declines."""
        if self.tired:
            return "I'm running low on energy and need a short rest before I take this on."
        if self.overwhelmed:
            return f"I'm behind on {len(self.inbox)} things, so I'll sit this one out."
        return f"I'm {self.mood_label}, energy {self.energy:.0%}."


class PersonaStateStore:
    """One JSON file per persona: ``<dir>/<persona>.json`` (crash-safe replace).

    A persona is one persona in every room: rooms sharing a store share one live
    ``PersonaState`` per persona (``load`` returns the same object), so energy spent in
    one room is missing in the next and nobody overwrites another room's state."""

    def __init__(
        self,
        directory: Path | str,
        min_interval_s: float = 1.0,
        max_item_age_s: float = 900.0,
    ) -> None:
        self.directory = private_dir(Path(directory))
        # Inbox items are work in flight. One left by a process that died mid-turn would
        # otherwise stay forever (a persona "behind on 12 things" sits answers out), so
        # on load an item goes if it is older than this or ``keep_item`` rejects it.
        self.max_item_age_s = max_item_age_s
        self.keep_item: Callable[[InboxItem], bool] | None = None
        self._live: dict[str, PersonaState] = {}
        # writes are crash-safe (fsync + rename) and so not free: a persona's state is
        # written at most once per interval; later changes wait for the next save or flush
        self.min_interval_s = min_interval_s
        self._written_at: dict[str, float] = {}
        self._dirty: set[str] = set()

    def path(self, persona_id: str) -> Path:
        return self.directory / f"{check_persona_id(persona_id)}.json"

    def load(self, persona_id: str) -> PersonaState:
        live = self._live.get(persona_id)
        if live is None:
            live = self._live[persona_id] = self._read(persona_id)
        return live

    def _read(self, persona_id: str) -> PersonaState:
        path = self.path(persona_id)
        if not path.exists():
            return PersonaState(persona_id=persona_id)
        try:
            state = PersonaState.model_validate_json(path.read_bytes())
            now = time.time()
            state.inbox.items = [
                item
                for item in state.inbox.items
                if now - item.received_at <= self.max_item_age_s
                and (self.keep_item is None or self.keep_item(item))
            ]
            return state
        except (ValidationError, ValueError) as exc:
            # State is recoverable (it regrows); keep the bad file for a human, start fresh.
            backup = path.with_suffix(".json.bad")
            path.replace(backup)
            log.warning("persona state %s was unreadable (%s); kept as %s", path, exc, backup)
            return PersonaState(persona_id=persona_id)

    def save(self, state: PersonaState, force: bool = False) -> None:
        """Persist ``state`` (now if ``force`` or the interval has passed, else soon)."""
        now = time.monotonic()
        last = self._written_at.get(state.persona_id, -1e9)
        if not force and now - last < self.min_interval_s:
            self._dirty.add(state.persona_id)
            self._live.setdefault(state.persona_id, state)
            return
        self._write(state)
        self._written_at[state.persona_id] = now

    def _write(self, state: PersonaState) -> None:
        self._dirty.discard(state.persona_id)
        data = json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True)
        atomic_write_bytes(self.path(state.persona_id), data.encode())

    def flush(self) -> None:
        """Write every state changed since its last write (at shutdown, or periodically)."""
        for persona_id in list(self._dirty):
            state = self._live.get(persona_id)
            if state is not None:
                self._write(state)
