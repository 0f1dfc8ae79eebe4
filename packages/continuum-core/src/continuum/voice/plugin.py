"""The voice plugin: the espeak-ng, Piper and LLM-codec TTS engines and ``continuum
voice``. Registered through the entry-point group, like every other plugin."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from continuum.hookspecs import TTSFactory, hookimpl


def _espeak() -> object:
    from continuum.voice.tts import EspeakTTS

    return EspeakTTS()


def _piper() -> object:
    from continuum.voice.piper import PiperTTS

    return PiperTTS()  # without the [piper] extra: an error with the install line


def _codec() -> object:
    from continuum.voice.codec_tts import CodecTTS

    return CodecTTS.from_environment()  # its models: an error naming the variables


@hookimpl
def register_tts(register: Callable[[str, TTSFactory], None]) -> None:
    register("espeak-ng", _espeak)  # type: ignore[arg-type]
    register("piper", _piper)  # type: ignore[arg-type]
    register("codec", _codec)  # type: ignore[arg-type]


def _smart_turn() -> object:
    from continuum.voice.turn_detect import SmartTurnDetector

    return SmartTurnDetector()  # without its model: an error with the install line


def _transcript_rule() -> object:
    from continuum.voice.turn_detect import TranscriptTurnDetector

    return TranscriptTurnDetector()


def _either() -> object:
    from continuum.voice.turn_detect import EitherTurnDetector

    return EitherTurnDetector()


@hookimpl
def register_turn_detectors(register: Callable[[str, Callable[[], object]], None]) -> None:
    register("smart-turn", _smart_turn)
    register("transcript", _transcript_rule)
    register("smart-turn|transcript", _either)


def _voice(args: argparse.Namespace) -> int:
    import anyio

    from continuum.voice.cli import run_voice

    return anyio.run(run_voice, args)


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    p = subcommands.add_parser(
        "voice", help="speak to a persona: a WAV in, its spoken reply out (streamed)"
    )
    p.add_argument("--in", dest="input", type=Path, required=True, help="a WAV of your voice")
    p.add_argument("--out", type=Path, required=True, help="where the spoken reply goes (WAV)")
    p.add_argument("--persona", help="persona id (default: the first one)")
    p.add_argument("--config", type=Path, help="continuum.toml (backend, personas, media)")
    p.add_argument(
        "--fast", action="store_true", help="feed the WAV as fast as possible, not in real time"
    )
    p.add_argument("--metrics", action="store_true", help="print the per-stage breakdown")
    p.set_defaults(func=_voice)
