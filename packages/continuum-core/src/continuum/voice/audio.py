"""Mono float32 audio: WAV in and out, resampling. Nothing here needs a codec library."""

from __future__ import annotations

import io
import wave

import numpy as np

from continuum.errors import ContinuumError

RATE = 16_000  # what the ear (VAD, speech-to-text) works at


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """PCM WAV bytes -> (mono float32 samples in [-1, 1], sample rate)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ContinuumError(f"not a PCM WAV file: {exc}") from exc
    if width != 2:
        raise ContinuumError(f"WAV must be 16-bit PCM (this one is {8 * width}-bit)")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Linear interpolation: plenty for speech going into VAD and Whisper."""
    if rate == to or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    n = round(len(samples) * to / rate)
    x = np.linspace(0, len(samples) - 1, n, dtype=np.float64)
    return np.interp(x, np.arange(len(samples)), samples).astype(np.float32)
