"""Voice as a runtime service: what every voice host shares.

One per runtime (``runtime.voice``, built on first use). It owns the one transcriber (the
runtime's media bridge Whisper: one model for every ear and every voice message), the
TTS engines (one instance per engine, cached: the codec engine loads its backbone once),
the turn detector, a :class:`~continuum.voice.speaking.VoiceFloor` per voice room, and the
ears hosts ask for. Hosts reach it only through ``services.ear`` and ``open_audio``.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
import numpy as np

from continuum.config import ContinuumConfig
from continuum.envelope import Envelope, Participant, ReplyTarget, Visibility
from continuum.errors import ContinuumError
from continuum.hosts.audio import AudioOutput
from continuum.hosts.base import HostServices, ReplySink, ReplyStart, TurnHandle
from continuum.media import MediaBridge
from continuum.persona import Persona
from continuum.voice.ear import Heard, RuntimeEar
from continuum.voice.speaking import SpeakingSink, SpeechStats, VoiceFloor
from continuum.voice.tts import TTSEngine
from continuum.voice.turn_detect import TurnDetector, default_turn_detector
from continuum.voice.vad import EndOfTurnPolicy

log = logging.getLogger("continuum.voice")


class VoiceRuntime(Protocol):
    """What the voice service needs of the runtime (it does not import the runtime)."""

    config: ContinuumConfig
    backend: Any  # capabilities.audio_in
    bridge: MediaBridge
    hippocampus: Any  # someone_speaks(), or None without memory

    async def deliver(self, host: str, envelope: Envelope, *, held: bool = False) -> Any: ...

    def release(self, turn: Any) -> None: ...

    def retract(self, turn: Any) -> None: ...

    def services_for(self, host: str) -> HostServices: ...

    def start_task(self, fn: Callable[[], Any]) -> None: ...


class SpokenTurn(Protocol):
    """A turn whose replies are spoken: held until its gate opens, cancelled by a
    barge-in, keeping its replies' speech stats."""

    gate: anyio.Event | None
    speech: list[SpeechStats]

    def cancel(self) -> None: ...


class VoiceService:
    def __init__(self, runtime: VoiceRuntime) -> None:
        self.runtime = runtime
        cfg = runtime.config.voice
        self.policy = EndOfTurnPolicy(
            short_tail_ms=cfg.short_tail_ms,
            long_tail_ms=cfg.long_tail_ms,
            finished_threshold=cfg.finished_threshold,
        )
        self.lead_s = cfg.lead_ms / 1000
        self._detector: TurnDetector | None = None
        self._engines: dict[str, tuple[TTSEngine, threading.Lock]] = {}
        self._engines_lock = threading.Lock()
        self._floors: dict[str, VoiceFloor] = {}
        self.ears: list[RuntimeEar] = []
        self.stt_calls = 0  # every speech-to-text pass the ears made
        self._warm = False

    # --- shared parts ---------------------------------------------------------------------

    @property
    def hears_audio(self) -> bool:
        return self.runtime.backend.capabilities.audio_in

    @property
    def detector(self) -> TurnDetector:
        if self._detector is None:
            from continuum import plugins

            name = self.runtime.config.voice.turn_detector
            self._detector = (
                default_turn_detector() if name == "auto" else plugins.turn_detector(name)
            )
            log.info("end of turn: %s", self._detector.name)
        return self._detector

    def warm(self) -> None:
        """Load the turn detector and the transcriber's model (seconds, once)."""
        silence = np.zeros(16_000, np.float32)
        self.detector.finished(silence, None)
        transcriber = self.runtime.bridge.transcriber
        if transcriber is not None and not self.hears_audio and not self._warm:
            transcriber.transcribe(silence)  # type: ignore[arg-type]
            calls = getattr(transcriber, "calls", None)
            if isinstance(calls, int):
                transcriber.calls = calls - 1  # type: ignore[attr-defined]
            self._warm = True

    def transcribe(self, samples: np.ndarray, vocabulary: Sequence[str] = ()) -> tuple[str, float]:
        """One speech-to-text pass; ``vocabulary`` reaches transcribers that take it (the
        packaged Whisper does: :meth:`WhisperTranscriber.transcribe_scored`)."""
        transcriber = self.runtime.bridge.transcriber
        if transcriber is None:
            return "", 0.0
        self.stt_calls += 1
        scored = getattr(transcriber, "transcribe_scored", None)
        if scored is not None:
            if vocabulary and "vocabulary" in inspect.signature(scored).parameters:
                return scored(samples, vocabulary=vocabulary)  # type: ignore[no-any-return]
            return scored(samples)  # type: ignore[no-any-return]
        return transcriber.transcribe(samples), 0.0  # type: ignore[arg-type]

    def vocabulary(self) -> tuple[str, ...]:
        """The words an ear's speech-to-text is told to expect: the personas' names, so a
        person who names one is heard naming it."""
        return tuple(dict.fromkeys(p.name for p in self.runtime.personas))

    def engine(self, name: str) -> tuple[TTSEngine, threading.Lock]:
        """The TTS engine ``name``, built once per runtime, with the lock its synthesis
        runs under (engines holding a model are not safe to share between threads)."""
        with self._engines_lock:
            if name not in self._engines:
                from continuum.plugins import tts_engine

                self._engines[name] = (tts_engine(name), threading.Lock())
            return self._engines[name]

    def close(self) -> None:
        """At shutdown: engines that hold a model (the codec backbone) release it."""
        with self._engines_lock:
            engines, self._engines = self._engines, {}
        for engine, lock in engines.values():
            close = getattr(engine, "close", None)
            if close is not None:
                with lock:
                    try:
                        close()
                    except Exception:
                        log.exception("the %s voice did not close cleanly", engine.name)

    def floor(self, room_key: str) -> VoiceFloor:
        if room_key not in self._floors:
            self._floors[room_key] = VoiceFloor()
        return self._floors[room_key]

    # --- for ears -----------------------------------------------------------------------------

    async def deliver(self, envelope: Envelope, held: bool) -> TurnHandle:
        return await self.runtime.deliver(envelope.host, envelope, held=held)

    def release(self, turn: TurnHandle) -> None:
        self.runtime.release(turn)

    def retract(self, turn: TurnHandle) -> None:
        self.runtime.retract(turn)

    def voice_active(self) -> None:
        """Someone is speaking in a voice room (a person, or a persona being heard): the
        conversation is live, so background passes keep off the model."""
        if self.runtime.hippocampus is not None:
            self.runtime.hippocampus.someone_speaks()

    def addressed(self, host: str, text: str) -> tuple[str, ...]:
        return self.runtime.services_for(host).addressed(text)

    async def ear(
        self,
        host: str,
        room_id: str,
        speaker: Participant,
        *,
        reply_to: ReplyTarget | None = None,
        visibility: Visibility = "public",
        on_heard: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> RuntimeEar:
        if not self.hears_audio and self.runtime.bridge.transcriber is None:
            raise ContinuumError(
                'a voice room needs speech-to-text ([media] stt = "whisper"; '
                "pip install 'continuum-core[voice]') or a model that hears audio"
            )
        await anyio.to_thread.run_sync(self.warm)  # loaded now, not in the first pause
        from continuum.router import RoomRouter

        ear = RuntimeEar(
            self,
            host=host,
            room_id=room_id,
            room_key=RoomRouter.key(host, room_id),
            speaker=speaker,
            reply_to=reply_to,
            visibility=visibility,
            on_heard=_transcripts(on_heard),
        )
        self.ears.append(ear)
        self.runtime.start_task(ear.run)
        return ear

    # --- for replies ---------------------------------------------------------------------------

    def speaking_sink(
        self,
        start: ReplyStart,
        persona: Persona,
        output: AudioOutput,
        inner: ReplySink | None,
        turn: SpokenTurn,
        engine: tuple[TTSEngine, threading.Lock] | None = None,
    ) -> SpeakingSink:
        """A persona's reply spoken into ``output`` in its own voice, on its room's floor."""
        engine, lock = engine or self.engine(persona.voice.engine)
        adapters = ()
        if engine.capabilities.adapters:
            from continuum.voice.codec_tts import voice_adapters

            try:
                adapters = voice_adapters(persona)
            except ContinuumError as exc:  # it speaks in the engine's plain voice
                log.warning("%s: %s", persona.id, exc)
        sink = SpeakingSink(
            persona_id=persona.id,
            output=output,
            engine=engine,
            voice=persona.voice,
            floor=self.floor(start.room_key),
            inner=inner,
            adapters=adapters,
            engine_lock=lock,
            gate=turn.gate,
            on_interrupt=turn.cancel,
            on_activity=self.voice_active,
            lead_s=self.lead_s,
        )
        turn.speech.append(sink.stats)
        self.runtime.start_task(sink.run)
        return sink


def _transcripts(
    on_heard: Callable[[str], Awaitable[None] | None] | None,
) -> Callable[[Heard], Awaitable[None] | None] | None:
    """A host's ``on_heard`` (transcripts only) as the ear's (whole utterances)."""
    if on_heard is None:
        return None

    def report(heard: Heard) -> Awaitable[None] | None:
        return on_heard(heard.transcript) if heard.transcript else None

    return report
