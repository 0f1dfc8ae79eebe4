"""A voice turn: a person speaks, a persona answers aloud.

``listen`` takes 32 ms frames as they arrive and decides when the person has finished
(Silero voice activity + a transcript-aware end of turn, see :mod:`continuum.voice.vad`);
the transcript is made speculatively during the pause, so speech-to-text is mostly off
the critical path. ``respond`` runs the persona's turn in its room and speaks the reply
while the model is still writing it: the text is cut at sentence and clause breaks and
each piece is synthesized as soon as it is complete.

``mode="sandwich"`` is the naive pipeline kept for measurement: a fixed silence timer,
then the whole transcript, the whole reply, the whole synthesis.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import numpy as np

from continuum.backends.base import AdapterUse
from continuum.envelope import (
    AudioPart,
    Envelope,
    Participant,
    ReplyTarget,
)
from continuum.errors import ContinuumError, UnknownMessage
from continuum.hosts.base import ReplySink, ReplyStart
from continuum.media import Transcriber
from continuum.persona import Persona
from continuum.room import Room
from continuum.voice.audio import RATE, wav_bytes
from continuum.voice.chunker import SpeechChunker
from continuum.voice.playback import Player
from continuum.voice.tts import TTSEngine
from continuum.voice.vad import (
    FRAME,
    FRAME_MS,
    EndOfTurnPolicy,
    SileroVAD,
    is_backchannel,
    reads_finished,
)

AudioOut = Callable[[np.ndarray, int], Awaitable[None]]
log = logging.getLogger("continuum.voice")


@dataclass
class Utterance:
    """What the person said, and when they stopped (wall clock, ``time.monotonic``)."""

    audio: np.ndarray
    transcript: str | None  # None when the model hears the audio itself
    end_of_speech: float  # when the last speech frame arrived
    end_of_turn: float  # when the turn was judged finished
    stt_ms: float = 0.0  # time spent transcribing (the pass that was kept)
    stt_calls: int = 0  # every pass, speculative ones that speech made stale included
    stt_after_turn_ms: float = 0.0  # transcription still running after the end of turn
    # what ended the turn: the transcript read finished after the short tail, the long
    # silence, or the input itself (the frames stopped)
    ended_by: Literal["transcript", "silence", "input"] = "input"


@dataclass
class VoiceMetrics:
    """One voice turn, stage by stage, in milliseconds from the end of speech."""

    mode: str
    path: str  # "stt" (transcribed) | "direct" (the model took the audio)
    end_of_turn_ms: float  # the silence waited before answering
    transcript_ms: float  # when the transcript was ready
    first_token_ms: float | None = None
    first_piece_ms: float | None = None  # a speakable sentence/clause was complete
    first_audio_ms: float | None = None  # the first audio left for the speaker
    stt_ms: float = 0.0
    first_tts_ms: float | None = None  # synthesis time of the first piece
    stt_calls: int = 0
    tts_calls: int = 0
    reply: str = ""  # what the persona said (only what was heard, if interrupted)
    transcript: str = ""
    barge_ins: int = 0  # playback paused because the person spoke
    resumed: int = 0  # ... and resumed: it was a cough or an "mm-hm"
    interrupted: bool = False  # the person took the floor: the rest was not said
    tts_error: str | None = None  # the TTS engine failed: the reply is text only
    preempted: bool = False  # the reply was written during the pause, spoken at end of turn
    voice_adapter_ms: float | None = None  # paging the persona's voice LoRA in (engines
    # that take one), done while the model writes, before the first piece is synthesized
    retracted: int = 0  # replies begun during a pause the person then talked through

    def stages(self) -> dict[str, float | None]:
        return {
            "end_of_turn": self.end_of_turn_ms,
            "transcript": self.transcript_ms,
            "stt": self.stt_ms,
            "first_token": self.first_token_ms,
            "first_piece": self.first_piece_ms,
            "first_tts": self.first_tts_ms,
            "first_audio": self.first_audio_ms,
        }


@dataclass
class _Speaker(ReplySink):
    """Receives the visible reply and speaks it: piece by piece (streaming) or at once."""

    session: VoiceSession
    player: Player
    metrics: VoiceMetrics
    eos: float
    streaming: bool
    chunker: SpeechChunker = field(default_factory=SpeechChunker)
    text: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)
    message_id: str = ""
    gate: anyio.Event | None = None  # a preemptive reply: nothing is heard before it is set
    voice_ready: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str | None](math.inf)
        self._done = anyio.Event()

    def _ms(self) -> float:
        return (time.monotonic() - self.eos) * 1000

    async def run(self) -> None:
        """Synthesize pieces in order while the model goes on writing."""
        async with self._receive:
            async for piece in self._receive:
                if piece is None:
                    break
                await self.voice_ready.wait()  # the voice LoRA is paged in first
                started = time.monotonic()
                try:
                    samples, rate = await anyio.to_thread.run_sync(self.session.speak, piece)
                except ContinuumError as exc:  # the voice broke: the turn and room go on
                    log.warning("%s could not speak: %s", self.session.persona.id, exc)
                    self.metrics.tts_error = str(exc)
                    continue
                self.metrics.tts_calls += 1
                if self.metrics.first_tts_ms is None:
                    self.metrics.first_tts_ms = (time.monotonic() - started) * 1000
                if self.gate is not None:
                    await self.gate.wait()  # the turn is the person's until it has ended
                if self.metrics.first_audio_ms is None:
                    self.metrics.first_audio_ms = self._ms()
                heard = await self.player.play(samples, rate)
                if heard >= 1.0:
                    self.spoken.append(piece)
                    continue
                words = piece.split()  # cut off mid-piece: keep the words that were heard
                kept = words[: int(len(words) * heard)]
                if kept:
                    self.spoken.append(" ".join(kept) + "—")
                break
        self._done.set()

    def _queue(self, piece: str) -> None:
        if self.metrics.first_piece_ms is None:
            self.metrics.first_piece_ms = self._ms()
        self._send.send_nowait(piece)

    async def write(self, delta: str) -> None:
        if self.metrics.first_token_ms is None:
            self.metrics.first_token_ms = self._ms()
        self.text.append(delta)
        if self.streaming:
            for piece in self.chunker.feed(delta):
                self._queue(piece)

    async def finish(self) -> str | None:
        if self.streaming:
            rest = self.chunker.flush()
            if rest:
                self._queue(rest)
        else:
            whole = "".join(self.text).strip()
            if whole:
                self._queue(whole)
        self._send.send_nowait(None)
        await self._done.wait()
        return None

    async def abort(self, reason: str) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(None)  # playback may have stopped already (barge-in)


class VoiceSession:
    """One person talking with one persona in a room."""

    def __init__(
        self,
        room: Room,
        persona: Persona,
        transcriber: Transcriber | None,
        tts: TTSEngine,
        *,
        person: Participant | None = None,
        policy: EndOfTurnPolicy | None = None,
        mode: Literal["streaming", "sandwich"] = "streaming",
        host: str = "voice",
    ) -> None:
        self.room, self.persona, self.tts, self.mode = room, persona, tts, mode
        self.transcriber = transcriber
        self.person = person or Participant(id="voice-user", name="You")
        self.policy = policy or EndOfTurnPolicy()
        self.host = host
        self.vad = SileroVAD()

    @property
    def voice_adapters(self) -> tuple[AdapterUse, ...]:
        """The persona's voice LoRA, for an engine that takes one."""
        if not self.tts.capabilities.adapters:
            return ()
        from continuum.voice.codec_tts import voice_adapters

        return voice_adapters(self.persona)

    def speak(self, piece: str) -> tuple[np.ndarray, int]:
        """One piece through the TTS engine (in a worker thread), in the persona's voice."""
        adapters = self.voice_adapters
        if adapters:
            return self.tts.synthesize(piece, self.persona.voice, adapters)  # type: ignore[call-arg]
        return self.tts.synthesize(piece, self.persona.voice)

    async def _prepare_voice(self, speaker: _Speaker, metrics: VoiceMetrics) -> None:
        """Page the voice LoRA in while the model writes (before the first audio)."""
        try:
            adapters = self.voice_adapters
            prepare = getattr(self.tts, "prepare", None)
            if adapters and prepare is not None:
                metrics.voice_adapter_ms = await anyio.to_thread.run_sync(prepare, adapters)
        except ContinuumError as exc:  # the voice broke: the reply is still written
            log.warning("%s: voice adapter not paged in: %s", self.persona.id, exc)
            metrics.tts_error = str(exc)
        finally:
            speaker.voice_ready.set()

    @property
    def hears_audio(self) -> bool:
        return self.room.backend.capabilities.audio_in

    def _transcribe_scored(self, samples: np.ndarray) -> tuple[str, float]:
        scored = getattr(self.transcriber, "transcribe_scored", None)
        if scored is None:  # a transcriber without confidence: trust its words
            return self._transcribe(samples)[0], 0.0
        return scored(samples)

    def _transcribe(self, samples: np.ndarray) -> tuple[str, float]:
        assert self.transcriber is not None
        started = time.monotonic()
        text = self.transcriber.transcribe(samples)  # type: ignore[arg-type]
        return text, (time.monotonic() - started) * 1000

    async def listen(
        self,
        frames: AsyncIterator[np.ndarray],
        preempt: Callable[[Utterance], None] | None = None,
        retract: Callable[[], None] | None = None,
    ) -> Utterance:
        """Frames of 512 samples at 16 kHz, as they arrive; returns at the end of turn.

        ``preempt`` is called (once per pause) as soon as the pause's transcript reads
        finished, before the silence tail has run out: :meth:`turn` writes the reply
        then. ``retract`` is called when the person talks on after that."""
        p = self.policy
        streaming = self.mode == "streaming" and not self.hears_audio
        tail = p.long_tail_ms
        kept: list[np.ndarray] = []
        speech_ms = silence_ms = 0
        last_speech = 0.0
        calls = 0
        speculation: dict[str, object] = {}  # the pass for the current pause
        ended_by: Literal["transcript", "silence", "input"] = "input"
        self.vad.reset()
        async with anyio.create_task_group() as tg:
            running = [0]  # passes still computing (a stale one cannot be stopped)

            async def speculate(samples: np.ndarray, ticket: object) -> None:
                running[0] += 1
                try:
                    text, ms = await anyio.to_thread.run_sync(
                        self._transcribe, samples, abandon_on_cancel=True
                    )
                finally:
                    running[0] -= 1
                if speculation.get("ticket") is ticket:
                    speculation.update(text=text, ms=ms, done=time.monotonic())

            async for frame in frames:
                now = time.monotonic()
                kept.append(frame)
                prob = self.vad(frame)
                if prob >= p.threshold or (silence_ms == 0 and prob >= p.threshold - 0.15):
                    speech_ms += FRAME_MS
                    silence_ms = 0
                    last_speech = now
                    if speculation.get("preempted") and retract is not None:
                        retract()  # the reply begun in the pause is not wanted now
                    speculation.clear()  # the person went on: that pass is stale
                    continue
                if speech_ms < p.min_speech_ms:
                    speech_ms = silence_ms = 0  # a click or a cough: not a turn
                    continue
                silence_ms += FRAME_MS
                # one pass at a time: a stale one still running would only slow the next
                if (
                    streaming
                    and silence_ms >= p.speculate_ms
                    and not speculation
                    and not running[0]
                ):
                    ticket = object()
                    speculation["ticket"] = ticket
                    calls += 1
                    tg.start_soon(speculate, np.concatenate(kept), ticket)
                finished = "text" in speculation and reads_finished(str(speculation["text"]))
                if finished and preempt is not None and not speculation.get("preempted"):
                    speculation["preempted"] = True
                    early = Utterance(
                        np.concatenate(kept), str(speculation["text"]), last_speech, now
                    )
                    early.stt_ms = float(speculation["ms"])  # type: ignore[arg-type]
                    early.stt_calls = calls
                    preempt(early)  # starts the reply in the caller's task group
                if streaming and finished and silence_ms >= p.short_tail_ms:
                    ended_by = "transcript"
                    break
                if silence_ms >= tail:
                    ended_by = "silence"
                    break
            end_of_turn = time.monotonic()
            audio = np.concatenate(kept) if kept else np.zeros(FRAME, np.float32)
            heard = Utterance(audio, None, last_speech or end_of_turn, end_of_turn)
            heard.ended_by = ended_by
            if not self.hears_audio and (not streaming or "ticket" not in speculation):
                calls += 1
                text, ms = await anyio.to_thread.run_sync(self._transcribe, audio)
                heard.transcript, heard.stt_ms = text, ms
                heard.stt_after_turn_ms = (time.monotonic() - end_of_turn) * 1000
            elif not self.hears_audio:
                while "text" not in speculation:  # the pass for this pause is still running
                    await anyio.sleep(0.005)
                heard.transcript = str(speculation["text"])
                heard.stt_ms = float(speculation["ms"])  # type: ignore[arg-type]
                done = float(speculation["done"])  # type: ignore[arg-type]
                heard.stt_after_turn_ms = max(0.0, (done - end_of_turn) * 1000)
            heard.stt_calls = calls
            tg.cancel_scope.cancel()  # stale speculative passes are not waited for
        return heard

    async def respond(
        self,
        heard: Utterance,
        out: Player | AudioOut,
        interruptions: AsyncIterator[np.ndarray] | None = None,
        *,
        gate: anyio.Event | None = None,
        metrics: VoiceMetrics | None = None,
    ) -> VoiceMetrics:
        """The persona's turn on what was heard, spoken into ``out`` (a :class:`Player`,
        or a plain callback for each piece) as it is written. ``interruptions``: the
        person's microphone during playback (32 ms frames); speech there pauses the
        reply at once, and either resumes it (a cough, "mm-hm") or ends the turn: the
        generation is cancelled and the persona's history keeps only what was heard.

        ``gate``: a reply written before the turn has ended (see :meth:`turn`); nothing
        is played, and no barge-in is watched, until it is set. Cancelled before that,
        the person's message and the reply leave the room's history again."""
        player = out if isinstance(out, Player) else Player(out, realtime=False)
        eos = heard.end_of_speech
        metrics = metrics or VoiceMetrics(
            mode=self.mode,
            path="direct" if heard.transcript is None else "stt",
            end_of_turn_ms=(heard.end_of_turn - eos) * 1000,
            transcript_ms=(time.monotonic() - eos) * 1000,
            stt_ms=heard.stt_ms,
            stt_calls=heard.stt_calls,
            transcript=heard.transcript or "",
        )
        # the transcript made during the pause travels with the audio: not transcribed again
        part = AudioPart(
            data=wav_bytes(heard.audio, RATE), sample_rate=RATE, transcript=heard.transcript
        )
        envelope = Envelope(
            host=self.host,
            room_id=self.room.id,
            author=self.person,
            parts=(part,),
            reply_to=ReplyTarget(host=self.host, channel=self.room.id),
            mentions=(self.persona.id,),
        )
        speaker = _Speaker(
            self, player, metrics, eos, streaming=self.mode == "streaming", gate=gate
        )

        async def opener(start: ReplyStart) -> ReplySink:
            speaker.message_id = start.reply_id
            return speaker

        async def watch(frames: AsyncIterator[np.ndarray], scope: anyio.CancelScope) -> None:
            if gate is not None:
                await gate.wait()
            await self._watch(frames, player, metrics, scope)

        try:
            async with anyio.create_task_group() as tg:

                async def turn() -> None:
                    replies = await self.room.handle(envelope, replies=opener)
                    if not replies:  # nobody answered: the speaker has nothing to say
                        await speaker.abort("silent")
                    tg.cancel_scope.cancel()  # the reply is over: stop watching for barge-in

                tg.start_soon(self._prepare_voice, speaker, metrics)
                tg.start_soon(speaker.run)
                if interruptions is not None:
                    tg.start_soon(watch, interruptions, tg.cancel_scope)
                await turn()
        except anyio.get_cancelled_exc_class():
            if gate is not None and not gate.is_set():  # retracted: none of it happened
                for message_id in (speaker.message_id, envelope.id):
                    with contextlib.suppress(UnknownMessage):
                        if message_id:
                            self.room.delete_message(message_id)
            raise
        if metrics.interrupted:
            spoken = " ".join(speaker.spoken).strip()
            self.room.record_interrupted(self.persona, envelope, speaker.message_id, spoken)
            metrics.reply = spoken
        else:
            metrics.reply = "".join(speaker.text).strip()
        return metrics

    async def turn(
        self,
        frames: AsyncIterator[np.ndarray],
        out: Player | AudioOut,
        interruptions: AsyncIterator[np.ndarray] | None = None,
    ) -> tuple[Utterance, VoiceMetrics]:
        """Listen and answer, with the reply written during the pause: as soon as the
        pause's transcript reads finished, the persona's turn starts (prompt, reply, the
        first pieces synthesized) while the silence tail runs out; at the end of turn it
        is released to the speaker. If the person talks on instead, that reply is
        cancelled and leaves the history, and the next pause starts another."""
        if self.mode != "streaming" or self.hears_audio:
            heard = await self.listen(frames)
            return heard, await self.respond(heard, out, interruptions)
        retracted = 0
        pending: dict[str, object] = {}

        async with anyio.create_task_group() as tg:

            def preempt(early: Utterance) -> None:
                gate, scope, done = anyio.Event(), anyio.CancelScope(), anyio.Event()
                metrics = VoiceMetrics(
                    mode=self.mode,
                    path="stt",
                    end_of_turn_ms=0.0,
                    transcript_ms=(time.monotonic() - early.end_of_speech) * 1000,
                    stt_ms=early.stt_ms,
                    stt_calls=early.stt_calls,
                    transcript=early.transcript or "",
                    preempted=True,
                )
                pending.update(early=early, gate=gate, scope=scope, done=done, metrics=metrics)

                async def run() -> None:
                    try:
                        with scope:
                            await self.respond(
                                early, out, interruptions, gate=gate, metrics=metrics
                            )
                    finally:
                        done.set()

                tg.start_soon(run)

            def retract() -> None:
                nonlocal retracted
                if "scope" in pending:
                    pending["scope"].cancel()  # type: ignore[attr-defined]
                    retracted += 1
                    pending.clear()

            heard = await self.listen(frames, preempt=preempt, retract=retract)
            early = pending.get("early")
            if isinstance(early, Utterance) and early.transcript == heard.transcript:
                metrics = pending["metrics"]
                assert isinstance(metrics, VoiceMetrics)
                metrics.end_of_turn_ms = (heard.end_of_turn - heard.end_of_speech) * 1000
                metrics.stt_calls = heard.stt_calls
                pending["gate"].set()  # type: ignore[attr-defined]
                await pending["done"].wait()  # type: ignore[attr-defined]
            else:
                retract()  # begun on words the final transcript does not have
                metrics = await self.respond(heard, out, interruptions)
        metrics.retracted = retracted
        return heard, metrics

    async def _watch(
        self,
        frames: AsyncIterator[np.ndarray],
        player: Player,
        metrics: VoiceMetrics,
        turn: anyio.CancelScope,
    ) -> None:
        """Barge-in: pause on speech, then resume (not an interruption) or end the turn."""
        p = self.policy
        vad = SileroVAD()
        burst: list[np.ndarray] = []
        speech_ms = silence_ms = 0
        async for frame in frames:
            if vad(frame) >= p.threshold:
                burst.append(frame)
                speech_ms += FRAME_MS
                silence_ms = 0
            elif burst:
                burst.append(frame)
                silence_ms += FRAME_MS
            else:
                continue
            if speech_ms >= p.barge_in_ms and not player.paused:
                player.pause()
                metrics.barge_ins += 1
            if not player.paused:
                if silence_ms >= p.burst_end_ms:  # too short to pause for: forget it
                    burst, speech_ms, silence_ms = [], 0, 0
                continue
            if speech_ms >= p.confirm_ms:
                interrupted = True
            elif silence_ms >= p.burst_end_ms:  # a short burst: what was it?
                said, sure = "", 0.0
                if self.transcriber is not None:
                    said, sure = await anyio.to_thread.run_sync(
                        self._transcribe_scored, np.concatenate(burst)
                    )
                    metrics.stt_calls += 1
                # a backchannel, or sound the model could not make words of (a cough, an
                # "mm-hm" heard as "and then"): not a bid for the floor
                interrupted = not is_backchannel(said) and sure > p.unsure_logprob
            else:
                continue
            if interrupted:
                metrics.interrupted = True
                player.stop()
                turn.cancel()  # the generation too: the rest will not be said
                return
            metrics.resumed += 1
            player.resume()
            burst, speech_ms, silence_ms = [], 0, 0


async def frames_of(
    samples: np.ndarray, realtime: bool = True, silence_after_ms: int = 2000
) -> AsyncIterator[np.ndarray]:
    """A recording as a live microphone would give it: 32 ms frames, paced in real time,
    followed by silence (the person stopped talking and waits)."""
    pad = np.zeros(RATE * silence_after_ms // 1000, dtype=np.float32)
    audio = np.concatenate([samples.astype(np.float32), pad])
    audio = np.pad(audio, (0, -len(audio) % FRAME))
    start = time.monotonic()
    for i in range(0, len(audio), FRAME):
        if realtime:
            delay = start + (i + FRAME) / RATE - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
        yield audio[i : i + FRAME]
