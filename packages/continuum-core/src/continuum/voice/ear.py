"""An ear: one person's audio stream, listened to by the runtime.

Frames come in from a host at any rate and channel count; the ear resamples them to
16 kHz, runs Silero voice activity frame by frame, and decides when the person has
finished (a :mod:`turn detector <continuum.voice.turn_detect>` in each pause, a short
silence tail when it says "finished", a long one otherwise). In the pause it transcribes
speculatively with the runtime's one transcriber, and as soon as the pause reads finished
it delivers the utterance *held*: the personas think and synthesize while the tail runs
out, and nothing is heard before the end of turn releases it. If the person talks on, the
held turn is retracted (it leaves no trace) and a later pause delivers again.

While a persona speaks, the person's speech pauses it at once (``barge_in_ms``); a short
burst is transcribed and, when it is a backchannel ("mm-hm") or not words at all, the
persona goes on; longer speech, or words, interrupt it (its turn is cancelled and its
history keeps what was heard) and become the person's next turn.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio
import numpy as np

from continuum.envelope import AudioPart, Envelope, Participant, ReplyTarget, Visibility
from continuum.hosts.base import TurnHandle
from continuum.voice.audio import RATE, resample, wav_bytes
from continuum.voice.speaking import VoiceFloor
from continuum.voice.turn_detect import TurnDetector
from continuum.voice.vad import FRAME, FRAME_MS, EndOfTurnPolicy, SileroVAD, is_backchannel

log = logging.getLogger("continuum.voice")

LEAD_IN_FRAMES = 10  # audio kept from before the speech started (320 ms)


class EarServices(Protocol):
    """What an ear needs of the runtime (the voice service gives it)."""

    hears_audio: bool  # the model takes audio: no speech-to-text at all
    detector: TurnDetector
    policy: EndOfTurnPolicy

    def transcribe(
        self, samples: np.ndarray, vocabulary: Sequence[str] = ()
    ) -> tuple[str, float]: ...

    def vocabulary(self) -> tuple[str, ...]: ...

    def floor(self, room_key: str) -> VoiceFloor: ...

    async def deliver(self, envelope: Envelope, held: bool) -> TurnHandle: ...

    def release(self, turn: TurnHandle) -> None: ...

    def retract(self, turn: TurnHandle) -> None: ...

    def addressed(self, host: str, text: str) -> tuple[str, ...]: ...

    def voice_active(self) -> None: ...


@dataclass
class Heard:
    """One utterance as the ear judged it (``time.monotonic`` stamps)."""

    transcript: str | None
    end_of_speech: float
    end_of_turn: float
    ended_by: Literal["detector", "silence", "input"]
    stt_calls: int  # passes for this utterance (speculative ones included)
    preempted: bool  # delivered held, in the pause, and released at the end of turn
    retracted: int  # held deliveries the person talked through
    turn: TurnHandle | None = None
    samples: int = 0


class RuntimeEar:
    """The runtime's :class:`~continuum.hosts.audio.Ear`; ``run`` in the runtime's task
    group until the stream is closed."""

    def __init__(
        self,
        services: EarServices,
        *,
        host: str,
        room_id: str,
        room_key: str,
        speaker: Participant,
        reply_to: ReplyTarget | None = None,
        visibility: Visibility = "public",
        on_heard: Callable[[Heard], Awaitable[None] | None] | None = None,
    ) -> None:
        self.services = services
        self.host, self.room_id, self.room_key = host, room_id, room_key
        self.speaker = speaker
        self.speaker_id = speaker.id
        self.reply_to = reply_to or ReplyTarget(host=host, channel=room_id)
        self.visibility = visibility
        self.on_heard = on_heard
        self.heard: list[Heard] = []
        self.barge_ins = 0  # a persona was paused by this person's speech
        self.resumed = 0  # ... and went on (a backchannel)
        self.interruptions = 0  # ... and was cut off
        self.speech_started: list[float] = []  # onsets (monotonic), for barge-in timing
        self._send, self._receive = anyio.create_memory_object_stream[np.ndarray | None](math.inf)
        self._rest = np.zeros(0, np.float32)
        self._closed = anyio.Event()
        self._ended = False

    # --- what the host calls ----------------------------------------------------------------

    async def push(self, samples: np.ndarray, rate: int, channels: int = 1) -> None:
        if self._ended:
            return
        x = np.asarray(samples)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = x.astype(np.float32, copy=False).reshape(-1)
        if channels > 1:
            x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
        x = np.concatenate([self._rest, resample(x, rate, RATE)])
        n = len(x) // FRAME * FRAME
        for i in range(0, n, FRAME):
            self._send.send_nowait(x[i : i + FRAME])
        self._rest = x[n:]

    async def close(self) -> None:
        """The stream ended: what was said is still judged and answered."""
        if not self._ended:
            self._ended = True
            self._send.send_nowait(None)
            self._send.close()
        await self._closed.wait()

    # --- listening ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._listen()
        finally:
            self._closed.set()

    async def _listen(self) -> None:
        s, p = self.services, self.services.policy
        vad = SileroVAD()
        floor = s.floor(self.room_key)
        kept: list[np.ndarray] = []
        speech_ms = silence_ms = 0
        last_speech = 0.0
        onset_index = 0  # where in ``kept`` this burst of speech began
        calls = retracted = 0
        holding = barged = False  # the floor is paused for this person; a persona was
        held: TurnHandle | None = None
        held_text: str | None = None
        spec: dict[str, object] = {}  # the pass for the current pause
        running = [0]  # passes still computing (a stale one cannot be stopped)

        def reset() -> None:
            nonlocal kept, speech_ms, silence_ms, calls, retracted, held, held_text
            kept, speech_ms, silence_ms, calls, retracted = [], 0, 0, 0, 0
            held, held_text = None, None
            spec.clear()

        async with anyio.create_task_group() as tg:

            async def speculate(audio: np.ndarray, ticket: object) -> None:
                running[0] += 1
                try:
                    text: str | None = None
                    if not s.hears_audio:
                        text, _ = await anyio.to_thread.run_sync(
                            s.transcribe, audio, s.vocabulary(), abandon_on_cancel=True
                        )
                    verdict = await anyio.to_thread.run_sync(
                        s.detector.finished, audio, text, abandon_on_cancel=True
                    )
                finally:
                    running[0] -= 1
                log.debug("pause pass: %r, finished %.3f", text, verdict)
                if spec.get("ticket") is ticket:
                    spec.update(text=text, verdict=verdict, done=time.monotonic())

            while True:
                frame = await self._receive.receive()
                if frame is None:
                    break
                now = time.monotonic()
                kept.append(frame)
                prob = vad(frame)
                if prob >= p.threshold or (silence_ms == 0 and prob >= p.threshold - 0.15):
                    if speech_ms == 0:
                        onset_index = max(0, len(kept) - 1)
                        self.speech_started.append(now)
                    s.voice_active()  # a turn is coming: background work keeps off the model
                    speech_ms += FRAME_MS
                    silence_ms = 0
                    last_speech = now
                    if speech_ms >= p.barge_in_ms and not holding:
                        holding = True
                        barged = floor.pause()  # a persona stops at once
                        self.barge_ins += barged
                    if held is not None:  # the reply begun in the pause is not wanted now
                        s.retract(held)
                        held, held_text = None, None
                        retracted += 1
                    spec.clear()  # the person went on: that pass is stale
                    if barged and speech_ms >= p.confirm_ms:
                        barged = False  # long speech over a persona: an interruption
                        self.interruptions += floor.interrupt() > 0
                    continue
                if speech_ms < p.min_speech_ms:
                    speech_ms = silence_ms = 0  # a click or a cough: not a turn
                    kept = kept[-LEAD_IN_FRAMES:]
                    if holding and not barged:
                        holding = False
                        floor.release()
                    continue
                silence_ms += FRAME_MS
                if barged and silence_ms >= p.burst_end_ms:  # a short burst: what was it?
                    burst = np.concatenate(kept[onset_index:])
                    said, sure = "", 0.0
                    if not s.hears_audio:  # heard plain: told the personas' names,
                        calls += 1  # Whisper may hear one in an "mm-hm"
                        said, sure = await anyio.to_thread.run_sync(s.transcribe, burst)
                    barged = False
                    if is_backchannel(said) or sure <= p.unsure_logprob:
                        self.resumed += 1  # "mm-hm", a cough: the persona goes on
                        holding = False
                        floor.resume()
                        reset()
                        continue
                    self.interruptions += floor.interrupt() > 0
                if silence_ms >= p.speculate_ms and not spec and not running[0]:
                    ticket = object()
                    spec["ticket"] = ticket
                    calls += not s.hears_audio
                    tg.start_soon(speculate, np.concatenate(kept), ticket)
                finished = "verdict" in spec and float(spec["verdict"]) >= p.finished_threshold  # type: ignore[arg-type]
                spoken = spec.get("text") is None or str(spec.get("text")).strip()
                if finished and spoken and held is None and not barged:
                    held_text = spec.get("text")  # type: ignore[assignment]
                    held = await s.deliver(self._envelope(kept, held_text), held=True)
                ended_by: Literal["detector", "silence"] | None = None
                if finished and silence_ms >= p.short_tail_ms:
                    ended_by = "detector"
                elif silence_ms >= p.long_tail_ms:
                    ended_by = "silence"
                if ended_by is None:
                    continue
                heard = await self._end_of_turn(
                    kept, spec, held, held_text, last_speech, ended_by, calls, retracted, floor
                )
                if holding:
                    holding = False
                    floor.release()
                reset()
                kept = []
                await self._report(heard)
            tg.cancel_scope.cancel()  # stale speculative passes are not waited for
        if speech_ms >= p.min_speech_ms:  # the stream ended mid-turn: still answered
            heard = await self._end_of_turn(
                kept, spec, held, held_text, last_speech, "input", calls, retracted, floor
            )
            if holding:
                floor.release()
            await self._report(heard)
        elif holding:
            floor.release()

    async def _end_of_turn(
        self,
        kept: list[np.ndarray],
        spec: dict[str, object],
        held: TurnHandle | None,
        held_text: str | None,
        last_speech: float,
        ended_by: Literal["detector", "silence", "input"],
        calls: int,
        retracted: int,
        floor: VoiceFloor,
    ) -> Heard:
        s = self.services
        end_of_turn = time.monotonic()
        audio = np.concatenate(kept) if kept else np.zeros(FRAME, np.float32)
        text: str | None = None
        if not s.hears_audio:
            while "ticket" in spec and "done" not in spec:  # this pause's pass is running
                await anyio.sleep(0.005)
            if "done" in spec:
                text = spec.get("text")  # type: ignore[assignment]
            else:
                calls += 1
                text, _ = await anyio.to_thread.run_sync(s.transcribe, audio, s.vocabulary())
        turn: TurnHandle | None = None
        preempted = False
        if held is not None and held_text == text:
            s.release(held)  # written in the pause, on these very words: heard now
            turn, preempted = held, True
        else:
            if held is not None:  # begun on words the final transcript does not have
                s.retract(held)
                retracted += 1
            if text is None or text.strip() or s.hears_audio:
                turn = await s.deliver(self._envelope(kept, text), held=False)
        return Heard(
            transcript=text,
            end_of_speech=last_speech or end_of_turn,
            end_of_turn=end_of_turn,
            ended_by=ended_by,
            stt_calls=calls,
            preempted=preempted,
            retracted=retracted,
            turn=turn,
            samples=len(audio),
        )

    async def _report(self, heard: Heard) -> None:
        self.heard.append(heard)
        if self.on_heard is not None:
            result = self.on_heard(heard)
            if result is not None:
                await result

    def _envelope(self, kept: list[np.ndarray], transcript: str | None) -> Envelope:
        audio = np.concatenate(kept) if kept else np.zeros(FRAME, np.float32)
        part = AudioPart(data=wav_bytes(audio, RATE), sample_rate=RATE, transcript=transcript)
        mentions = self.services.addressed(self.host, transcript) if transcript else ()
        return Envelope(
            host=self.host,
            room_id=self.room_id,
            author=self.speaker,
            parts=(part,),
            reply_to=self.reply_to,
            mentions=mentions,
            visibility=self.visibility,
        )
