"""``continuum voice --in question.wav --out reply.wav``: one voice turn, end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np

from continuum.config import ContinuumConfig, load_config
from continuum.errors import ContinuumError
from continuum.plugins import tts_engine
from continuum.room import Room
from continuum.runtime import build_backend, load_runtime_personas
from continuum.voice.audio import read_wav, resample, wav_bytes
from continuum.voice.session import VoiceSession, frames_of


async def run_voice(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise ContinuumError(f"--in {args.input}: no such file")
    if not args.out.parent.is_dir():  # said now, not after the whole turn
        raise ContinuumError(f"--out {args.out}: no such directory {args.out.parent}")
    samples, rate = read_wav(args.input.read_bytes())
    config = load_config(args.config) if args.config else ContinuumConfig()
    personas = load_runtime_personas(config)
    persona = personas[0]
    if args.persona:
        found = [p for p in personas if p.id == args.persona]
        if not found:
            raise ContinuumError(
                f"--persona {args.persona}: no such persona ({', '.join(p.id for p in personas)})"
            )
        persona = found[0]
    from continuum.media.whisper import WhisperTranscriber

    transcriber = (
        None
        if config.media.stt == "none"
        else WhisperTranscriber(
            config.media.stt_model,
            language=config.media.stt_language,
            max_audio_s=config.media.max_audio_s,
        )
    )
    tts = tts_engine(persona.voice.engine)
    backend = build_backend(config, [persona])
    try:
        room = Room(
            "voice",
            [persona],
            backend,
            policy=config.policy.model_copy(update={"cognition": "direct"}),
        )
        session = VoiceSession(room, persona, transcriber, tts, mode=args.mode)
        chunks: list[np.ndarray] = []
        out_rate = tts.capabilities.sample_rate

        async def play(piece: np.ndarray, piece_rate: int) -> None:
            chunks.append(resample(piece, piece_rate, out_rate))

        frames = frames_of(resample(samples, rate), realtime=not args.fast)
        _, metrics = await session.turn(frames, play)  # the reply is written in the pause
    finally:
        await backend.aclose()
    args.out.write_bytes(wav_bytes(np.concatenate(chunks) if chunks else np.zeros(1), out_rate))
    print(f"heard: {metrics.transcript}")
    print(f"{persona.name}: {metrics.reply}")
    if args.metrics:
        print(
            json.dumps(
                {
                    "path": metrics.path,
                    "stt_calls": metrics.stt_calls,
                    "tts_calls": metrics.tts_calls,
                    "preempted": metrics.preempted,
                    "ms_after_end_of_speech": metrics.stages(),
                },
                indent=2,
            )
        )
    return 0
