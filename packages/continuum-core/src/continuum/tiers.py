"""Prompt tiers: how stable a piece of a prompt is from one turn to the next."""

from __future__ import annotations

from enum import IntEnum


class Tier(IntEnum):
    """Regions of a prompt, always rendered in this order.

    INVARIANT: identity, style, rules, stable guidance — the same for every turn.
    SEMI_STABLE: profile snapshot, older history — changes rarely and in whole blocks.
    VOLATILE: recent history, retrieval, the new message — changes every turn.

    Mutable state never sits in a stable tier: a memory edit must not bust the prefix.
    """

    INVARIANT = 0
    SEMI_STABLE = 1
    VOLATILE = 2
