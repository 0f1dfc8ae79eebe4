"""A tiny random-weight LLM-codec voice, written with the `gguf` writer: an OuteTTS-shaped
backbone (llama architecture; a vocabulary of characters, bytes, the prompt markers and
64 audio-code tokens ``<|0|>``…``<|63|>``) and a WavTokenizer decoder
(``wavtokenizer-dec``: the real head width, 1282 = n_fft 1280 + 2, at 24 kHz, with a
tiny posnet and convnext), plus voice LoRAs for the backbone. No such weights install
offline; the tests assert the mechanics (codes written, decoded, LoRAs paged and making a
different voice), not how it sounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from continuum.voice.codec_tts import MARKERS
from tests.server.lora_fixture import make_lora

N_CODES = 64
N_EMBD = 64
N_LAYERS = 2


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_backbone(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    tokens: list[str] = ["<unk>", "<s>", "</s>", *MARKERS]
    types = [2, 3, 3] + [3] * len(MARKERS)  # unknown, control
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # byte fallback
    chars = ["\u2581", *"abcdefghijklmnopqrstuvwxyz0123456789'"]
    tokens += chars
    types += [1] * len(chars)  # normal
    first_code = len(tokens)
    tokens += [f"<|{i}|>" for i in range(N_CODES)]
    types += [4] * N_CODES  # user-defined: rendered as text
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYERS)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(N_EMBD // 4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(tokens.index("<|audio_end|>"))
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)

    def t(name: str, *shape: int, std: float = 0.3) -> None:
        w.add_tensor(name, rng.normal(0, std, size=shape).astype(np.float32))

    t("token_embd.weight", n_vocab, N_EMBD, std=1.0)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    out = rng.normal(0, 0.3, size=(n_vocab, N_EMBD)).astype(np.float32)
    out[first_code:] *= 4.0  # the voice speaks in codes: they win the argmax
    w.add_tensor("output.weight", out)
    for i in range(N_LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            t(f"blk.{i}.{name}.weight", N_EMBD, N_EMBD)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, np.float32))
        t(f"blk.{i}.ffn_gate.weight", 128, N_EMBD)
        t(f"blk.{i}.ffn_up.weight", 128, N_EMBD)
        t(f"blk.{i}.ffn_down.weight", N_EMBD, 128)
    _finish(w)
    return path


def make_decoder(path: Path, seed: int = 0, channels: int = 32, layers: int = 2) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    c, n_ff, width, feats = channels, 64, 1282, 32
    arch = "wavtokenizer-dec"
    w = gguf.GGUFWriter(str(path), arch=arch)
    for key, value in (
        ("vocab_size", N_CODES), ("features_length", feats), ("embedding_length", width),
        ("feed_forward_length", n_ff), ("block_count", max(6, layers)),
        ("context_length", 8192), ("attention.head_count", 1),
        ("attention.group_norm_groups", 32), ("posnet.embedding_length", c),
        ("posnet.block_count", 6), ("convnext.embedding_length", c),
        ("convnext.block_count", layers),
    ):  # fmt: skip
        w.add_uint32(f"{arch}.{key}", value)
    w.add_float32(f"{arch}.attention.group_norm_epsilon", 1e-6)
    w.add_float32(f"{arch}.attention.layer_norm_epsilon", 1e-6)
    w.add_bool(f"{arch}.attention.causal", False)
    w.add_string("tokenizer.ggml.model", "none")

    def t(name: str, *shape: int, std: float = 0.2, conv: bool = False) -> None:
        arr = rng.normal(0, std, size=shape).astype(np.float32)
        w.add_tensor(name, arr.astype(np.float16) if conv else arr)  # conv kernels: F16

    def norm(name: str, *shape: int) -> None:
        w.add_tensor(f"{name}.weight", np.ones(shape, np.float32))
        w.add_tensor(f"{name}.bias", np.zeros(shape, np.float32))

    def bias(name: str, *shape: int) -> None:
        w.add_tensor(name, np.zeros(shape, np.float32))

    t("token_embd.weight", N_CODES, feats, std=1.0)
    t("conv1d.weight", c, feats, 7, conv=True)
    bias("conv1d.bias", c, 1)
    for i in (0, 1, 3, 4):
        for k in ("1", "2"):
            norm(f"posnet.{i}.norm{k}", c, 1)
            t(f"posnet.{i}.conv{k}.weight", c, c, 3, conv=True)
            bias(f"posnet.{i}.conv{k}.bias", c, 1)
    norm("posnet.2.attn_norm", c, 1)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        t(f"posnet.2.{name}.weight", c, c, 1, conv=True)
        bias(f"posnet.2.{name}.bias", c, 1)
    norm("posnet.5.attn_norm", c, 1)
    norm("token_embd_norm", c)
    for i in range(layers):
        t(f"convnext.{i}.dw.weight", c, 1, 7, conv=True)
        bias(f"convnext.{i}.dw.bias", c, 1)
        norm(f"convnext.{i}.norm", c)
        t(f"convnext.{i}.pw1.weight", n_ff, c)
        bias(f"convnext.{i}.pw1.bias", n_ff)
        t(f"convnext.{i}.pw2.weight", c, n_ff)
        bias(f"convnext.{i}.pw2.bias", c)
        t(f"convnext.{i}.gamma.weight", c, std=0.1)
    norm("output_norm", c)
    t("output.weight", width, c)
    bias("output.bias", width)
    _finish(w)
    return path


def make_voice_lora(path: Path, seed: int) -> Path:
    """A rank-4 LoRA on the backbone's attn_q / attn_v: a voice adapter."""
    return make_lora(path, n_layers=N_LAYERS, n_embd=N_EMBD, n_kv=N_EMBD, seed=seed, std=0.8)
