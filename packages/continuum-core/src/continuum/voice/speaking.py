"""Speaking a reply into a host's audio output, inside the runtime.

A :class:`SpeakingSink` is the reply sink the runtime gives the turn runner for a host
with ``audio_out``: the visible text still goes to the host's own sink (a transcript), and
is cut at sentence and clause breaks (:class:`~continuum.voice.chunker.SpeechChunker`);
each piece is synthesized in the persona's voice (runtime-cached engines) while the model
writes on, and written to the host's :class:`~continuum.hosts.audio.AudioOutput` a little
ahead of playback. What was *heard* comes from the output's playout clock, so a reply
cut off by the person keeps only the words that were played.

A :class:`VoiceFloor` per room lets one persona speak at a time: a second persona's reply
is synthesized while it waits, and plays when the first has been heard out. The person
holds the floor over every persona: their speech pauses the speaker at once (the ear
calls :meth:`VoiceFloor.pause`), and either resumes it (a backchannel) or interrupts it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import numpy as np

from continuum.backends.base import AdapterUse
from continuum.errors import ContinuumError
from continuum.hosts.audio import AudioOutput
from continuum.hosts.base import ReplySink
from continuum.persona import VoiceSpec
from continuum.voice.audio import resample
from continuum.voice.chunker import SpeechChunker
from continuum.voice.tts import TTSEngine

log = logging.getLogger("continuum.voice")

FRAME_S = 0.02  # written to the output 20 ms at a time
LEAD_S = 0.1  # at most this much written ahead of what was played (a pause clears it)


@dataclass
class SpeechStats:
    """One spoken reply, as the runtime saw it (``time.monotonic`` stamps)."""

    persona_id: str
    opened_at: float = field(default_factory=time.monotonic)
    first_delta_at: float | None = None
    first_piece_at: float | None = None  # a speakable piece was complete
    first_audio_at: float | None = None  # its first frame went to the output
    first_tts_ms: float | None = None
    voice_adapter_ms: float | None = None
    tts_calls: int = 0
    tts_error: str | None = None
    pauses: int = 0
    resumed: int = 0
    interrupted: bool = False
    played_s: float = 0.0
    spoken: str = ""  # what was heard


class VoiceFloor:
    """Who speaks in one voice room: replies play one at a time, in the order they
    opened; the person's speech pauses them all."""

    def __init__(self) -> None:
        self.queue: list[SpeakingSink] = []
        self.paused = False
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def join(self, sink: SpeakingSink) -> None:
        self.queue.append(sink)

    def leave(self, sink: SpeakingSink) -> None:
        if sink in self.queue:
            self.queue.remove(sink)
            self._notify()

    async def wait_turn(self, sink: SpeakingSink) -> None:
        """Until ``sink`` is first in line and the person is not speaking."""
        while (self.queue and self.queue[0] is not sink) or self.paused:
            await self._changed.wait()

    @property
    def speaking(self) -> SpeakingSink | None:
        head = self.queue[0] if self.queue else None
        return head if head is not None and head.started else None

    def pause(self) -> bool:
        """The person started speaking: nothing plays until :meth:`resume` or
        :meth:`interrupt`. True when a persona was speaking (a barge-in)."""
        self.paused = True
        speaking = self.speaking
        if speaking is not None:
            speaking.pause()
        return speaking is not None

    def resume(self) -> None:
        """It was a backchannel or a cough: the speaker goes on where it was."""
        self.paused = False
        speaking = self.speaking
        if speaking is not None:
            speaking.resume()
        self._notify()

    def interrupt(self) -> int:
        """The person took the floor: every reply playing or waiting to play stops (its
        turn is cancelled; its history keeps what was heard). Returns how many."""
        stopped = list(self.queue)
        for sink in stopped:
            sink.interrupt()
        self.paused = False
        self._notify()
        return len(stopped)

    def release(self) -> None:
        """The person's speech ended without taking the floor from anyone."""
        if self.paused:
            self.resume()


class SpeakingSink(ReplySink):
    """One persona's reply, spoken. ``run`` (started by the runtime in its task group)
    synthesizes and plays; ``finish`` returns once the reply has been heard out."""

    def __init__(
        self,
        *,
        persona_id: str,
        output: AudioOutput,
        engine: TTSEngine,
        voice: VoiceSpec,
        floor: VoiceFloor,
        inner: ReplySink | None = None,
        adapters: tuple[AdapterUse, ...] = (),
        engine_lock: threading.Lock | None = None,
        gate: anyio.Event | None = None,
        on_interrupt: Callable[[], None] | None = None,
        on_activity: Callable[[], None] | None = None,
        lead_s: float = LEAD_S,
    ) -> None:
        self.persona_id = persona_id
        self.output, self.engine, self.voice = output, engine, voice
        self.floor, self.inner, self.adapters = floor, inner, adapters
        self.engine_lock = engine_lock or threading.Lock()
        self.gate = gate  # a reply written in the pause: nothing plays before it is set
        self.on_interrupt = on_interrupt
        self.on_activity = on_activity  # called while it plays (the room is not quiet)
        self.lead_s = lead_s
        self.stats = SpeechStats(persona_id)
        self.chunker = SpeechChunker()
        self.started = False  # its first frame went out
        self._pieces_in, self._pieces_out = anyio.create_memory_object_stream[str | None](math.inf)
        # (piece text, samples at the output's rate); None: no more
        self._audio_in, self._audio_out = anyio.create_memory_object_stream[
            tuple[str, np.ndarray] | None
        ](math.inf)
        self._spans: list[tuple[str, float, float]] = []  # piece, start s, end s (audio time)
        self._running = anyio.Event()
        self._running.set()
        self._stopped = False
        self._done = anyio.Event()
        self._voice_ready = anyio.Event()
        self._frozen: str | None = None  # what was heard when it stopped
        self._inner_pending: list[str] = []
        floor.join(self)

    # --- what the turn runner calls -------------------------------------------------------

    def watch_posts(self, callback: Callable[[str], None]) -> None:
        if self.inner is not None:
            self.inner.watch_posts(callback)

    async def write(self, delta: str) -> None:
        if self.stats.first_delta_at is None:
            self.stats.first_delta_at = time.monotonic()
        await self._to_inner(delta)
        for piece in self.chunker.feed(delta):
            self._queue(piece)

    async def finish(self) -> str | None:
        rest = self.chunker.flush()
        if rest:
            self._queue(rest)
        # (already closed when the speaking ended early: stopped, or its output was lost)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._pieces_in.send_nowait(None)
        await self._done.wait()
        if self.stats.interrupted:  # the turn is being cancelled: it ends there, with
            await anyio.lowlevel.checkpoint()  # what was heard, not the whole text
        if self.inner is None:
            return None
        await self._to_inner("")
        return await self.inner.finish()

    async def abort(self, reason: str) -> None:
        self._stop()
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._pieces_in.send_nowait(None)
        if self.inner is not None:
            await self.inner.abort(reason)

    async def _to_inner(self, delta: str) -> None:
        """The text goes to the host as it is written, except for a reply written in the
        pause: held back until it is released (a retracted one shows nothing)."""
        if self.inner is None:
            return
        self._inner_pending.append(delta)
        if self.gate is not None and not self.gate.is_set():
            return
        text, self._inner_pending = "".join(self._inner_pending), []
        if text:
            await self.inner.write(text)

    def heard(self) -> str | None:
        if self._frozen is not None:
            return self._frozen
        return self._heard_now()

    # --- the floor's controls -------------------------------------------------------------

    def pause(self) -> None:
        if not self._running.is_set():
            return
        self._running = anyio.Event()
        self.stats.pauses += 1
        self.output.clear()  # what was written ahead is not played

    def resume(self) -> None:
        if not self._running.is_set():
            self.stats.resumed += 1
            self._running.set()

    def interrupt(self) -> None:
        self.stats.interrupted = True
        self._stop()
        if self.on_interrupt is not None:
            self.on_interrupt()

    # --- playing ---------------------------------------------------------------------------

    def _queue(self, piece: str) -> None:
        if self.stats.first_piece_at is None:
            self.stats.first_piece_at = time.monotonic()
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._pieces_in.send_nowait(piece)

    def _stop(self) -> None:
        if self._stopped:
            return
        self._frozen = self._heard_now()
        self._stopped = True
        self.output.clear()
        self._running.set()
        self.floor.leave(self)
        self._done.set()

    def _heard_now(self) -> str:
        """The pieces played through, and the words of the one cut off (by the share of
        its audio that was played)."""
        played = self.output.played_s()
        said: list[str] = []
        for piece, start, end in self._spans:
            if played >= end - 0.005:
                said.append(piece)
                continue
            if played > start:
                words = piece.split()
                kept = words[: int(len(words) * (played - start) / max(end - start, 1e-6))]
                if kept:
                    said.append(" ".join(kept) + "—")
            break
        return " ".join(said).strip()

    async def run(self) -> None:
        """Synthesize while the model writes; play in turn. Ends when the reply has been
        played out or stopped."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._prepare_voice)
                tg.start_soon(self._synthesize)
                await self._play()
                tg.cancel_scope.cancel()
        except Exception:
            log.exception("%s: speaking failed", self.persona_id)
        finally:
            self.stats.played_s = self.output.played_s()
            self.stats.spoken = self.heard() or ""
            self.floor.leave(self)
            self._done.set()
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.output.close()

    async def _prepare_voice(self) -> None:
        """Page the persona's voice LoRA in while the model writes (engines that take one)."""
        try:
            prepare = getattr(self.engine, "prepare", None)
            if self.adapters and prepare is not None:
                self.stats.voice_adapter_ms = await anyio.to_thread.run_sync(
                    self._locked, prepare, self.adapters
                )
        except ContinuumError as exc:  # the voice broke: the reply is still written
            log.warning("%s: voice adapter not paged in: %s", self.persona_id, exc)
            self.stats.tts_error = str(exc)
        finally:
            self._voice_ready.set()

    def _locked(self, fn: Callable[..., object], *args: object) -> object:
        with self.engine_lock:
            return fn(*args)

    def _speak(self, piece: str) -> tuple[np.ndarray, int]:
        if self.adapters and self.engine.capabilities.adapters:
            return self._locked(  # type: ignore[return-value]
                self.engine.synthesize, piece, self.voice, self.adapters
            )
        return self._locked(self.engine.synthesize, piece, self.voice)  # type: ignore[return-value]

    async def _synthesize(self) -> None:
        rate = self.output.sample_rate
        async with self._pieces_out:
            async for piece in self._pieces_out:
                if piece is None or self._stopped:
                    break
                await self._voice_ready.wait()
                started = time.monotonic()
                try:
                    samples, piece_rate = await anyio.to_thread.run_sync(self._speak, piece)
                except ContinuumError as exc:  # the voice broke: the turn and room go on
                    log.warning("%s could not speak: %s", self.persona_id, exc)
                    self.stats.tts_error = str(exc)
                    continue
                self.stats.tts_calls += 1
                if self.stats.first_tts_ms is None:
                    self.stats.first_tts_ms = (time.monotonic() - started) * 1000
                self._audio_in.send_nowait((piece, resample(samples, piece_rate, rate)))
        self._audio_in.send_nowait(None)

    async def _play(self) -> None:
        if self.gate is not None:
            await self.gate.wait()  # the person's turn had not ended when this was written
        out = self.output
        rate = out.sample_rate
        step = max(1, round(rate * FRAME_S))
        audio: list[np.ndarray] = []  # every piece, in order (the reply's audio time line)
        total = 0  # samples in ``audio``
        pos = 0  # samples written (a pause rewinds it to what was played)
        more = True
        async with self._audio_out:
            while not self._stopped and not out.broken:
                if more and pos >= total:  # wait for the next piece
                    item = await self._audio_out.receive()
                    if item is None:
                        more = False
                        continue
                    piece, samples = item
                    start = total / rate
                    audio.append(samples)
                    total += len(samples)
                    self._spans.append((piece, start, total / rate))
                    continue
                if not self.started:
                    await self.floor.wait_turn(self)
                    if self._stopped:
                        break
                    self.started = True
                    self.stats.first_audio_at = time.monotonic()
                if not self._running.is_set():
                    await self._running.wait()
                    pos = min(total, round(out.played_s() * rate))  # the cleared part again
                    continue
                if pos >= total:  # all written: until it has been heard out
                    if out.played_s() >= total / rate - 0.005:
                        break
                    await anyio.sleep(FRAME_S / 2)
                    continue
                if pos / rate - out.played_s() > self.lead_s:
                    await anyio.sleep(FRAME_S / 2)
                    continue
                await out.write(_slice(audio, pos, pos + step))
                pos = min(total, pos + step)
                if self.on_activity is not None:
                    self.on_activity()


def _slice(pieces: list[np.ndarray], start: int, end: int) -> np.ndarray:
    """Samples ``start:end`` of the concatenation of ``pieces`` (without concatenating)."""
    out: list[np.ndarray] = []
    offset = 0
    for p in pieces:
        lo, hi = max(start - offset, 0), min(end - offset, len(p))
        if lo < hi:
            out.append(p[lo:hi])
        offset += len(p)
        if offset >= end:
            break
    return np.concatenate(out) if out else np.zeros(0, np.float32)
