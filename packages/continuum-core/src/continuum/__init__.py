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
    ConfigError,
    ContinuumError,
    MalformedEvent,
    ModelNotInstalled,
    PersonaFileError,
    PluginConflict,
    PromptTooLong,
    UnknownMessage,
    UnknownPlugin,
)
from continuum.events import EventLog, RoomEvent
from continuum.hookspecs import hookimpl
from continuum.hosts.base import (
    BufferedReplySink,
    CommandEvent,
    CommandResult,
    DeleteEvent,
    EditEvent,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostEvent,
    HostServices,
    MembershipEvent,
    MessageEvent,
    PersonaCard,
    ReactionEvent,
    ReplySink,
    ReplyStart,
    TurnHandle,
    split_message,
)
from continuum.memory.engine import MemoryEngine
from continuum.models import default_model_path
from continuum.persona import Persona
from continuum.persona_files import load_persona, load_personas
from continuum.prompt_sources import Recipe, TurnContext, persona_turn_recipe
from continuum.room import Room, RoomPolicy
from continuum.router import RoomRouter
from continuum.structured import complete_structured
from continuum.thinking import ThinkBlock, split_think
from continuum.tiers import Tier


def __getattr__(name: str) -> object:
    # The embedded backend imports llama_cpp (an extra); load it only when asked for. The
    # runtime and config are loaded lazily too (they pull in every plugin).
    if name in {"EmbeddedBackend", "EmbeddedConfig", "EmbeddedModel"}:
        from continuum.backends import embedded

        return getattr(embedded, name)
    if name in {"Runtime", "Turn"}:
        from continuum import runtime

        return getattr(runtime, name)
    if name in {"ContinuumConfig", "load_config"}:
        from continuum import config

        return getattr(config, name)
    raise AttributeError(name)


__all__ = [
    "AudioPart",
    "Backend",
    "BackendBusy",
    "BackendError",
    "BackendTimeout",
    "BufferedReplySink",
    "ChatMessage",
    "CommandEvent",
    "CommandResult",
    "Completion",
    "CompletionRequest",
    "ComposedPrompt",
    "CompositionCache",
    "ConfigError",
    "ContinuumConfig",
    "ContinuumError",
    "DeleteEvent",
    "EditEvent",
    "EmbeddedBackend",
    "EmbeddedConfig",
    "EmbeddedModel",
    "Envelope",
    "EventLog",
    "GenerationSettings",
    "HostAdapter",
    "HostCapabilities",
    "HostConfig",
    "HostEvent",
    "HostServices",
    "ImagePart",
    "InferenceMetrics",
    "MalformedEvent",
    "MembershipEvent",
    "MemoryEngine",
    "MessageEvent",
    "ModelNotInstalled",
    "Participant",
    "ParticipantKind",
    "Persona",
    "PersonaCard",
    "PersonaFileError",
    "PersonaReply",
    "PluginConflict",
    "Priority",
    "PromptTooLong",
    "ReactionEvent",
    "Recipe",
    "ReplySink",
    "ReplyStart",
    "ReplyTarget",
    "Room",
    "RoomEvent",
    "RoomMessage",
    "RoomPolicy",
    "RoomRouter",
    "Runtime",
    "Section",
    "SlotKey",
    "TextPart",
    "ThinkBlock",
    "Tier",
    "Turn",
    "TurnContext",
    "TurnHandle",
    "UnknownMessage",
    "UnknownPlugin",
    "complete_structured",
    "compose_prompt",
    "default_model_path",
    "hookimpl",
    "load_config",
    "load_persona",
    "load_personas",
    "persona_turn_recipe",
    "split_message",
    "split_think",
]
