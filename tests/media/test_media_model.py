"""On the real model: a voice message and an image keep the stable prefix reused."""

from __future__ import annotations

import pytest

from continuum.envelope import AudioPart, ImagePart, TextPart
from continuum.media import MediaBridge
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from tests.media.conftest import espeak_wav
from tests.media.test_media_bridge import PNG, envelope

pytestmark = [pytest.mark.anyio, pytest.mark.model]
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.", style="Brief.")


async def test_media_turns_evaluate_only_the_volatile_suffix(backend, tmp_path, transcriber):
    room = Room(
        "media-prefix",
        [MAYA],
        backend,
        bridge=MediaBridge(transcriber),
        policy=RoomPolicy(cognition="direct", reply_max_tokens=12),
    )
    wav = espeak_wav("Can you profile the cache for me later today?", tmp_path / "v.wav")
    messages = [
        envelope(TextPart(text="Hi Maya, quick question about latency."), i=0),
        envelope(AudioPart(data=wav), i=1),
        envelope(TextPart(text="And this chart?"), ImagePart(data=PNG), i=2),
    ]
    turns = []
    for env in messages:
        bridged = await room.bridge.render(env.parts, backend.capabilities)
        message = room.admit(env, bridged)
        room.history.append(message)
        composed = room.compose(MAYA)
        stable = backend.count_tokens(composed.prompt[: composed.stable_len])
        volatile = backend.count_tokens(composed.prompt) - stable
        result = await room.persona_turn(MAYA, env)
        turns.append((message.media, volatile, result.metrics))
    assert [media for media, *_ in turns] == [None, "stt", "told"]
    for media, volatile, m in turns[1:]:
        assert m.evaluated_tokens <= volatile + 16, (media, m, volatile)
        assert m.reused_tokens > 0
