"""SlotPool: which persona's KV lives in which sequence of a multi-sequence context.

Each (persona, room, adapter set) gets a live sequence and keeps the tokens it holds, so
a turn only evaluates what follows the longest common prefix. When more slots are active
than live sequences, the least recently used one is hibernated — its sequence state
copied out with ``llama_state_seq_get_data`` (milliseconds, not the seconds of a
whole-context save) — and restored into a free sequence when it speaks again.

A slot that starts cold (a persona entering a new room) does not re-evaluate what another
slot already holds: the slot with the same adapter set sharing the longest token prefix
with the new prompt (live or hibernated) donates that prefix — the persona's invariant
identity, style and guidance — copied sequence to sequence and trimmed to the shared part.
KV for the same tokens at the same positions under the same adapters is the same KV.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from continuum.backends.base import SlotKey


class SequenceStore(Protocol):
    """The context operations the pool needs (implemented on a llama.cpp context)."""

    def save(self, seq_id: int) -> bytes: ...
    def restore(self, seq_id: int, state: bytes) -> bool: ...
    def clear(self, seq_id: int) -> None: ...
    def copy(self, src: int, dst: int, n_tokens: int) -> bool: ...
    def trim(self, seq_id: int, n_tokens: int) -> None: ...


@dataclass
class Slot:
    seq_id: int
    key: SlotKey
    tokens: list[int] = field(default_factory=list)
    last_used: int = 0


@dataclass
class _Hibernated:
    tokens: list[int]
    state: bytes
    last_used: int


@dataclass
class SlotStats:
    hibernations: int = 0
    restores: int = 0
    drops: int = 0  # hibernated states discarded over budget (the next turn runs cold)
    shared: int = 0  # cold slots that started from another slot's prefix
    shared_tokens: int = 0  # tokens they did not have to evaluate


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n < 64:
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if len(diff) else n


class SlotPool:
    def __init__(
        self,
        store: SequenceStore,
        n_live: int,
        hibernate: bool = True,
        hibernate_budget_bytes: int = 2 << 30,
        share_prefixes: bool = True,
        min_shared_tokens: int = 32,
    ) -> None:
        if n_live < 1:
            raise ValueError("a slot pool needs at least one live sequence")
        self._store = store
        self.n_live = n_live
        self.hibernate_enabled = hibernate
        self.hibernate_budget_bytes = hibernate_budget_bytes
        self.share_prefixes = share_prefixes
        self.min_shared_tokens = min_shared_tokens
        self._live: dict[SlotKey, Slot] = {}
        self._free = list(range(n_live - 1, -1, -1))
        self._hibernated: dict[SlotKey, _Hibernated] = {}
        self._clock = itertools.count(1)
        self.stats = SlotStats()

    def acquire(self, key: SlotKey, tokens: Sequence[int] | None = None) -> tuple[Slot, bool]:
        """The live slot for ``key`` (evicting the LRU one if needed); True if restored.
        A cold slot starts from the best donor's shared prefix of ``tokens``."""
        tick = next(self._clock)
        slot = self._live.get(key)
        if slot is not None:
            slot.last_used = tick
            return slot, False
        if not self._free:
            self._evict(min(self._live.values(), key=lambda s: s.last_used))
        seq_id = self._free.pop()
        slot = Slot(seq_id=seq_id, key=key, last_used=tick)
        self._live[key] = slot
        restored = False
        saved = self._hibernated.pop(key, None)
        if saved is not None and self._store.restore(seq_id, saved.state):
            slot.tokens = saved.tokens
            restored = True
            self.stats.restores += 1
        elif tokens is not None and self.share_prefixes:
            self._share_prefix(slot, tokens)
        return slot, restored

    def _share_prefix(self, slot: Slot, tokens: Sequence[int]) -> None:
        """Start a cold slot from the longest prefix another slot (same adapters) holds."""
        best_n, donor_live, donor_saved = 0, None, None
        for other in self._live.values():
            if other is slot or other.key.adapters != slot.key.adapters:
                continue
            n = common_prefix_len(other.tokens, tokens)
            if n > best_n:
                best_n, donor_live, donor_saved = n, other, None
        for key, saved in self._hibernated.items():
            if key.adapters != slot.key.adapters:
                continue
            n = common_prefix_len(saved.tokens, tokens)
            if n > best_n:
                best_n, donor_live, donor_saved = n, None, saved
        best_n = min(best_n, len(tokens) - 1)  # the last token is always evaluated
        if best_n < self.min_shared_tokens:
            return
        if donor_live is not None:
            ok = self._store.copy(donor_live.seq_id, slot.seq_id, best_n)
        else:
            assert donor_saved is not None
            ok = self._store.restore(slot.seq_id, donor_saved.state)
            if ok:
                self._store.trim(slot.seq_id, best_n)
        if not ok:
            self._store.clear(slot.seq_id)
            return
        slot.tokens = list(tokens[:best_n])
        self.stats.shared += 1
        self.stats.shared_tokens += best_n

    def _evict(self, slot: Slot) -> None:
        if self.hibernate_enabled and slot.tokens:
            self._hibernated[slot.key] = _Hibernated(
                tokens=slot.tokens, state=self._store.save(slot.seq_id), last_used=slot.last_used
            )
            self.stats.hibernations += 1
            self._enforce_budget()
        self._store.clear(slot.seq_id)
        del self._live[slot.key]
        self._free.append(slot.seq_id)

    def _enforce_budget(self) -> None:
        while self._hibernated and self.hibernated_bytes > self.hibernate_budget_bytes:
            oldest = min(self._hibernated, key=lambda k: self._hibernated[k].last_used)
            del self._hibernated[oldest]
            self.stats.drops += 1

    def peek(self, key: SlotKey) -> Slot | None:
        """The live slot for ``key`` without touching its recency."""
        return self._live.get(key)

    def forget(self, key: SlotKey) -> None:
        """Drop a slot's KV (e.g. its persona changed): the next turn runs cold."""
        self._hibernated.pop(key, None)
        slot = self._live.pop(key, None)
        if slot is not None:
            self._store.clear(slot.seq_id)
            self._free.append(slot.seq_id)

    def state_of(self, key: SlotKey) -> bytes | None:
        """The KV state bytes a slot holds (live: read from its sequence; hibernated: as
        stored), or None if the pool has no such slot. What a restore must give back."""
        slot = self._live.get(key)
        if slot is not None:
            return self._store.save(slot.seq_id)
        saved = self._hibernated.get(key)
        return saved.state if saved is not None else None

    @property
    def hibernated_bytes(self) -> int:
        return sum(len(h.state) for h in self._hibernated.values())

    def live_keys(self) -> list[SlotKey]:
        return list(self._live)

    def hibernated_keys(self) -> list[SlotKey]:
        return list(self._hibernated)
