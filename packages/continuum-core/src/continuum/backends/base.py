"""The Backend interface: async completion with streaming, cancellation, structured output
and per-call metrics. The embedded llama.cpp backend and server backends implement it."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import BaseModel, ConfigDict, Field

from continuum.compose import CHATML
from continuum.envelope import AudioPart, ImagePart
from continuum.media.capabilities import ModelCapabilities
from continuum.persona import Persona

metrics_log = logging.getLogger("continuum.metrics")


class Priority(IntEnum):
    """Lower runs first. A shared-analysis pass queued after renders still runs before them."""

    ANALYSIS = 0
    RENDER = 10
    BACKGROUND = 20


class SlotKey(BaseModel):
    """Where a persona's KV state lives: one slot per (persona, room, adapter set).

    A persona's history differs per room, so each room gets its own slot (``room`` None:
    one slot shared across rooms). KV computed under one LoRA set is wrong under another,
    so adapters are part of the key. Slots with the same adapter set may share a common
    token prefix (a persona's invariant prefix entering a new room)."""

    model_config = ConfigDict(frozen=True)

    persona_id: str
    adapters: tuple[str, ...] = ()
    room: str | None = None

    @classmethod
    def for_persona(
        cls,
        persona: Persona,
        active_adapters: frozenset[str] | None = None,
        room: str | None = None,
    ) -> SlotKey:
        adapters = persona.adapter_set if active_adapters is None else active_adapters
        return cls(persona_id=persona.id, adapters=tuple(sorted(adapters)), room=room)


class AdapterUse(BaseModel):
    """A LoRA adapter active for one request: its id (as in the slot key), its GGUF file
    and its scale."""

    model_config = ConfigDict(frozen=True)

    id: str
    path: str | None = None
    scale: float = 1.0
    pinned: bool = False


class GenerationSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(default=200, gt=0)
    # generate at least this many tokens before end-of-generation may be sampled (stop
    # strings still end it); ignored for grammar-constrained output
    min_tokens: int = Field(default=0, ge=0)
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0)
    repeat_penalty: float = Field(default=1.1, ge=0.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def for_persona(cls, persona: Persona, **overrides: Any) -> GenerationSettings:
        fields = {
            k: v
            for k, v in persona.model.model_dump().items()
            if v is not None and k in cls.model_fields
        }
        fields.update(overrides)
        return cls(**fields)


class CompletionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    slot: SlotKey | None = None  # None: a scratch slot, no reuse expected
    settings: GenerationSettings = GenerationSettings()
    json_schema: dict[str, Any] | None = None  # grammar-constrained JSON output
    # The only strings in ``prompt`` that may become control (special) tokens: the chat
    # template's own markers. Everything else is tokenized as text, so a person typing
    # "<|im_start|>system" cannot open a system turn.
    control: tuple[str, ...] = CHATML.markers
    # the LoRA adapters this request runs under; their ids are the slot key's adapters
    adapters: tuple[AdapterUse, ...] = ()
    priority: int = Priority.RENDER
    # raw audio / images behind the prompt's media placeholders (continuum.media.placeholder),
    # for a model that takes them; a backend that cannot says each one plainly instead
    media: dict[str, AudioPart | ImagePart] = Field(default_factory=dict)
    queue_timeout_s: float | None = 120.0
    timeout_s: float | None = 300.0


FinishReason = Literal["stop", "length", "cancelled"]


class InferenceMetrics(BaseModel):
    """What one call cost, by the backend's own counts."""

    model_config = ConfigDict(frozen=True)

    backend: str
    slot_id: int | None
    prompt_tokens: int
    reused_tokens: int
    evaluated_tokens: int
    generated_tokens: int
    queue_ms: float
    prompt_eval_ms: float
    ttft_ms: float
    decode_tokens_per_s: float
    total_ms: float
    restored_from_hibernation: bool = False
    moved: bool = False  # the persona's KV had to be rebuilt elsewhere (its server failed)
    adapters: tuple[str, ...] = ()  # the LoRA adapters the request ran under
    adapter_ms: float = 0.0  # time spent paging adapters in for this request
    media_tokens: int = 0  # prompt positions filled by audio / image embeddings (evaluated)
    media_ms: float = 0.0  # encoding the media and decoding their embeddings

    @classmethod
    def nothing(cls, backend: str) -> InferenceMetrics:
        """Metrics of a call that did no inference (a status reply, a scripted backend)."""
        zero = dict.fromkeys(
            ("prompt_tokens", "reused_tokens", "evaluated_tokens", "generated_tokens"), 0
        )
        times = dict.fromkeys(
            ("queue_ms", "prompt_eval_ms", "ttft_ms", "decode_tokens_per_s", "total_ms"), 0.0
        )
        return cls(backend=backend, slot_id=None, **zero, **times)

    def log(self) -> None:
        metrics_log.info(
            "backend=%s slot=%s prompt=%d reused=%d evaluated=%d generated=%d "
            "queue_ms=%.1f ttft_ms=%.1f decode_tps=%.1f",
            self.backend,
            self.slot_id,
            self.prompt_tokens,
            self.reused_tokens,
            self.evaluated_tokens,
            self.generated_tokens,
            self.queue_ms,
            self.ttft_ms,
            self.decode_tokens_per_s,
        )


class Completion(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: FinishReason
    metrics: InferenceMetrics


class TokenStream:
    """Text deltas as they are generated; ``completion`` is set once the stream ends."""

    def __init__(self, receive: MemoryObjectReceiveStream[str]) -> None:
        self._receive = receive
        self.completion: Completion | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._receive.__aiter__()


class Backend(ABC):
    """An inference backend. Implementations must be safe to call from many tasks at once
    (they queue internally) and must leave a persona's slot consistent when cancelled."""

    name: str = "backend"
    # True when requests on different slots run at the same time (a server with several
    # slots): the room then lets the others start while the lead is still streaming.
    parallel: bool = False

    @abstractmethod
    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        """Run one completion. ``on_token`` is called in the caller's event loop per delta.
        Cancelling the calling task stops generation at the next token."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs on this backend (for prompt budgets)."""

    @property
    def capabilities(self) -> ModelCapabilities:
        """What the model takes besides text (audio, images): text only unless declared."""
        return ModelCapabilities()

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    @asynccontextmanager
    async def stream(self, request: CompletionRequest) -> AsyncIterator[TokenStream]:
        """``async with backend.stream(req) as tokens: async for delta in tokens: ...``.
        Leaving the block early cancels generation."""
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        tokens = TokenStream(receive)

        async def run() -> None:
            async with send:
                tokens.completion = await self.complete(request, on_token=send.send_nowait)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield tokens
            finally:
                if tokens.completion is None:
                    tg.cancel_scope.cancel()
