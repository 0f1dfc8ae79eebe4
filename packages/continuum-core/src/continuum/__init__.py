"""continuum: local AI personas that live where people already work.

The public surface; everything here is typed and stable within a minor version.
"""

from continuum.backends.base import (
    Backend,
    Completion,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.compose import ChatMessage, ComposedPrompt, Section, compose_prompt
from continuum.composition_cache import CompositionCache
from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    ParticipantKind,
    PersonaReply,
    ReplyTarget,
    RoomMessage,
    TextPart,
)
from continuum.errors import (
    BackendBusy,
    BackendError,
    BackendTimeout,
    ContinuumError,
    MalformedEvent,
    ModelNotInstalled,
    PersonaFileError,
    PromptTooLong,
)
from continuum.hookspecs import hookimpl
from continuum.models import default_model_path
from continuum.persona import Persona, load_persona, load_personas
from continuum.prompt_sources import Recipe, TurnContext, persona_turn_recipe
from continuum.room import Room, RoomPolicy
from continuum.structured import complete_structured
from continuum.thinking import ThinkBlock, split_think
from continuum.tiers import Tier


def __getattr__(name: str) -> object:
    # The embedded backend imports llama_cpp; load it only when asked for.
    if name in {"EmbeddedBackend", "EmbeddedConfig", "EmbeddedModel"}:
        from continuum.backends import embedded

        return getattr(embedded, name)
    raise AttributeError(name)


__all__ = [
    "AudioPart",
    "Backend",
    "BackendBusy",
    "BackendError",
    "BackendTimeout",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "ComposedPrompt",
    "CompositionCache",
    "ContinuumError",
    "EmbeddedBackend",
    "EmbeddedConfig",
    "EmbeddedModel",
    "Envelope",
    "GenerationSettings",
    "ImagePart",
    "InferenceMetrics",
    "MalformedEvent",
    "ModelNotInstalled",
    "Participant",
    "ParticipantKind",
    "Persona",
    "PersonaFileError",
    "PersonaReply",
    "Priority",
    "PromptTooLong",
    "Recipe",
    "ReplyTarget",
    "Room",
    "RoomMessage",
    "RoomPolicy",
    "Section",
    "SlotKey",
    "TextPart",
    "ThinkBlock",
    "Tier",
    "TurnContext",
    "complete_structured",
    "compose_prompt",
    "default_model_path",
    "hookimpl",
    "load_persona",
    "load_personas",
    "persona_turn_recipe",
    "split_think",
]
