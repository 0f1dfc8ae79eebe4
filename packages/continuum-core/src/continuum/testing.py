"""Test helpers for host authors (and continuum's own tests): a scripted backend, a
recording host that speaks the real host contract, and envelope helpers.

    from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

The scripted backend asserts nothing about models: it answers with what a function
returns, optionally token by token with latency, and can fail like a dead server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio

from continuum.backends.base import Backend, Completion, CompletionRequest, InferenceMetrics
from continuum.compose import approx_token_count
from continuum.envelope import Envelope, Participant, ParticipantKind, ReplyTarget, TextPart
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
