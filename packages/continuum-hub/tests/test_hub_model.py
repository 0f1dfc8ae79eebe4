"""What is pulled runs: a skill LoRA pulled, registered and rendered with on the embedded
model; a voice LoRA pulled and heard in the persona's voice (the codec voice, tiny random
weights); a GGUF base model pulled (interrupted and resumed) and served from
``[backend] model = "hub:…"``."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import anyio
import pytest
from hub_testkit import SMOL, Cli, card, cli_path

from continuum.backends.base import AdapterUse, CompletionRequest, GenerationSettings
from continuum.config import parse_config
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.events import ReplyPosted
from continuum.genome.registry import GenomeRegistry, resolve_persona
from continuum.persona import Persona, VoiceSpec
from continuum.room import Room, RoomPolicy
from continuum.runtime import build_backend
from continuum_hub.errors import HubError
from continuum_hub.store import PulledStore
from tests.server.lora_fixture import make_lora

pytestmark = pytest.mark.model
GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


@pytest.mark.anyio
async def test_a_pulled_skill_is_activated_and_renders(hub, cli, tmp_path, model_path):
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig

    weights = make_lora(tmp_path / "p.gguf").read_bytes()
    hub.add("alice/perf", {"README.md": card(), "perf.gguf": weights})
    cli("pull", "alice/perf", "--persona", "maya", "--quiet")
    genome = GenomeRegistry(cli.data, base_model=model_path)
    maya = resolve_persona(Persona(id="maya", name="Maya", identity="An engineer."), genome)
    assert [a.id for a in maya.adapters] == ["perf"]
    backend = EmbeddedBackend(model_path, EmbeddedConfig(live_slots=2, slot_ctx=1024, n_threads=2))
    try:
        room = Room("r", [maya], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=6))
        await room.handle(
            Envelope(
                host="t", room_id="r", author=Participant(id="sam", name="Sam"),
                parts=(TextPart(text="Maya, how do I profile this?"),),
                reply_to=ReplyTarget(host="t", channel="r"),
            )
        )  # fmt: skip
        (posted,) = room.events.of_type(ReplyPosted)
        assert posted.metrics.adapters == ("perf",)  # rendered under the pulled adapter
        assert backend.adapters.resident() == ["perf"]
    finally:
        backend.close()


def test_a_pulled_voice_is_heard_in_the_personas_voice(hub, tmp_path):
    from continuum.voice.codec_tts import CodecTTS
    from tests.voice.tiny_codec_tts import make_backbone, make_decoder, make_voice_lora

    d = tmp_path / "codec"
    d.mkdir()
    backbone, decoder = make_backbone(d / "backbone.gguf"), make_decoder(d / "decoder.gguf")
    alto = make_voice_lora(d / "alto.gguf", seed=3)
    (tmp_path / "continuum.toml").write_text(
        '[plugins.hub]\nbase_ids = { "backbone.gguf" = "tiny/codec-backbone" }\n'
    )
    cli = Cli(hub, tmp_path, tmp_path / "data", CONTINUUM_CODEC_TTS_BACKBONE=str(backbone),
              CONTINUUM_CODEC_TTS_DECODER=str(decoder))  # fmt: skip
    hub.add("alice/warm-alto", {"README.md": card("tiny/codec-backbone", kind="voice"),
                                "alto.gguf": alto.read_bytes()})  # fmt: skip
    # heard before it is installed: a sample from a temporary copy
    sample = tmp_path / "sample.wav"
    out = cli("preview", "alice/warm-alto", "--sample", str(sample)).stdout
    assert "voice" in out and "tiny/codec-backbone" in out and sample.stat().st_size > 10_000
    assert not (cli.data / "genome").exists() or not list((cli.data / "genome").rglob("*.gguf"))
    cli("pull", "alice/warm-alto", "--persona", "maya", "--id", "alto", "--quiet")
    genome = GenomeRegistry(cli.data, voice_model=backbone)
    (record,) = genome.records("maya")
    assert record.kind == "voice" and record.provenance.startswith("hub:alice/warm-alto@")
    voice = VoiceSpec(engine="codec", adapter="alto")
    maya = resolve_persona(Persona(id="maya", name="Maya", identity="x", voice=voice), genome)
    (ref,) = maya.adapters
    tts = CodecTTS(backbone, decoder, codes_per_word=16)
    try:
        spoken, _ = tts.synthesize(
            "Hello there.", maya.voice, (AdapterUse(id="alto", path=ref.path),)
        )
        pulled_codes = list(tts.last_codes)
        tts.synthesize("Hello there.", maya.voice, (AdapterUse(id="orig", path=str(alto)),))
        original_codes = list(tts.last_codes)
        tts.synthesize("Hello there.", maya.voice, ())
        plain_codes = list(tts.last_codes)
    finally:
        tts.close()
    assert (
        spoken.size and pulled_codes == original_codes != plain_codes
    )  # her voice, not the plain one


def _kill_when_stalled(hub, proc: subprocess.Popen) -> None:
    assert hub.stalled.wait(120), "the download never started"
    time.sleep(1.0)  # the client writes what it received
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(30)


def test_a_base_model_is_pulled_resumed_and_served(hub, cli, tmp_path, model_path, monkeypatch):
    data = model_path.read_bytes()
    sha = hub.add(GGUF_REPO, {"README.md": "---\nlicense: apache-2.0\nlibrary_name: gguf\n"
                              f"base_model: {SMOL}\n---\n", model_path.name: data,
                              "other.Q8_0.gguf": b"GGUF" + b"\0" * 64})  # fmt: skip
    done = cli("pull", GGUF_REPO, "--kind", "model", ok=False)
    assert "several GGUF files" in done.stderr and model_path.name in done.stderr
    # the network stops answering a third of the way in; the user presses Ctrl-C
    hub.stall_after[model_path.name] = len(data) // 3
    proc = subprocess.Popen(
        [cli_path(), "pull", GGUF_REPO, "--kind", "model", "--file", model_path.name, "--quiet"],
        env=cli.env, cwd=cli.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _kill_when_stalled(hub, proc)
    assert proc.returncode != 0 and PulledStore(cli.data).records() == []
    assert not (cli.data / "hub" / "models").exists() or not list(
        (cli.data / "hub" / "models").rglob("*.gguf")
    )
    out = cli("pull", GGUF_REPO, "--kind", "model", "--file", model_path.name).stdout
    (resumed,) = [r for p, r in hub.ranges if p.endswith(model_path.name)]
    start = int(resumed.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(data) // 3 and "resumed after" in out
    (record,) = PulledStore(cli.data).records()
    assert record.kind == "model" and record.revision == sha
    assert (cli.data / record.installed_as).read_bytes() == data
    assert f"hub:{GGUF_REPO}/{model_path.name}@{sha}" in out  # what to put in the config

    # served: [backend] model = "hub:…" (pinned: no request goes out)
    asked = len(hub.requests)
    monkeypatch.setenv("CONTINUUM_DATA", str(cli.data))
    config = parse_config({"backend": {"model": f"hub:{GGUF_REPO}/{model_path.name}@{sha}",
                                       "slot_ctx": 512, "threads": 2}})  # fmt: skip
    backend = build_backend(config, [])
    try:
        assert backend.model.path == cli.data / record.installed_as
        request = CompletionRequest(
            prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            settings=GenerationSettings(max_tokens=4, temperature=0.0),
        )
        done = anyio.run(backend.complete, request)
        assert done.text.strip() and done.metrics.generated_tokens >= 1
    finally:
        backend.close()
    assert len(hub.requests) == asked
    # offline, a branch name uses what was pulled; what was never pulled is a clear error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from continuum.runtime import local_model

    main = parse_config({"backend": {"model": f"hub:{GGUF_REPO}/{model_path.name}@main"}})
    assert local_model(main) == str(cli.data / record.installed_as)
    never = parse_config({"backend": {"model": "hub:nobody/nothing/x.gguf"}})
    with pytest.raises(HubError, match="offline"):
        local_model(never)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and len(hub.requests) == asked


def peft_adapter(rank: int = 4, layers: int = 30, seed: int = 1) -> dict[str, bytes]:
    """A PEFT LoRA for SmolLM2-135M as PEFT saves one (random weights)."""
    import json

    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        for module, out in (("q_proj", 576), ("v_proj", 192)):
            name = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{name}.lora_A.weight"] = rng.normal(0, 0.1, (rank, 576)).astype(np.float32)
            tensors[f"{name}.lora_B.weight"] = rng.normal(0, 0.1, (out, rank)).astype(np.float32)
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
        "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": SMOL,
        "bias": "none", "fan_in_fan_out": False, "lora_dropout": 0.0,
    }  # fmt: skip
    return {"adapter_model.safetensors": save(tensors), "adapter_config.json": json.dumps(config)}


def test_a_peft_safetensors_adapter_is_checked_converted_and_registered(hub, cli, model_path):
    hub.add("alice/peft-perf", {"README.md": card(), **peft_adapter()})
    out = cli("pull", "alice/peft-perf", "--persona", "maya", "--quiet").stdout
    assert "installed as maya/peft-perf" in out
    record = GenomeRegistry(cli.data, base_model=model_path).get("maya", "peft-perf")
    assert record is not None and record.rank == 4 and record.targets == ("attn_q", "attn_v")
    assert "PEFT safetensors converted to GGUF" in record.provenance
    # a safetensors file whose header lies about its data is refused before conversion
    bad = peft_adapter()
    bad["adapter_model.safetensors"] += b"\0" * 16
    hub.add("mallory/peft", {"README.md": card(), **bad})
    done = cli("pull", "mallory/peft", "--quiet", ok=False)
    assert "its header describes" in done.stderr
    assert GenomeRegistry(cli.data).get("_shared", "peft") is None
