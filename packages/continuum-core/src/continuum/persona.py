"""Personas: who speaks. The model and its validation; files are read by
:mod:`continuum.persona_files` (TOML) and :mod:`continuum.character_cards` (cards)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.errors import PersonaFileError

PERSONA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class VoiceSpec(BaseModel):
    """How the persona sounds when a host speaks for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = "espeak-ng"  # a registered TTS engine (continuum.plugins.tts_engines)
    voice: str = "en-us"  # the engine's voice name (espeak-ng: "en-us+f3", "en-gb+m2", ...)
    speed: float = Field(default=1.0, gt=0.2, lt=4.0)
    pitch: int = Field(default=50, ge=0, le=99)  # espeak-ng's 0..99 scale; others map it
    adapter: str | None = None  # a voice LoRA id in the persona's genome


class AdapterRef(BaseModel):
    """A LoRA adapter in the persona's genome (paged in by the genome engine). ``path`` is
    a GGUF LoRA file (relative paths: to the persona file); without one, the adapter is
    looked up by id in the genome registry (``continuum genome add``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: Literal["skill", "voice"] = "skill"
    path: str | None = None
    scale: float = Field(default=1.0, ge=-4.0, le=4.0)
    pinned: bool = False  # never paged out


class LearningSpec(BaseModel):
    """Whether the persona's own turns become training pairs for its genome (opt-in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # the pairs' domain when a turn's topics name none of the persona's expertise
    domain: str = Field(default="general", pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")
    # turns in DMs and private rooms too: their prompts hold what someone told only this
    # persona, and weights trained on them would speak of it in every room (off: public
    # rooms only)
    private_rooms: bool = False


class ModelOverrides(BaseModel):
    """Per-persona generation settings; unset fields use the backend defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None  # a GGUF path or a server model name
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    max_tokens: int | None = Field(default=None, gt=0, le=8192)
    seed: int | None = None


# Longest text a persona field may hold (characters): a persona is a few pages, not a book;
# a 60 MB description would otherwise be counted token by token on every turn.
MAX_FIELD_CHARS = 32_000
MAX_PERSONA_FILE_BYTES = 1 << 20
Text = Annotated[str, Field(max_length=MAX_FIELD_CHARS)]


class Persona(BaseModel):
    """A persona: identity, voice and settings, the same on every host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=PERSONA_ID_PATTERN)
    name: str = Field(min_length=1, max_length=80)
    identity: str = Field(
        min_length=1, max_length=MAX_FIELD_CHARS, description="who they are: description, backstory"
    )
    personality: Text = ""
    scenario: Text = ""
    style: Text = ""
    rules: tuple[Text, ...] = Field(default=(), max_length=64)
    system_prompt: Text = ""
    specialty: Text = ""
    expertise: tuple[Annotated[str, Field(max_length=80)], ...] = Field(default=(), max_length=64)
    greeting: Text = ""
    alternate_greetings: tuple[Text, ...] = Field(default=(), max_length=256)
    example_dialogue: Text = ""
    post_history_instructions: Text = ""
    avatar_url: str | None = None
    voice: VoiceSpec = VoiceSpec()
    adapters: tuple[AdapterRef, ...] = ()
    learning: LearningSpec = LearningSpec()
    model: ModelOverrides = ModelOverrides()
    tags: tuple[str, ...] = ()
    creator: Text = ""
    creator_notes: Text = ""
    version: Text = ""
    lorebook: dict[str, Any] | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)

    @property
    def adapter_set(self) -> frozenset[str]:
        """The skill adapters active on this persona's text turns: they shape its KV, so
        they are part of its slot key. (Voice adapters act on speech, not on text.)"""
        return frozenset(a.id for a in self.adapters if a.kind == "skill")


def _field_of(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(root)"


def persona_from_mapping(data: dict[str, Any], source: Path | str) -> Persona:
    """Validate a mapping into a Persona, naming ``source`` and the first bad field."""
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PersonaFileError(source, _field_of(first), first["msg"] + more) from exc
