"""``continuum voice --in question.wav --out reply.wav``: one voice turn, end to end,
through the runtime — the same ear, floor and speaking sinks a LiveKit or Discord voice
room gets, with a host that reads a WAV file as its microphone and writes the reply's
audio to another."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import ClassVar

import anyio
import numpy as np

from continuum.config import ContinuumConfig, load_config
from continuum.envelope import Participant, ParticipantKind
from continuum.errors import ContinuumError
from continuum.hosts.audio import AudioOutput
from continuum.hosts.base import (
    BufferedReplySink,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    ReplySink,
    ReplyStart,
)
from continuum.runtime import Runtime, load_runtime_personas
from continuum.voice.audio import read_wav, wav_bytes

OUT_RATE = 22_050


class FileOutput(AudioOutput):
    """The reply's audio, kept; played in real time (or at once, with ``--fast``)."""

    sample_rate = OUT_RATE

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self.chunks: list[np.ndarray] = []
        self._pushed = 0.0
        self._cleared = 0.0
        self._started: float | None = None

    async def write(self, samples: np.ndarray) -> None:
        if self._started is None:
            self._started = time.monotonic()
        self.chunks.append(samples)
        self._pushed += len(samples) / self.sample_rate

    def played_s(self) -> float:
        if not self.realtime or self._started is None:
            return self._pushed
        return min(self._pushed, self._cleared + time.monotonic() - self._started)

    def clear(self) -> None:
        self._cleared = self._pushed = self.played_s()


class FileVoiceConfig(HostConfig):
    input: str
    realtime: bool = True


class FileVoiceHost(HostAdapter):
    """A WAV file as the microphone of one person, the reply's audio into a buffer."""

    name: ClassVar[str] = "voice-file"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        streaming=True, audio_in=True, audio_out=True
    )

    config_model: ClassVar[type[HostConfig]] = FileVoiceConfig

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        assert isinstance(self.config, FileVoiceConfig)
        self.samples, self.rate = read_wav(Path(self.config.input).read_bytes())
        self.realtime = self.config.realtime
        self.outputs: list[FileOutput] = []
        self.replies: dict[str, str] = {}
        self.heard: list = []

    async def run(self) -> None:
        ear = await self.services.ear(
            "cli", Participant(id="you", name="You", kind=ParticipantKind.PERSON)
        )
        audio = np.concatenate([self.samples, np.zeros(self.rate * 2, np.float32)])
        step = max(1, self.rate // 50)  # 20 ms frames, as a microphone gives them
        begun = time.monotonic()
        for i in range(0, len(audio), step):
            await ear.push(audio[i : i + step], self.rate)
            if self.realtime:
                await anyio.sleep(max(0.0, begun + (i + step) / self.rate - time.monotonic()))
        await ear.close()
        self.heard = getattr(ear, "heard", [])
        for heard in self.heard:
            if heard.turn is not None:
                await heard.turn.wait()

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        async def keep(text: str) -> str | None:
            self.replies[start.persona_id] = self.replies.get(start.persona_id, "") + text
            return None

        return BufferedReplySink(keep)

    async def open_audio(self, start: ReplyStart) -> AudioOutput:
        self.outputs.append(FileOutput(self.realtime))
        return self.outputs[-1]


async def run_voice(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise ContinuumError(f"--in {args.input}: no such file")
    if not args.out.parent.is_dir():  # said now, not after the whole turn
        raise ContinuumError(f"--out {args.out}: no such directory {args.out.parent}")
    read_wav(args.input.read_bytes())  # a broken file is said now, in one line
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
    # only this host, this persona: the user's Slack or Discord is not started for a turn
    table = {"input": str(args.input), "realtime": not args.fast}
    config = config.model_copy(update={"hosts": {FileVoiceHost.name: table}})
    runtime = Runtime(config, personas=[persona], host_classes={FileVoiceHost.name: FileVoiceHost})
    async with runtime:
        await runtime.serve(handle_signals=True)
        host = runtime.host(FileVoiceHost.name)
        assert isinstance(host, FileVoiceHost)
        heard = [h for h in host.heard if h.turn is not None]
        stats = [s for h in heard for s in h.turn.speech]  # type: ignore[union-attr]
        stt_calls = runtime.voice.stt_calls
        detector = runtime.voice.detector.name
    chunks = [c for o in host.outputs for c in o.chunks]
    args.out.write_bytes(wav_bytes(np.concatenate(chunks) if chunks else np.zeros(1), OUT_RATE))
    said = " ".join(h.transcript or "(heard directly)" for h in heard)
    print(f"heard: {said}")
    print(f"{persona.name}: {host.replies.get(persona.id, '').strip()}")
    if args.metrics and heard:
        last = heard[-1]

        def ms(at: float | None) -> float | None:
            return None if at is None else round((at - last.end_of_speech) * 1000, 1)

        first = stats[0] if stats else None
        print(
            json.dumps(
                {
                    "path": "stt" if last.transcript is not None else "direct",
                    "stt_calls": stt_calls,
                    "tts_calls": sum(s.tts_calls for s in stats),
                    "preempted": last.preempted,
                    "turn_detector": detector,
                    "ms_after_end_of_speech": {
                        "end_of_turn": ms(last.end_of_turn),
                        "first_token": ms(first.first_delta_at) if first else None,
                        "first_piece": ms(first.first_piece_at) if first else None,
                        "first_audio": ms(first.first_audio_at) if first else None,
                    },
                },
                indent=2,
            )
        )
    return 0
