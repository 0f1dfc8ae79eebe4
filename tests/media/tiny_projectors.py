"""Tiny random-weight multimodal projectors (mmproj GGUF) for the default model.

No audio- or vision-capable GGUF installs offline, so the direct-path tests build real
projector architectures with random weights: a Qwen2-Audio audio tower (Whisper encoder +
projector) and a Gemma 3 vision tower (SigLIP + pooling projector), both projecting into
SmolLM2-135M's 576-wide embeddings. (Gemma 3 wraps an image in text markers, which any
vocabulary tokenizes; SmolVLM's wrapper tokens are special tokens SmolLM2 lacks.)
transformers random-inits them, llama.cpp's own ``convert_hf_to_gguf.py
--mmproj`` converts them, and the result is cached like the wheel. Their output is
noise; the tests assert the mechanics. (Built in a child process: torch never shares a
process with llama.cpp.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "v1"

AUDIO = """
import json, sys, torch
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration
torch.manual_seed(0)
cfg = Qwen2AudioConfig(
    audio_config=dict(model_type="qwen2_audio_encoder", d_model=64, encoder_layers=3,
        encoder_attention_heads=2, encoder_ffn_dim=128, num_mel_bins=128,
        max_source_positions=1500),
    text_config=dict(model_type="qwen2", hidden_size=576, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=1, vocab_size=256),
)
Qwen2AudioForConditionalGeneration(cfg).save_pretrained(sys.argv[1])
json.dump({"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
    "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30, "n_fft": 400,
    "n_samples": 480000, "nb_max_frames": 3000},
    open(sys.argv[1] + "/preprocessor_config.json", "w"))
"""

VISION = """
import glob, json, sys, torch
from safetensors.torch import load_file, save_file
from transformers import Gemma3Config, Gemma3ForConditionalGeneration
torch.manual_seed(0)
cfg = Gemma3Config(
    vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16),
    text_config=dict(model_type="gemma3_text", hidden_size=576, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=1, head_dim=64,
        vocab_size=300),
    mm_tokens_per_image=16,
)
Gemma3ForConditionalGeneration(cfg).save_pretrained(sys.argv[1])
json.dump({"image_processor_type": "Gemma3ImageProcessor", "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5], "size": {"height": 64, "width": 64},
    "do_pan_and_scan": False},
    open(sys.argv[1] + "/preprocessor_config.json", "w"))
# transformers 5 saves the vision tower without its "vision_model." level; the original
# checkpoints (what llama.cpp's converter maps) have it
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    sd = load_file(f)
    fix = lambda k: k.replace("vision_tower.", "vision_tower.vision_model.", 1) if (
        k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model.")) else k
    save_file({fix(k): v for k, v in sd.items()}, f, metadata={"format": "pt"})
"""

INSTALL = "pip install 'continuum-core[train]' (or run ./scripts/test)"


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "continuum" / "test-models"


def _build(name: str, script: str) -> Path:
    out = _cache() / f"{name}-{VERSION}.gguf"
    if out.is_file():
        return out
    import importlib.util

    if (
        importlib.util.find_spec("torch") is None
        or importlib.util.find_spec("transformers") is None
    ):
        raise RuntimeError(
            f"building the tiny {name} projector needs torch and transformers: {INSTALL}"
        )

    from continuum.genome.convert import converter_dir

    convert = converter_dir() / "convert_hf_to_gguf.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        subprocess.run([sys.executable, "-c", script, str(hf)], check=True, capture_output=True)
        staged = Path(tmp) / "mmproj.gguf"
        done = subprocess.run(
            [sys.executable, str(convert), "--mmproj", str(hf), "--outfile", str(staged),
             "--outtype", "f32"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"convert_hf_to_gguf.py --mmproj failed: {done.stderr[-600:]}")
        staged.replace(out)
    return out


def audio_projector() -> Path:
    return _build("qwen2a-576", AUDIO)


def vision_projector() -> Path:
    return _build("gemma3-576", VISION)
