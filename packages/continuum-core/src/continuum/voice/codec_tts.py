"""An LLM-based voice: a llama.cpp language model writes audio codes, a WavTokenizer
decoder (llama.cpp's ``wavtokenizer-dec`` architecture) turns them into a spectrum, and an
inverse STFT makes the waveform. The OuteTTS family (0.2 / 0.3, with WavTokenizer-large-75
as decoder) is built this way.

Because the voice is a language model, a persona's *voice adapter* is a LoRA on it, and it
goes through the very same genome path as a skill: the backbone runs on an
:class:`~continuum.backends.embedded.EmbeddedBackend`, whose pager loads the LoRA under
the adapter budget (``prepare`` pages it in before the first piece is synthesized), and its
KV slot is keyed by the adapter set. A persona's ``[voice] adapter = "<id>"`` names a
``kind = "voice"`` adapter of its genome.

    [voice]
    engine = "codec"
    adapter = "warm-alto"          # a voice LoRA in the persona's genome

The engine's models come from ``CONTINUUM_CODEC_TTS_BACKBONE`` and
``CONTINUUM_CODEC_TTS_DECODER`` (GGUF paths) when it is created as a plugin.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import numpy as np

from continuum.backends.base import (
    AdapterUse,
    CompletionRequest,
    GenerationSettings,
    Priority,
    SlotKey,
)
from continuum.errors import ContinuumError
from continuum.persona import Persona, VoiceSpec
from continuum.voice.tts import TTSCapabilities

# OuteTTS 0.2's prompt: the words, then the model writes each word's audio codes
MARKERS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|text_start|>",
    "<|text_sep|>",
    "<|text_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
)
CODE = re.compile(r"<\|(\d+)\|>")
T = TypeVar("T")
SAMPLE_RATE = 24_000


def prompt_for(text: str) -> str:
    words = re.findall(r"[a-z0-9']+", text.lower()) or ["silence"]
    return (
        "<|im_start|>\n<|text_start|>"
        + "<|text_sep|>".join(words)
        + "<|text_end|>\n<|audio_start|>\n"
    )


def voice_adapters(persona: Persona) -> tuple[AdapterUse, ...]:
    """The persona's voice LoRA (``[voice] adapter``), resolved from its genome."""
    wanted = persona.voice.adapter
    if not wanted:
        return ()
    for ref in persona.adapters:
        if ref.id == wanted and ref.kind == "voice":
            if not ref.path:
                raise ContinuumError(f"voice adapter {wanted!r} of {persona.id} has no file")
            return (AdapterUse(id=ref.id, path=ref.path, scale=ref.scale, pinned=ref.pinned),)
    raise ContinuumError(
        f"{persona.id}'s voice names adapter {wanted!r}, which is not a voice adapter in its "
        "genome (continuum genome add --kind voice)"
    )


def spectrum_to_audio(embd: np.ndarray) -> np.ndarray:
    """WavTokenizer's head output (n_frames × (n_fft + 2): log-magnitudes, then phases)
    → samples: an inverse STFT, Hann window, overlap-add with hop n_fft / 4."""
    n_frames, width = embd.shape
    n_fft = width - 2
    hop = n_fft // 4
    half = width // 2
    mag = np.minimum(np.exp(embd[:, :half]), 1e2)
    phase = embd[:, half:]
    frames = np.fft.irfft(mag * np.exp(1j * phase), n=n_fft, axis=1)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float64)
    length = (n_frames - 1) * hop + n_fft
    audio = np.zeros(length)
    envelope = np.zeros(length)
    for i in range(n_frames):
        audio[i * hop : i * hop + n_fft] += frames[i] * window
        envelope[i * hop : i * hop + n_fft] += window**2
    audio /= np.maximum(envelope, 1e-8)
    pad = (n_fft - hop) // 2
    audio = audio[pad : length - pad]
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    return audio.astype(np.float32)


class WavDecoder:
    """A ``wavtokenizer-dec`` GGUF run by llama.cpp: codes in, spectrum frames out."""

    def __init__(self, path: Path | str, threads: int = 2, max_codes: int = 4096) -> None:
        import llama_cpp as llama

        self._llama = llama
        path = Path(path)
        if not path.is_file():
            raise ContinuumError(f"the voice decoder {path} does not exist")
        params = llama.llama_model_default_params()
        self._model = llama.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise ContinuumError(f"{path} is not a decoder llama.cpp can load")
        ctx = llama.llama_context_default_params()
        ctx.n_ctx = ctx.n_batch = ctx.n_ubatch = max_codes
        ctx.embeddings = True
        ctx.pooling_type = 0  # LLAMA_POOLING_TYPE_NONE: one frame per code
        ctx.n_threads = ctx.n_threads_batch = threads
        self._ctx = llama.llama_init_from_model(self._model, ctx)
        if not self._ctx:
            raise ContinuumError(f"could not create a context for the decoder {path}")
        self.n_codes = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(self._model))
        self.width = llama.llama_model_n_embd_out(self._model)
        self.max_codes = max_codes
        self._lock = threading.Lock()

    def decode(self, codes: Sequence[int]) -> np.ndarray:
        llama = self._llama
        codes = [c for c in codes if 0 <= c < self.n_codes][: self.max_codes]
        if not codes:
            return np.zeros((0, self.width), np.float32)
        with self._lock:
            batch = llama.llama_batch_init(len(codes), 0, 1)
            try:
                batch.n_tokens = len(codes)
                for i, code in enumerate(codes):
                    batch.token[i] = code
                    batch.pos[i] = i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1
                llama.llama_memory_clear(llama.llama_get_memory(self._ctx), True)
                if llama.llama_decode(self._ctx, batch) != 0:
                    raise ContinuumError("the voice decoder failed on these codes")
                out = llama.llama_get_embeddings(self._ctx)
                flat = np.ctypeslib.as_array(out, shape=(len(codes) * self.width,))
                return flat.reshape(len(codes), self.width).copy()
            finally:
                llama.llama_batch_free(batch)

    def close(self) -> None:
        if getattr(self, "_ctx", None):
            self._llama.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            self._llama.llama_model_free(self._model)
            self._model = None


class CodecTTS:
    """The LLM-codec TTS engine (see the module doc)."""

    name = "codec"
    capabilities = TTSCapabilities(streaming=False, sample_rate=SAMPLE_RATE, adapters=True)

    def __init__(
        self,
        backbone: Path | str,
        decoder: Path | str,
        *,
        threads: int = 2,
        codes_per_word: int = 24,
        max_codes: int = 1200,
        adapter_budget_mb: int = 256,
    ) -> None:
        from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig

        self.backbone = EmbeddedBackend(
            backbone,
            EmbeddedConfig(
                live_slots=2,
                slot_ctx=4096,
                n_threads=threads,
                adapter_budget_bytes=adapter_budget_mb << 20,
            ),
        )
        self.decoder = WavDecoder(decoder, threads, max_codes)
        self.codes_per_word = codes_per_word
        self.max_codes = max_codes
        self.last_codes: list[int] = []  # what the last synthesis wrote, for inspection
        self.last_ms = 0.0

    @classmethod
    def from_environment(cls) -> CodecTTS:
        backbone = os.environ.get("CONTINUUM_CODEC_TTS_BACKBONE")
        decoder = os.environ.get("CONTINUUM_CODEC_TTS_DECODER")
        if not backbone or not decoder:
            raise ContinuumError(
                "the codec voice needs its models: set CONTINUUM_CODEC_TTS_BACKBONE (e.g. "
                "OuteTTS-0.2-500M-Q8_0.gguf) and CONTINUUM_CODEC_TTS_DECODER (e.g. "
                "WavTokenizer-Large-75-F16.gguf)"
            )
        return cls(backbone, decoder)

    @staticmethod
    def _run(func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a backend coroutine from the worker thread the voice pipeline calls us in
        (or from plain synchronous code)."""
        try:
            return anyio.from_thread.run(func, *args)
        except RuntimeError:  # not in an anyio worker thread
            return anyio.run(func, *args)

    def prepare(self, adapters: Sequence[AdapterUse]) -> float:
        """Page the voice LoRA in now (before the first piece is synthesized); ms taken."""
        if not adapters:
            return 0.0
        return float(self._run(self.backbone.preload, tuple(adapters)))

    def synthesize(
        self, text: str, voice: VoiceSpec, adapters: Sequence[AdapterUse] = ()
    ) -> tuple[np.ndarray, int]:
        prompt = prompt_for(text)
        words = max(1, prompt.count("<|text_sep|>") + 1)
        request = CompletionRequest(
            prompt=prompt,
            control=MARKERS,
            slot=SlotKey(persona_id="_voice", adapters=tuple(sorted(a.id for a in adapters))),
            adapters=tuple(adapters),
            settings=GenerationSettings(
                max_tokens=min(self.max_codes, words * self.codes_per_word),
                temperature=0.0,
                repeat_penalty=1.0,
                stop=("<|audio_end|>",),
            ),
            priority=Priority.RENDER,
        )
        started = time.perf_counter()
        completion = self._run(self.backbone.complete, request)
        codes = [int(c) for c in CODE.findall(completion.text)]
        self.last_codes = codes
        if not codes:
            raise ContinuumError("the voice model wrote no audio codes for this text")
        audio = spectrum_to_audio(self.decoder.decode(codes))
        self.last_ms = (time.perf_counter() - started) * 1000
        return audio, SAMPLE_RATE

    def close(self) -> None:
        self.backbone.close()
        self.decoder.close()
