"""A persona's voice as an adapter: an LLM-codec TTS (OuteTTS-shaped backbone + WavTokenizer
decoder, tiny random weights built with the gguf writer) whose voice LoRAs go through the
genome — registered, surviving a restart, paged in before the first audio of a voice turn
— and make measurably different audio for the same text."""

from __future__ import annotations

import time

import numpy as np
import pytest

from continuum.backends.base import AdapterUse
from continuum.errors import ContinuumError
from continuum.genome.registry import GenomeRegistry, resolve_persona
from continuum.persona import AdapterRef, Persona, VoiceSpec
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend
from continuum.voice.codec_tts import CodecTTS, voice_adapters
from continuum.voice.session import Utterance, VoiceSession
from tests.voice.tiny_codec_tts import make_backbone, make_decoder, make_voice_lora

pytestmark = pytest.mark.anyio
TEXT = "Hello there, my friend."


@pytest.fixture(scope="module")
def voice_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("codec")
    return {
        "backbone": make_backbone(d / "backbone.gguf"),
        "decoder": make_decoder(d / "decoder.gguf"),
        "alto": make_voice_lora(d / "alto.gguf", seed=3),
        "bass": make_voice_lora(d / "bass.gguf", seed=5),
    }


@pytest.fixture(scope="module")
def engine(voice_models):
    tts = CodecTTS(voice_models["backbone"], voice_models["decoder"], codes_per_word=16)
    yield tts
    tts.close()


def spectrum(audio: np.ndarray, n: int = 512) -> np.ndarray:
    """Mean log-magnitude spectrum (a crude voice print)."""
    frames = audio[: len(audio) // n * n].reshape(-1, n) * np.hanning(n)
    return np.log1p(np.abs(np.fft.rfft(frames, axis=1))).mean(axis=0)


def test_two_voice_loras_make_measurably_different_audio(engine, voice_models):
    def say(lora: str | None) -> tuple[np.ndarray, list[int]]:
        uses = () if lora is None else (AdapterUse(id=lora, path=str(voice_models[lora])),)
        audio, rate = engine.synthesize(TEXT, VoiceSpec(engine="codec"), uses)
        assert rate == 24_000 and audio.dtype == np.float32 and np.isfinite(audio).all()
        return audio, list(engine.last_codes)

    alto, alto_codes = say("alto")
    bass, bass_codes = say("bass")
    again, again_codes = say("alto")
    plain, _ = say(None)
    assert len(alto) == len(bass) > 24_000 // 2  # the words' codes, decoded at 24 kHz
    assert alto_codes == again_codes and np.array_equal(alto, again)  # a voice is stable
    assert alto_codes != bass_codes
    apart = float(np.abs(spectrum(alto) - spectrum(bass)).mean())
    same = float(np.abs(spectrum(alto) - spectrum(again)).mean())
    assert same == 0.0 and apart > 0.01, apart
    assert float(np.abs(spectrum(alto) - spectrum(plain)).mean()) > 0.01


async def test_a_voice_lora_is_paged_in_before_the_first_audio(engine, voice_models, tmp_path):
    # registered in the genome; a new registry (a restart) still finds it
    data = tmp_path / "data"
    GenomeRegistry(data, base_model=voice_models["backbone"]).add(
        "maya", "alto", voice_models["alto"], kind="voice", license="CC0"
    )
    maya = Persona(
        id="maya", name="Maya", identity="A performance engineer.",
        voice=VoiceSpec(engine="codec", adapter="alto"),
    )  # fmt: skip
    maya = resolve_persona(maya, GenomeRegistry(data, base_model=voice_models["backbone"]))
    [use] = voice_adapters(maya)
    assert use.id == "alto" and use.path and use.path.startswith(str(data))
    engine.backbone.adapters.clear()  # nothing resident: this turn must page it in
    room = Room(
        "v", [maya], ScriptedBackend(lambda req: "Sure. The cache is warm."),
        policy=RoomPolicy(cognition="direct"),
    )  # fmt: skip
    session = VoiceSession(room, maya, None, engine)
    played: list[float] = []

    async def play(samples, rate):
        played.append(time.time())

    now = time.monotonic()
    heard = Utterance(np.zeros(512, np.float32), "Is the cache warm?", now, now)
    metrics = await session.respond(heard, play)
    assert metrics.reply == "Sure. The cache is warm." and metrics.tts_calls == 2 and played
    loads = [e for e in engine.backbone.adapters.events if e.kind == "load" and e.adapter == "alto"]
    assert loads and loads[-1].at <= played[0]  # paged in before the first audio
    assert metrics.voice_adapter_ms is not None and metrics.tts_error is None
    hits = [e for e in engine.backbone.adapters.events if e.kind == "hit" and e.adapter == "alto"]
    assert len(hits) >= 2  # both pieces were spoken under it, without loading it again


def test_a_voice_naming_a_missing_adapter_is_a_clear_error():
    maya = Persona(
        id="maya", name="Maya", identity="x", voice=VoiceSpec(engine="codec", adapter="ghost"),
        adapters=(AdapterRef(id="skill", kind="skill", path="/x.gguf"),),
    )  # fmt: skip
    with pytest.raises(ContinuumError, match="not a voice adapter"):
        voice_adapters(maya)


def test_the_codec_engine_names_its_missing_models(monkeypatch):
    from continuum.plugins import tts_engine

    monkeypatch.delenv("CONTINUUM_CODEC_TTS_BACKBONE", raising=False)
    with pytest.raises(ContinuumError, match="CONTINUUM_CODEC_TTS_BACKBONE"):
        tts_engine("codec")


async def test_a_voice_adapter_for_the_tts_backbone_loads_through_a_runtime(voice_models, tmp_path):
    """Voice adapters are made for the TTS backbone, not the text model: a runtime (which
    checks skills against its text model) resolves the persona instead of raising, and
    text turns run without the voice adapter (before: `Runtime()` raised GenomeError)."""
    from types import SimpleNamespace

    from continuum.config import parse_config
    from continuum.models import default_model_path
    from continuum.runtime import Runtime

    data = tmp_path / "data"
    GenomeRegistry(data, voice_model=voice_models["backbone"]).add(
        "maya", "alto", voice_models["alto"], kind="voice", license="CC0"
    )

    class TextModel(ScriptedBackend):  # a backend that says which text model it serves
        model = SimpleNamespace(path=default_model_path())

    maya = Persona(
        id="maya", name="Maya", identity="A performance engineer.",
        voice=VoiceSpec(engine="codec", adapter="alto"),
    )  # fmt: skip
    config = parse_config({"memory": {"data_dir": str(data)}, "policy": {"cognition": "direct"}})
    backend = TextModel(lambda req: "Hello.")
    runtime = Runtime(config, personas=[maya], backend=backend)
    try:
        [resolved] = runtime.personas
        [use] = voice_adapters(resolved)
        assert use.id == "alto" and use.path
        room = runtime.router.room("t:r")
        assert room.adapters_for(room.personas["maya"]) == ()  # no voice on text turns
    finally:
        runtime._close_stores()
    # the same adapter checked against a backbone it was not made for is refused
    other = make_backbone(tmp_path / "other.gguf", seed=9)
    from continuum.genome import GenomeError

    with pytest.raises(GenomeError, match="voice adapter 'alto' was made for"):
        resolve_persona(maya, GenomeRegistry(data, voice_model=other))
