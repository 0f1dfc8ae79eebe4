"""Text-to-speech engines: plugins with capabilities. espeak-ng is built in (a system
package, many voice variants, ~10 ms a sentence); others register through ``register_tts``."""

from __future__ import annotations

import shutil
import subprocess
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from continuum.errors import ContinuumError
from continuum.persona import VoiceSpec
from continuum.voice.audio import read_wav


class TTSCapabilities(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    streaming: bool = False  # gives audio while it is still synthesizing a piece
    voices: tuple[str, ...] = ()  # names it knows (empty: any it accepts)
    sample_rate: int = 22_050
    adapters: bool = False  # takes a voice LoRA


class TTSEngine(Protocol):
    name: str
    capabilities: TTSCapabilities

    def synthesize(self, text: str, voice: VoiceSpec) -> tuple[np.ndarray, int]:
        """One piece of a reply -> (mono float32 samples, sample rate). May block: the
        pipeline calls it in a worker thread."""
        ...


class EspeakTTS:
    """espeak-ng through its command line (no library binding to drift)."""

    name = "espeak-ng"
    capabilities = TTSCapabilities(
        voices=("en-us", "en-gb", "en-us+f1", "en-us+f3", "en-us+m3", "en-gb+m2", "en-us+f5"),
        sample_rate=22_050,
    )

    def __init__(self) -> None:
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise ContinuumError("the espeak-ng voice needs: sudo apt-get install espeak-ng")

    def synthesize(self, text: str, voice: VoiceSpec) -> tuple[np.ndarray, int]:
        words_per_minute = str(round(175 * voice.speed))
        try:
            done = subprocess.run(
                [
                    self.binary,
                    "--stdout",
                    "-v",
                    voice.voice,
                    "-s",
                    words_per_minute,
                    "-p",
                    str(voice.pitch),
                    "--",
                    text,
                ],
                capture_output=True,
                check=True,
                timeout=30,
            )
        except subprocess.CalledProcessError as exc:
            raise ContinuumError(
                f"espeak-ng could not speak with voice {voice.voice!r}: "
                f"{exc.stderr.decode(errors='replace').strip()}"
            ) from exc
        # espeak-ng streams a WAV whose header has no length: read the PCM after it
        return _pcm_after_header(done.stdout)


def _pcm_after_header(data: bytes) -> tuple[np.ndarray, int]:
    marker = data.find(b"data")
    if data[:4] != b"RIFF" or marker < 0:
        return read_wav(data)
    rate = int.from_bytes(data[24:28], "little")
    pcm = data[marker + 8 :]
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, rate
