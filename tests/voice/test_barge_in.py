"""Barge-in with real audio: the person speaks while the persona's reply is playing."""

from __future__ import annotations

import time

import anyio
import numpy as np
import pytest

from continuum.envelope import ParticipantKind
from continuum.persona import Persona
from continuum.plugins import tts_engine
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend
from continuum.voice.audio import RATE
from continuum.voice.playback import Player
from continuum.voice.session import VoiceSession, frames_of
from continuum.voice.vad import FRAME
from tests.voice.test_voice_session import speech

pytestmark = pytest.mark.anyio
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")
REPLY = (
    "First, measure the cold start. Then look at the cache hit rate over a whole day. "
    "After that, compare the two builds side by side. Finally, write the numbers down."
)


class Mic:
    """The person's microphone during playback: silence, then ``speech`` at ``at_s``."""

    def __init__(self, speech: np.ndarray, at_s: float, total_s: float = 12.0) -> None:
        audio = np.zeros(int(RATE * total_s), dtype=np.float32)
        start = int(RATE * at_s)
        audio[start : start + len(speech)] = speech[: len(audio) - start]
        self.audio = audio[: len(audio) - len(audio) % FRAME]
        loud = np.nonzero(np.abs(speech) > 0.02)[0]
        self.onset_sample = start + int(loud[0])
        self.onset: float | None = None  # wall clock when the speech began

    async def frames(self):
        t0 = time.monotonic()
        self.onset = t0 + self.onset_sample / RATE
        for i in range(0, len(self.audio), FRAME):
            delay = t0 + (i + FRAME) / RATE - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            yield self.audio[i : i + FRAME]


async def turn(tmp_path, transcriber, interruption: str, at_s: float):
    backend = ScriptedBackend(lambda req: REPLY, token_delay_s=0.12)
    room = Room("v", [MAYA], backend, policy=RoomPolicy(cognition="direct"))
    session = VoiceSession(room, MAYA, transcriber, tts_engine("espeak-ng"))
    heard = await session.listen(
        frames_of(speech(tmp_path, "How do I find out why it is slow?"), realtime=False)
    )
    played: list[float] = []

    async def sink(frame, rate):
        played.append(time.monotonic())

    player = Player(sink, realtime=True)
    mic = Mic(speech(tmp_path, interruption, "i.wav"), at_s)
    metrics = await session.respond(heard, player, interruptions=mic.frames())
    return room, metrics, player, mic, played


async def test_speech_during_playback_stops_it_and_the_rest_is_never_said(tmp_path, transcriber):
    room, metrics, player, mic, played = await turn(
        tmp_path, transcriber, "Wait, stop, that is not what I asked.", at_s=1.5
    )
    assert metrics.interrupted and metrics.barge_ins == 1
    # playback paused within 200 ms of the person starting to speak
    assert player.paused_at is not None and player.paused_at - mic.onset <= 0.2
    assert not [t for t in played if t > player.paused_at + 0.05]  # and stayed stopped
    # the generation was cancelled: the model never wrote the end of the reply
    reply = room.history[-1]
    assert reply.author.kind == ParticipantKind.PERSONA and reply.text == metrics.reply
    assert reply.text and len(reply.text) < len(REPLY)
    assert "Finally" not in reply.text and all("Finally" not in m.text for m in room.history)
    assert REPLY.startswith(reply.text.rstrip("—").rsplit(" ", 1)[0])


@pytest.mark.parametrize("backchannel", ["uh huh", "mm hmm"])
async def test_an_mm_hm_pauses_then_resumes_the_reply(tmp_path, transcriber, backchannel):
    room, metrics, player, _mic, played = await turn(tmp_path, transcriber, backchannel, 1.5)
    assert metrics.barge_ins == 1 and metrics.resumed == 1 and not metrics.interrupted
    assert [t for t in played if t > player.paused_at + 0.05]  # playback went on
    assert room.history[-1].text == REPLY == metrics.reply
