"""A scripted Backend for pure orchestration tests (no model behaviour is asserted with it)."""

from __future__ import annotations

from collections.abc import Callable

from continuum.backends.base import Backend, Completion, CompletionRequest, InferenceMetrics
from continuum.compose import approx_token_count


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, reply: Callable[[CompletionRequest], str]) -> None:
        self.reply = reply
        self.requests: list[CompletionRequest] = []

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)

    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        self.requests.append(request)
        text = self.reply(request)  # may raise, like a dead backend
        if on_token:
            on_token(text)
        metrics = InferenceMetrics.nothing(self.name).model_copy(
            update={"prompt_tokens": 1, "evaluated_tokens": 1, "generated_tokens": 1}
        )
        return Completion(text=text, finish_reason="stop", metrics=metrics)
