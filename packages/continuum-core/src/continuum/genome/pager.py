"""AdapterPager: which LoRA adapters are resident, under a memory budget.

An adapter is loaded on first use (single flight: one load per adapter at a time) and kept
while it is used; when a load would take the resident adapters over the budget, the least
recently used ones that are neither pinned nor needed by the request being served are
evicted — down to a target below the budget, so the next few loads do not each evict. An
adapter that cannot fit even then is refused. Every decision (hit, load, evict, refuse) is
an event with its timing, and ``resident_bytes`` never exceeds ``budget_bytes``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from continuum.backends.base import AdapterUse
from continuum.errors import ContinuumError


class GenomeError(ContinuumError):
    """An adapter cannot be used: missing, for another base model, or over the budget."""


@dataclass(frozen=True)
class PagerEvent:
    kind: Literal["hit", "load", "evict", "refuse"]
    adapter: str
    ms: float
    size: int
    resident_bytes: int
    at: float


@dataclass
class _Resident:
    handle: Any
    size: int
    pinned: bool


class AdapterPager:
    def __init__(
        self,
        budget_bytes: int,
        load: Callable[[AdapterUse], Any],
        free: Callable[[Any], None],
        target: float = 0.8,
        on_event: Callable[[PagerEvent], None] | None = None,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.target = target
        self._load = load
        self._free = free
        self.on_event = on_event
        self.events: list[PagerEvent] = []
        self._resident: OrderedDict[str, _Resident] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Event] = {}

    @property
    def resident_bytes(self) -> int:
        return sum(r.size for r in self._resident.values())

    def resident(self) -> list[str]:
        return list(self._resident)

    def _event(self, kind: str, adapter: str, started: float, size: int) -> None:
        event = PagerEvent(
            kind=kind,  # type: ignore[arg-type]
            adapter=adapter,
            ms=(time.perf_counter() - started) * 1000,
            size=size,
            resident_bytes=self.resident_bytes,
            at=time.time(),
        )
        self.events.append(event)
        del self.events[:-4096]
        if self.on_event is not None:
            self.on_event(event)

    def acquire(self, uses: Sequence[AdapterUse]) -> list[Any]:
        """Handles for ``uses`` (loading and evicting as needed), in order."""
        keep = {u.id for u in uses}
        return [self._one(use, keep) for use in uses]

    def _one(self, use: AdapterUse, keep: set[str]) -> Any:
        started = time.perf_counter()
        while True:
            with self._lock:
                resident = self._resident.get(use.id)
                if resident is not None:
                    self._resident.move_to_end(use.id)
                    self._event("hit", use.id, started, resident.size)
                    return resident.handle
                waiting = self._loading.get(use.id)
                if waiting is None:  # this caller loads it; others wait for it
                    self._loading[use.id] = threading.Event()
                    break
            waiting.wait()
        try:
            if not use.path or not os.path.isfile(use.path):
                raise GenomeError(f"adapter {use.id!r}: no file at {use.path!r}")
            size = os.path.getsize(use.path)
            with self._lock:
                self._make_room(size, keep, use.id, started)
            handle = self._load(use)
            with self._lock:
                self._resident[use.id] = _Resident(handle, size, use.pinned)
                self._event("load", use.id, started, size)
            return handle
        finally:
            with self._lock:
                self._loading.pop(use.id).set()

    def _make_room(self, size: int, keep: set[str], adapter: str, started: float) -> None:
        if self.resident_bytes + size <= self.budget_bytes:
            return
        goal = min(self.budget_bytes, int(self.target * self.budget_bytes)) - size
        for victim in list(self._resident):
            if self.resident_bytes <= goal:
                break
            r = self._resident[victim]
            if r.pinned or victim in keep:
                continue
            del self._resident[victim]
            self._free(r.handle)
            self._event("evict", victim, time.perf_counter(), r.size)
        if self.resident_bytes + size > self.budget_bytes:
            self._event("refuse", adapter, started, size)
            raise GenomeError(
                f"adapter {adapter!r} ({size} bytes) does not fit the genome budget "
                f"({self.budget_bytes} bytes; {self.resident_bytes} held by pinned or active ones)"
            )

    def unload(self, adapter_id: str) -> bool:
        with self._lock:
            r = self._resident.pop(adapter_id, None)
        if r is None:
            return False
        self._free(r.handle)
        return True

    def clear(self) -> None:
        with self._lock:
            for r in self._resident.values():
                self._free(r.handle)
            self._resident.clear()
