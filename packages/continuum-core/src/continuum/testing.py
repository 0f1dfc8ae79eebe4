"""Test helpers for host authors (and continuum's own tests): a scripted backend, a
recording host that speaks the real host contract, and envelope helpers.

    from continuum.testing import RecordingHost, ScriptedBackend, serve_host, text_envelope

:class:`AudioTestHost` is a voice host for tests (speech in through the runtime's ears,
spoken replies out into outputs with a playout clock).

``serve_host`` runs a host inside a live runtime and yields a :class:`HostProbe`, so a
host's tests assert on outcomes, history, persona state and memory without reaching into
the runtime's internals.

The scripted backend asserts nothing about models: it answers with what a function
returns, optionally token by token with latency, and can fail like a dead server.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import numpy as np

from continuum.backends.base import Backend, Completion, CompletionRequest, InferenceMetrics
from continuum.compose import approx_token_count
from continuum.envelope import Envelope, Participant, ParticipantKind, ReplyTarget, TextPart
from continuum.hosts.audio import AudioOutput, Ear
from continuum.hosts.base import (
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    ReplySink,
    ReplyStart,
)

Reply = Callable[[CompletionRequest], str]


class ScriptedBackend(Backend):
    """A Backend whose text comes from ``reply(request)`` (which may raise, like a dead
    backend). With ``token_delay_s`` the text streams word by word with that pause."""

    name = "scripted"

    def __init__(
        self,
        reply: Reply,
        *,
        token_delay_s: float = 0.0,
        latency_s: Callable[[], float] | None = None,
        parallel: bool | None = None,
    ) -> None:
        self.reply = reply
        self.token_delay_s = token_delay_s
        self.latency_s = latency_s
        if parallel is not None:
            self.parallel = parallel
        self.requests: list[CompletionRequest] = []

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)

    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        self.requests.append(request)
        if self.latency_s is not None:
            await anyio.sleep(self.latency_s())
        text = self.reply(request)  # may raise, like a dead backend
        if on_token:
            if self.token_delay_s:
                for piece in _pieces(text):
                    on_token(piece)
                    await anyio.sleep(self.token_delay_s)
            else:
                on_token(text)
        metrics = InferenceMetrics.nothing(self.name).model_copy(
            update={
                "prompt_tokens": approx_token_count(request.prompt),
                "evaluated_tokens": approx_token_count(request.prompt),
                "generated_tokens": max(1, approx_token_count(text)),
            }
        )
        return Completion(text=text, finish_reason="stop", metrics=metrics)


def _pieces(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        word += ch
        if ch in " \n":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


@dataclass
class RecordedReply:
    start: ReplyStart
    deltas: list[str] = field(default_factory=list)
    host_message_id: str | None = None
    aborted: str | None = None
    finished: bool = False

    @property
    def text(self) -> str:
        return "".join(self.deltas)


class _RecordingSink(ReplySink):
    def __init__(self, record: RecordedReply, host_id: str) -> None:
        self.record, self.host_id = record, host_id

    async def write(self, delta: str) -> None:
        if self.record.finished:
            raise RuntimeError("write after finish")
        self.record.deltas.append(delta)

    async def finish(self) -> str | None:
        self.record.finished = True
        self.record.host_message_id = self.host_id
        return self.host_id

    async def abort(self, reason: str) -> None:
        self.record.aborted = reason
        self.record.finished = True


class RecordingHost(HostAdapter):
    """A host that records every reply it is asked to post (deltas in order, the id it
    returned, aborts) and takes its input from ``feed`` — the real contract, no platform.
    Subclass it with another ``name`` to have several in one runtime."""

    name: ClassVar[str] = "recording"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        threads=True, edits=True, reactions=True, typing=True, streaming=True
    )
    config_model: ClassVar[type[HostConfig]] = HostConfig

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        self.replies: list[RecordedReply] = []
        self.typing_calls: list[tuple[str, str | None]] = []
        self._ids = itertools.count(1)
        self.running = anyio.Event()

    async def run(self) -> None:
        self.running.set()
        await anyio.sleep_forever()

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        record = RecordedReply(start=start)
        self.replies.append(record)
        return _RecordingSink(record, f"{self.name}-{next(self._ids)}")

    async def typing(self, reply_to: ReplyTarget, persona_id: str | None) -> None:
        self.typing_calls.append((reply_to.channel, persona_id))

    def by_persona(self, persona_id: str) -> list[RecordedReply]:
        return [r for r in self.replies if r.start.persona_id == persona_id]


def text_envelope(
    text: str,
    *,
    host: str = "test",
    room_id: str = "room",
    author: Participant | str = "sam",
    mentions: Sequence[str] = (),
    host_message_id: str | None = None,
    **extra: Any,
) -> Envelope:
    """An envelope carrying one text part, from a person unless ``author`` says otherwise."""
    if isinstance(author, str):
        author = Participant(id=author, name=author.capitalize(), kind=ParticipantKind.PERSON)
    return Envelope(
        host=host,
        room_id=room_id,
        author=author,
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host=host, channel=room_id),
        mentions=tuple(mentions),
        host_message_id=host_message_id,
        **extra,
    )


class HostProbe:
    """What a host's tests may look at in the live runtime behind it, without reaching
    into its internals: outcomes, a room's history and persona state, memory."""

    def __init__(self, runtime: Any, host: str) -> None:
        self._rt = runtime
        self.host_name = host

    @property
    def host(self) -> HostAdapter:
        """The host instance the runtime built (its port, its ready event ...)."""
        return self._rt.host(self.host_name)

    async def deliver(self, host: str, envelope: Envelope) -> Any:
        """Deliver a message as another host of the same runtime would (a person linked
        across hosts tells one thing here, asks there); returns its turn handle."""
        return await self._rt.deliver(host, envelope)

    @property
    def stats(self) -> dict[str, int]:
        """Delivered messages by outcome: answered, silent, shed, failed, cancelled,
        duplicate."""
        return self._rt.stats

    def outcomes(self) -> list[tuple[str, str | None, str]]:
        """(message text, outcome, reason) of every message delivered, oldest first."""
        return [(t.envelope.text, t.outcome, t.reason) for t in self._rt.turns.values()]

    def _room(self, room_id: str) -> Any:
        return self._rt.router.room(f"{self.host_name}:{room_id}")

    def has_room(self, room_id: str) -> bool:
        return f"{self.host_name}:{room_id}" in self._rt.router.rooms

    def history(self, room_id: str) -> list[Any]:
        """The room's history (``RoomMessage``: ``author``, ``text`` ...), oldest first."""
        return list(self._room(room_id).history) if self.has_room(room_id) else []

    def said_by_people(self, room_id: str) -> list[Any]:
        return [m for m in self.history(room_id) if m.author.kind == ParticipantKind.PERSON]

    def events(self, room_id: str) -> list[Any]:
        """The room's coordination stream so far (analysis, silences, posted replies)."""
        return list(self._room(room_id).events.recent)

    def state(self, room_id: str, persona_id: str) -> Any:
        """A persona's state in a room (energy, mood, inbox, ``reputation``)."""
        return self._room(room_id).state(persona_id)

    async def settle(self) -> None:
        """Wait until memory has consolidated everything said so far."""
        if self._rt.hippocampus is not None:
            await self._rt.hippocampus.drain()

    def recall(self, persona_id: str, query: str, k: int = 5) -> list[str]:
        """What the persona's memory holds for ``query`` (unscoped: for assertions)."""
        if self._rt.memory is None:
            return []
        return [r.text for r in self._rt.memory.recall(persona_id, query, k=k)]


@contextlib.asynccontextmanager
async def serve_host(
    host: str,
    settings: dict[str, Any] | None = None,
    *,
    data_dir: Any,
    personas: Sequence[Any] | None = None,
    backend: Backend | None = None,
    policy: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    host_classes: dict[str, type[HostAdapter]] | None = None,
) -> AsyncIterator[HostProbe]:
    """A live runtime serving ``host`` (its installed plugin, or ``host_classes``) with
    ``[hosts.<host>]`` = ``settings``, a scripted backend unless one is given, memory in
    ``data_dir``; yields a :class:`HostProbe`. The host runs as under ``continuum
    serve`` (its ``run`` in the runtime's task group) and is shut down on exit.

        async with serve_host("slack", {"port": 0}, data_dir=tmp_path) as probe:
            await probe.host.ready.wait()
            ...  # drive the platform's far side; assert on probe.history(...)
    """
    from continuum.config import parse_config
    from continuum.runtime import Runtime

    table = {
        "memory": {"data_dir": str(data_dir)},
        "policy": policy or {},
        "hosts": {host: settings or {}},
        **(config or {}),
    }
    runtime = Runtime(
        parse_config(table),
        personas=list(personas) if personas is not None else None,
        backend=backend or ScriptedBackend(lambda request: "Hello."),
        host_classes=host_classes,
    )
    async with runtime, anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(runtime.serve, handle_signals=False))
        try:
            yield HostProbe(runtime, host)
        finally:
            runtime.request_shutdown()


# --- voice: a test audio host ---------------------------------------------------------------


class TestAudioOutput(AudioOutput):
    """A persona's audio output with a simulated playout clock: what is written plays in
    real time, one sample after another (like a LiveKit track or a Discord voice client);
    ``clear`` drops what was not played yet. Records when it played (``intervals``, wall
    clock) and what it was given (``samples``)."""

    def __init__(self, start: ReplyStart, sample_rate: int = 24_000) -> None:
        self.start = start
        self.sample_rate = sample_rate
        self.chunks: list[np.ndarray] = []
        self.intervals: list[tuple[float, float]] = []  # (from, to) time.monotonic()
        self.cleared_s = 0.0
        self.closed = False
        self.first_write_wall: float | None = None  # time.time() of the first frame
        self._queued = 0.0
        self._played = 0.0
        self._last = time.monotonic()

    def _advance(self) -> None:
        now = time.monotonic()
        play = min(self._queued, now - self._last)
        if play > 0:
            self.intervals.append((self._last, self._last + play))
            self._played += play
            self._queued -= play
        self._last = now

    async def write(self, samples: np.ndarray) -> None:
        if self.first_write_wall is None:
            self.first_write_wall = time.time()
        self._advance()
        if self._queued == 0:
            self._last = time.monotonic()  # an underrun: playing resumes now
        self.chunks.append(np.asarray(samples, dtype=np.float32))
        self._queued += len(samples) / self.sample_rate

    def played_s(self) -> float:
        self._advance()
        return self._played

    def clear(self) -> None:
        self._advance()
        self.cleared_s += self._queued
        self._queued = 0.0

    async def close(self) -> None:
        self._advance()
        self.closed = True

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


class AudioTestHost(RecordingHost):
    """A voice host for tests: people speak into it (:meth:`speak`, frames paced in real
    time into the runtime's ear for them) and personas answer into
    :class:`TestAudioOutput` s (``outputs``); reply text is recorded as by
    :class:`RecordingHost`. Voice hosts and third parties test against the real runtime
    through it, without its internals."""

    name: ClassVar[str] = "audio-test"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        streaming=True, audio_in=True, audio_out=True
    )

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        self.outputs: list[TestAudioOutput] = []
        self.ears: dict[tuple[str, str], Ear] = {}

    async def open_audio(self, start: ReplyStart) -> AudioOutput:
        self.outputs.append(TestAudioOutput(start))
        return self.outputs[-1]

    async def ear(self, who: Participant | str, room: str = "voice") -> Ear:
        if isinstance(who, str):
            who = Participant(id=who, name=who.capitalize(), kind=ParticipantKind.PERSON)
        key = (who.id, room)
        if key not in self.ears:
            self.ears[key] = await self.services.ear(room, who)
        return self.ears[key]

    async def speak(
        self,
        who: Participant | str,
        samples: np.ndarray,
        rate: int,
        *,
        room: str = "voice",
        silence_after_s: float = 1.5,
        realtime: bool = True,
        frame_ms: int = 20,
    ) -> None:
        """Say ``samples`` into the room as ``who``, then stay silent a while; frames of
        ``frame_ms`` at ``rate``, paced as a microphone would give them."""
        ear = await self.ear(who, room)
        pad = np.zeros(int(rate * silence_after_s), np.float32)
        audio = np.concatenate([np.asarray(samples, np.float32), pad])
        step = max(1, rate * frame_ms // 1000)
        begun = time.monotonic()
        for i in range(0, len(audio), step):
            await ear.push(audio[i : i + step], rate)
            if realtime:
                await anyio.sleep(max(0.0, begun + (i + step) / rate - time.monotonic()))

    async def silence(self, who: Participant | str, seconds: float, room: str = "voice") -> None:
        await self.speak(who, np.zeros(0, np.float32), 16_000, room=room, silence_after_s=seconds)

    def played_by(self, persona_id: str) -> list[TestAudioOutput]:
        return [o for o in self.outputs if o.start.persona_id == persona_id]

    @property
    def spoken(self) -> list[TestAudioOutput]:
        """The outputs something was played into. A reply begun in the person's pause
        (a held turn) opens its output then; if the person talks on, it is retracted and
        its output closes having played nothing, as a host sees it."""
        return [o for o in self.outputs if o.chunks]
