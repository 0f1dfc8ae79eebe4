"""A bounded set of ids a host has handled already: platforms redeliver (Slack retries
an event, a Discord RESUME replays, a backfill overlaps what arrived live)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class SeenIds:
    def __init__(self, size: int = 8192) -> None:
        self._items: OrderedDict[Hashable, None] = OrderedDict()
        self.size = size

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def add(self, key: Hashable) -> bool:
        """True if ``key`` is new (it is remembered; the oldest goes past ``size``)."""
        if key in self._items:
            return False
        self._items[key] = None
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return True
