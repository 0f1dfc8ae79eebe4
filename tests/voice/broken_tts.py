"""A TTS plugin whose synthesizer is gone (loaded with CONTINUUM_PLUGINS in a test)."""

from __future__ import annotations

from continuum.errors import ContinuumError
from continuum.hookspecs import hookimpl
from continuum.voice.tts import TTSCapabilities


class BrokenTTS:
    name = "broken"
    capabilities = TTSCapabilities()

    def synthesize(self, text, voice):
        raise ContinuumError("the synthesizer is gone")


@hookimpl
def register_tts(register):
    register("broken", BrokenTTS)
