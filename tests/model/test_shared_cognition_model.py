"""Shared cognition on the real embedded model (SmolLM2-135M): one grammar-constrained
analysis per message, silence for personas whose specialty does not fit, lead ordering,
the cascade bound, and KV reuse from the planning pass into the render."""

from __future__ import annotations

import pytest

from continuum.backends.base import InferenceMetrics
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.events import (
    AnalysisPosted,
    LeverPulled,
    PersonaSilent,
    ReplyPosted,
    TurnStarted,
)
from continuum.room import Room, RoomPolicy

pytestmark = [pytest.mark.anyio, pytest.mark.model]

SECURITY = "Is it safe to store user passwords in plain text if the database has a firewall?"


def say(text: str, i: int, mentions: tuple[str, ...] = ()) -> Envelope:
    return Envelope(
        id=f"m{i}",
        host="test",
        room_id="r",
        author=Participant(id="sam", name="Sam"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="test", channel="r"),
        mentions=mentions,
    )


async def test_one_analysis_silence_for_the_unrelated_and_a_cheap_render(backend, six_personas):
    policy = RoomPolicy(reply_max_tokens=32, stream_deltas=False)
    room = Room("sc-real", six_personas, backend, policy=policy)
    replies = await room.handle(say(SECURITY, 1))

    analyses = room.events.of_type(AnalysisPosted)
    assert len(analyses) == 1 and analyses[0].metrics is not None
    assert analyses[0].metrics.generated_tokens <= policy.analysis_max_tokens
    if analyses[0].analysis.parsed:  # the grammar held: the JSON has the shape we asked for
        assert analyses[0].analysis.key_concepts

    silent = {e.persona_id: e.reason for e in room.events.of_type(PersonaSilent)}
    # the marine biologist and the chess coach have nothing to add to password storage
    for persona_id in ("rhea", "tomas"):
        assert "below the relevance bar" in silent[persona_id], silent
    planned = {e.persona_id for e in room.events.of_type(TurnStarted) if e.phase == "planning"}
    assert "juno" in planned and not planned & {"rhea", "tomas"}
    invited = {e.args.get("persona") for e in room.events.of_type(LeverPulled)}
    assert {r.persona_id for r in replies} <= planned | invited
    assert replies, "a person's message gets at least the quorum's voice"

    # the render after a planning pass re-evaluates only the instruction tail
    posted = {e.persona_id: e.metrics for e in room.events.of_type(ReplyPosted)}
    lead = replies[0].persona_id
    if lead in planned:
        m: InferenceMetrics = posted[lead]
        assert m.evaluated_tokens < 80 < m.prompt_tokens, m


async def test_the_analyst_slot_stays_warm_and_mentions_lead(backend, six_personas):
    # addressed = "shared": the mention leads shared cognition (the default answers Otto
    # directly, without an analysis)
    policy = RoomPolicy(reply_max_tokens=24, max_persona_turns_per_message=2, addressed="shared")
    room = Room("sc-lead", six_personas, backend, policy=policy)
    await room.handle(say("How did people keep time before mechanical clocks?", 1))
    replies = await room.handle(say(SECURITY, 2, mentions=("otto",)))

    first, second = room.events.of_type(AnalysisPosted)
    assert second.metrics is not None and first.metrics is not None
    # the analyst's instructions and roster are its invariant prefix: reused on message 2
    assert second.metrics.reused_tokens > 200, second.metrics
    # the cascade bound holds whatever levers were pulled
    assert 1 <= len(replies) <= 2
    ceded = [e for e in room.events.of_type(LeverPulled) if e.persona_id == "otto"]
    if not ceded:  # unless Otto handed the floor on, the persona addressed speaks first
        assert replies[0].persona_id == "otto"
