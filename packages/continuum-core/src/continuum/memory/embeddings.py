"""Sentence embeddings from an offline model that ships inside a package (WordLlama)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from continuum.errors import ModelNotInstalled

WORDLLAMA_INSTALL = "pip install wordllama==0.4.0.post1"


class Embedder(Protocol):
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows."""
        ...


class WordLlamaEmbedder:
    """WordLlama l2_supercat 256-d: ~0.01 ms a sentence on CPU, MIT, weights in the wheel."""

    relevance_bar = 0.15  # bench/eval/gate_calibration.py (F1-optimal on held-out pairs)

    def __init__(self, dim: int = 256) -> None:
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError as exc:
            raise ModelNotInstalled(f"wordllama is not installed: {WORDLLAMA_INSTALL}") from exc
        try:
            self._model = WordLlama.load(
                cache_dir=Path(wordllama.__file__).parent, disable_download=True, dim=dim
            )
        except Exception as exc:  # missing weights: never download at run time
            raise ModelNotInstalled(
                f"wordllama weights not found offline ({exc}); reinstall: {WORDLLAMA_INSTALL}"
            ) from exc
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._model.embed(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
