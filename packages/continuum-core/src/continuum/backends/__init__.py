"""Inference backends: the Backend interface and its implementations."""

from continuum.backends.base import (
    Backend,
    Completion,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
    TokenStream,
)

__all__ = [
    "Backend",
    "Completion",
    "CompletionRequest",
    "GenerationSettings",
    "InferenceMetrics",
    "Priority",
    "SlotKey",
    "TokenStream",
]
