"""CompositionCache: memoised prompt composition, keyed by what the prompt depends on.

Key: (persona, room, recipe, history-tail message ids). Entries live 5 minutes and are
invalidated by events on their inputs (persona edited, profile or memory changed, room
history edited). Hit/miss counters show whether consecutive turns reuse compositions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from continuum.compose import ComposedPrompt
from continuum.envelope import RoomMessage
from continuum.events import (
    EventLog,
    HistoryEdited,
    MemoryWritten,
    PersonaUpdated,
    ProfileUpdated,
    RoomEvent,
)

CacheKey = tuple[str, str, str, tuple[str, ...]]


def history_tail_ids(
    history: Sequence[RoomMessage], new_message: RoomMessage, tail: int = 4
) -> tuple[str, ...]:
    """Identify a history by its length, its last ids and the new message (append-only)."""
    return (str(len(history)), *(m.id for m in history[-tail:]), new_message.id)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    expirations: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CompositionCache:
    def __init__(
        self,
        ttl_s: float = 300.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[CacheKey, tuple[float, ComposedPrompt]] = {}
        self.stats = CacheStats()

    @staticmethod
    def key(persona_id: str, room_id: str, recipe_id: str, tail_ids: tuple[str, ...]) -> CacheKey:
        return (persona_id, room_id, recipe_id, tail_ids)

    def get_or_compose(
        self, key: CacheKey, compose: Callable[[], ComposedPrompt]
    ) -> ComposedPrompt:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            if now - entry[0] <= self.ttl_s:
                self.stats.hits += 1
                return entry[1]
            del self._entries[key]
            self.stats.expirations += 1
        self.stats.misses += 1
        composed = compose()
        if len(self._entries) >= self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]
        self._entries[key] = (now, composed)
        return composed

    def invalidate(self, *, persona_id: str | None = None, room_id: str | None = None) -> int:
        """Drop entries touching a persona and/or a room (both None: everything)."""
        doomed = [
            k
            for k in self._entries
            if (persona_id is None or k[0] == persona_id) and (room_id is None or k[1] == room_id)
        ]
        for k in doomed:
            del self._entries[k]
        self.stats.invalidations += len(doomed)
        return len(doomed)

    def watch(self, events: EventLog, room_id: str) -> Callable[[], None]:
        """Invalidate on the events that change a composition's inputs."""

        def on_event(event: RoomEvent) -> None:
            if isinstance(event, PersonaUpdated | ProfileUpdated | MemoryWritten):
                self.invalidate(persona_id=event.persona_id)
            elif isinstance(event, HistoryEdited):
                self.invalidate(room_id=room_id)

        return events.subscribe(on_event)

    def __len__(self) -> int:
        return len(self._entries)
