"""A persona's voice as an adapter: an LLM-codec TTS (OuteTTS-shaped backbone + WavTokenizer
decoder, tiny random weights built with the gguf writer) whose voice LoRAs go through the
genome — registered, surviving a restart, paged in before the first audio of a voice turn
— and make measurably different audio for the same text."""

from __future__ import annotations

import numpy as np
import pytest

from continuum.backends.base import AdapterUse
from continuum.errors import ContinuumError
from continuum.genome.registry import GenomeRegistry, resolve_persona
from continuum.persona import AdapterRef, Persona, VoiceSpec
from continuum.testing import AudioTestHost, ScriptedBackend, serve_host, text_envelope
from continuum.voice.codec_tts import CodecTTS, voice_adapters
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


async def test_a_voice_lora_is_paged_in_before_the_first_audio(voice_models, tmp_path, monkeypatch):
    """Through a runtime serving the test audio host: the runtime builds the codec engine
    once (its backbone loaded once) and pages the persona's voice LoRA in before the
    reply's first audio; a second reply reuses both."""
    monkeypatch.setenv("CONTINUUM_CODEC_TTS_BACKBONE", str(voice_models["backbone"]))
    monkeypatch.setenv("CONTINUUM_CODEC_TTS_DECODER", str(voice_models["decoder"]))
    data = tmp_path / "data"
    # registered in the genome; the runtime (a restart) finds it
    GenomeRegistry(data, voice_model=voice_models["backbone"]).add(
        "maya", "alto", voice_models["alto"], kind="voice", license="CC0"
    )
    maya = Persona(
        id="maya", name="Maya", identity="A performance engineer.",
        voice=VoiceSpec(engine="codec", adapter="alto"),
    )  # fmt: skip
    async with serve_host(
        "audio-test",
        data_dir=data,
        personas=[maya],
        backend=ScriptedBackend(lambda req: "Sure. The cache is warm."),
        host_classes={"audio-test": AudioTestHost},
    ) as probe:
        rt, host = probe._rt, probe.host
        services = rt.services_for("audio-test")
        for text in ("Is the cache warm?", "And now?"):
            turn = await services.deliver(text_envelope(text, host="audio-test", room_id="v"))
            await turn.wait()
        engine, _ = rt.voice.engine("codec")
        events = engine.backbone.adapters.events
        first, second = host.outputs
        loads = [e for e in events if e.kind == "load" and e.adapter == "alto"]
        assert len(loads) == 1  # paged in once, for both replies
        assert loads[0].at <= first.first_write_wall  # before the first audio
        assert first.samples.size and second.samples.size
        hits = [e for e in events if e.kind == "hit" and e.adapter == "alto"]
        assert len(hits) >= 3  # every piece spoken under it, without loading it again
        stats = [s for t in rt.turns.values() for s in t.speech]
        assert stats[0].voice_adapter_ms is not None and stats[0].tts_error is None
        assert stats[0].spoken == "Sure. The cache is warm."


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
