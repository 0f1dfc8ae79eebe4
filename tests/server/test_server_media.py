"""The direct path on llama-server: started with ``--mmproj`` (the tiny random-weight
Qwen2-Audio / Idefics3 projectors over the default model), it declares its modalities in
``/props``, and a room sends it the voice message or image itself — no speech-to-text, no
description — with the server's own media marker; the next warm turn is still reused."""

from __future__ import annotations

import pytest

from continuum.backends.server import ServerBackend
from continuum.envelope import AudioPart, ImagePart, TextPart
from tests.media.conftest import espeak_wav
from tests.media.test_direct_path import media_turns, png, turn
from tests.media.tiny_projectors import audio_projector, vision_projector
from tests.server.harness import LlamaServer

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def run_server_direct(model_path, projector, part, kind: str) -> None:
    server = LlamaServer(model_path, slots=2, extra=("--mmproj", str(projector))).start()
    try:
        backend = ServerBackend([server.url])
        assert backend.capabilities.source == "server"  # read from /props
        room, counting, first, media_turn = await media_turns(backend, part, kind)
        assert counting.calls == 0
        # the server counted the media's positions in the prompt, and reused the prefix
        assert media_turn.prompt_tokens > first.prompt_tokens + (100 if kind == "audio" else 2)
        assert media_turn.reused_tokens >= first.prompt_tokens - 8
        after = await turn(room, TextPart(text="And what now?"))
        assert after.reused_tokens >= media_turn.prompt_tokens - 8, after
        assert after.evaluated_tokens <= 40, after
        await backend.aclose()
    finally:
        server.stop()


async def test_a_voice_message_reaches_llama_server_directly(server_binary, model_path, tmp_path):
    wav = espeak_wav("Hello Maya, is the cache warm?", tmp_path / "q.wav")
    await run_server_direct(model_path, audio_projector(), AudioPart(data=wav), "audio")


async def test_an_image_reaches_llama_server_directly(server_binary, model_path):
    await run_server_direct(model_path, vision_projector(), ImagePart(data=png()), "image")
