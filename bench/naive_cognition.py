"""The naive baseline of bench/shared_cognition: a room without shared cognition, where
every responder thinks the message through on its own (a hidden think-block), then
replies on the same KV. Kept here, not in the engine: nothing but the benchmark runs it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from continuum.backends.base import CompletionRequest, GenerationSettings
from continuum.cognition.shared import THINK_INSTRUCTION
from continuum.envelope import Envelope, PersonaReply, RoomMessage
from continuum.errors import ContinuumError
from continuum.persona import Persona
from continuum.room import Room

log = logging.getLogger("bench.naive")


async def naive(
    room: Room,
    envelope: Envelope,
    message: RoomMessage,
    responders: list[Persona],
    think_tokens: int | None = None,
    on_reply: Callable[[PersonaReply], Awaitable[None]] | None = None,
) -> list[PersonaReply]:
    """Each responder thinks (up to the analysis budget; with ``think_tokens`` exactly
    that long — the benchmark passes what the shared analysis took), then replies within
    the reply budget on the same KV."""
    policy = room.policy
    upto = room.history.index(message)
    budget = think_tokens or policy.analysis_max_tokens
    replies = []
    for persona in responders:
        build_on = tuple(m for m in room.history[upto + 1 :] if m.author.id != persona.id)
        composed = room.compose(
            persona,
            upto,
            room.shared_recipe,
            build_on=build_on,
            instruction=THINK_INSTRUCTION.format(name=persona.name),
        )
        # think inside <think> (hidden from the others), then reply on the same KV
        try:
            thought = await room.backend.complete(
                CompletionRequest(
                    prompt=composed.prompt + "<think>\n",
                    slot=room.slot_for(persona),
                    settings=GenerationSettings.for_persona(
                        persona,
                        max_tokens=budget,
                        min_tokens=budget if think_tokens else 0,
                        stop=("</think>",),
                    ),
                )
            )
            thinking = "<think>\n" + thought.text.strip() + "\n</think>\n"
        except ContinuumError as exc:
            log.warning("%s could not think: %s", persona.id, exc)
            thinking = ""
        reply = await room.render_turn(
            persona,
            envelope,
            composed.model_copy(update={"prompt": composed.prompt + thinking}),
            max_tokens=policy.reply_max_tokens,
            topics=[],
            raw_prefix=thinking,
        )
        replies.append(reply)
        if on_reply is not None:
            await on_reply(reply)
    return replies
