"""A tiny random LoRA adapter for SmolLM2-135M, written with the `gguf` writer.

No LoRA for the default model installs from a registry, so the adapter-isolation tests
make one: rank-4 deltas on every layer's attn_q and attn_v, large enough to change
greedy output. (A fixture for the far side of the API only; nothing in continuum
depends on it.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_lora(
    path: Path,
    n_layers: int = 30,
    n_embd: int = 576,
    n_kv: int = 192,
    rank: int = 4,
    seed: int = 7,
    std: float = 0.5,
) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in range(n_layers):
        for name, out in (("attn_q", n_embd), ("attn_v", n_kv)):
            base = f"blk.{layer}.{name}.weight"
            # ggml shapes: A [n_embd, rank], B [rank, out] -> numpy (rank, n_embd), (out, rank)
            a = rng.normal(0, std, size=(rank, n_embd)).astype(np.float32)
            b = rng.normal(0, std, size=(out, rank)).astype(np.float32)
            writer.add_tensor(f"{base}.lora_a", a)
            writer.add_tensor(f"{base}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
