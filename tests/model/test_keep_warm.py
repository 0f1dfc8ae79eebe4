"""A voice room's warm slots on the real embedded model: a persona answering by name and
through the gate composes the same stable prefix, and ``keep_warm`` brings an idle
persona's slot up to date with what the others said, so its next turn evaluates only its
own new message (token counts: the same on every CPU)."""

from __future__ import annotations

import pytest

from continuum.events import ReplyPosted
from continuum.room import Room, RoomPolicy
from tests.model.test_shared_cognition_model import say

pytestmark = [pytest.mark.anyio, pytest.mark.model]


def last_reply(room: Room, persona_id: str) -> ReplyPosted:
    return [e for e in room.events.of_type(ReplyPosted) if e.persona_id == persona_id][-1]


async def test_keep_warm_leaves_only_the_new_message_to_evaluate(backend, six_personas):
    maya, juno = (next(p for p in six_personas if p.id == i) for i in ("maya", "juno"))
    policy = RoomPolicy(reply_max_tokens=24, stream_deltas=False, deliberation="gate")
    cold = Room("warm-a", [maya, juno], backend, policy=policy)
    warm = Room("warm-b", [maya, juno], backend, policy=policy.model_copy(
        update={"keep_warm": True}))  # fmt: skip
    for room in (cold, warm):
        await room.handle(say("Maya, how do I profile a slow build?", 1, ("maya",)))
        await room.handle(say("Juno, is the password store safe?", 2, ("juno",)))
        if room is warm:
            assert await room.keep_warm(skip={"juno"}) == 1  # Maya's slot, not Juno's
        await room.handle(say("Maya, and the cache?", 3, ("maya",)))
    stale = last_reply(cold, "maya")
    kept = last_reply(warm, "maya")
    # kept warm: only the new message's turn is evaluated ("Sam: Maya, and the cache?"
    # and the generation prompt, ~16 tokens); left stale, Juno's exchange too (its length
    # depends on what Juno said)
    assert kept.metrics.evaluated_tokens <= 24, kept.metrics
    assert stale.metrics.evaluated_tokens >= kept.metrics.evaluated_tokens + 8, stale.metrics


async def test_answering_by_name_and_through_the_gate_share_one_prefix(backend, six_personas):
    maya, juno = (next(p for p in six_personas if p.id == i) for i in ("maya", "juno"))
    policy = RoomPolicy(reply_max_tokens=24, stream_deltas=False, deliberation="gate")
    room = Room("warm-c", [maya, juno], backend, policy=policy)
    await room.handle(say("Maya, how do I profile a slow build?", 1, ("maya",)))
    by_name = last_reply(room, "maya")
    # no name: the gate picks Maya for a performance question; her prompt extends the
    # one she answered by name (the lever menu is in both)
    await room.handle(say("Which profiler shows where the latency of a build goes?", 2))
    replies = [e for e in room.events.of_type(ReplyPosted) if e.persona_id == "maya"]
    if len(replies) < 2:
        pytest.fail(f"the gate did not pick Maya: {room.events.recent[-3:]}")
    gated = replies[-1]
    assert gated.metrics.reused_tokens >= by_name.metrics.prompt_tokens - 2
