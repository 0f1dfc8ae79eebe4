"""Shared analysis: one base-model pass that derives the objective understanding of a room
message once, so each persona only renders what its specialty adds.

The analysis is grammar-constrained JSON (:class:`SharedAnalysis`) produced on the room's
own analyst slot with no adapters. Its prompt is composed stable-first like any persona's:
the analyst instructions and the roster of specialties are INVARIANT, the recent
conversation and the new message VOLATILE, so consecutive analyses reuse the analyst's KV.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.backends.base import (
    Backend,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.compose import ChatMessage, ComposedPrompt, Section, TokenCounter, compose_prompt
from continuum.envelope import ParticipantKind, RoomMessage
from continuum.media.placeholder import media_of, placeholder
from continuum.persona import Persona
from continuum.sanitize import as_data, speaker_label
from continuum.tiers import Tier

log = logging.getLogger("continuum.cognition.analysis")

ANALYST_SLOT_PREFIX = "_analyst"


class SharedAnalysis(BaseModel):
    """The objective foundation every persona renders from."""

    model_config = ConfigDict(frozen=True)

    said: str = Field(default="", description="what was said, in one sentence")
    key_concepts: tuple[str, ...] = ()
    relevant_context: str = ""
    suggested_angles: tuple[str, ...] = ()
    specialists: tuple[str, ...] = ()  # persona ids whose specialty could add signal
    deeper: tuple[str, ...] = ()  # follow-up analyses personas asked for (requestDeeperAnalysis)
    parsed: bool = True  # False: the model's JSON did not validate; fields are a fallback

    @property
    def adds_nothing(self) -> bool:
        """Nothing beyond what was said (the gate alone decided, or the analysis failed):
        rendered, it would only repeat the message the prompt already holds."""
        return not (self.key_concepts or self.relevant_context or self.suggested_angles
                    or self.deeper)  # fmt: skip

    def render(self) -> str:
        """The analysis as the personas see it in their prompt."""
        lines = [f"Shared analysis of the new message: {self.said}".rstrip()]
        if self.key_concepts:
            lines.append("Key concepts: " + ", ".join(self.key_concepts))
        if self.relevant_context:
            lines.append(f"Context: {self.relevant_context}")
        if self.suggested_angles:
            lines.append("Angles: " + "; ".join(self.suggested_angles))
        lines.extend(f"Deeper look: {d}" for d in self.deeper)
        return "\n".join(lines)

    @property
    def topics(self) -> list[str]:
        return [c.lower() for c in self.key_concepts]


class AnalysisResult(BaseModel):
    analysis: SharedAnalysis
    composed: ComposedPrompt
    metrics: InferenceMetrics
    generated_text: str


def analysis_schema(persona_ids: Sequence[str]) -> dict[str, Any]:
    """JSON schema for the grammar: short bounded fields (a small model must not ramble),
    specialists drawn from this room's persona ids only."""
    short = {"type": "string", "maxLength": 120}
    item = {"type": "string", "maxLength": 30}
    specialists: dict[str, Any] = {"type": "array", "maxItems": max(1, len(persona_ids))}
    specialists["items"] = (
        {"type": "string", "enum": sorted(persona_ids)} if persona_ids else {"type": "string"}
    )
    return {
        "type": "object",
        "properties": {
            "said": short,
            "key_concepts": {"type": "array", "items": item, "minItems": 1, "maxItems": 5},
            "relevant_context": short,
            "suggested_angles": {
                "type": "array",
                "items": {"type": "string", "maxLength": 60},
                "maxItems": 3,
            },
            "specialists": specialists,
        },
        "required": ["said", "key_concepts", "relevant_context", "suggested_angles", "specialists"],
    }


ANALYST_INSTRUCTIONS = (
    "You are the analyst of a group conversation. You do not speak in the room. For the "
    "newest message, write the objective understanding the participants share: what was "
    "said, its key concepts, the context that matters, angles worth taking, and which of "
    "the specialists below could add real signal. Be brief and factual. Answer in JSON."
)


def _roster(personas: Sequence[Persona]) -> str:
    lines = ["Specialists in this room:"]
    for p in sorted(personas, key=lambda p: p.id):
        what = p.specialty or p.identity.split(".")[0]
        extra = f" ({', '.join(p.expertise)})" if p.expertise else ""
        lines.append(f"- {p.id}: {p.name}, {what}{extra}")
    return "\n".join(lines)


def compose_analysis_prompt(
    personas: Sequence[Persona],
    history: Sequence[RoomMessage],
    new_message: RoomMessage,
    count: TokenCounter,
    focus: str | None = None,
    recent: int = 6,
) -> ComposedPrompt:
    """Analyst prompt: instructions + roster (INVARIANT), last few visible messages and the
    new one (VOLATILE). Think-blocks never appear: only visible text is shown."""

    def line(m: RoomMessage) -> ChatMessage:
        role = "system" if m.author.kind == ParticipantKind.SYSTEM else "user"
        who = speaker_label(m.author.name, m.author.kind == ParticipantKind.PERSONA)
        content = f"{who}: {as_data(m.text)}"
        if m.media == "direct":  # the model hears / sees the parts themselves
            content = " ".join([content.rstrip(), *(placeholder(p) for p in m.parts)])
        return ChatMessage(role=role, content=content)

    sections = [
        Section(name="analyst", tier=Tier.INVARIANT, order=0, text=ANALYST_INSTRUCTIONS),
        Section(name="roster", tier=Tier.INVARIANT, order=10, text=_roster(personas)),
        Section(
            name="recent",
            tier=Tier.VOLATILE,
            order=0,
            messages=tuple(line(m) for m in history[-recent:]),
            max_tokens=768,
        ),
        Section(name="new_message", tier=Tier.VOLATILE, order=10, messages=(line(new_message),)),
    ]
    if focus:
        sections.append(
            Section(
                name="focus",
                tier=Tier.VOLATILE,
                order=20,
                text=f"Look deeper at this angle only: {as_data(focus)}",
                max_tokens=128,
            )
        )
    return compose_prompt(sections, count_tokens=count)


def analyst_slot(room_id: str) -> SlotKey:
    """The room's analyst runs on the base model: no adapters, ever."""
    return SlotKey(persona_id=f"{ANALYST_SLOT_PREFIX}:{room_id}", adapters=())


async def analyze(
    backend: Backend,
    room_id: str,
    personas: Sequence[Persona],
    history: Sequence[RoomMessage],
    new_message: RoomMessage,
    *,
    max_tokens: int = 256,
    focus: str | None = None,
) -> AnalysisResult:
    """Run the shared analysis (priority ANALYSIS: it goes before any queued render)."""
    composed = compose_analysis_prompt(
        personas, history, new_message, backend.count_tokens, focus=focus
    )
    request = CompletionRequest(
        prompt=composed.prompt,
        slot=analyst_slot(room_id),
        settings=GenerationSettings(max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0),
        json_schema=analysis_schema([p.id for p in personas]),
        priority=Priority.ANALYSIS,
        media=media_of(composed.prompt, [*history, new_message]),
    )
    completion = await backend.complete(request)
    analysis = parse_analysis(completion.text, new_message, {p.id for p in personas})
    return AnalysisResult(
        analysis=analysis,
        composed=composed,
        metrics=completion.metrics,
        generated_text=completion.text,
    )


def parse_analysis(text: str, new_message: RoomMessage, persona_ids: set[str]) -> SharedAnalysis:
    """Validate the model's JSON; a cut-off or invalid analysis falls back to the message
    itself (the room goes on; the fallback is marked ``parsed=False``)."""
    try:
        data = json.loads(text, strict=False)
        if not isinstance(data, dict):
            raise ValueError("analysis is not a JSON object")
        data["specialists"] = [s for s in data.get("specialists", []) if s in persona_ids]
        for name in ("key_concepts", "suggested_angles", "specialists"):  # small models repeat
            items = data.get(name)
            if isinstance(items, list):
                data[name] = list(dict.fromkeys(i for i in items if isinstance(i, str) and i))
        data = {k: v for k, v in data.items() if k in SharedAnalysis.model_fields}
        return SharedAnalysis.model_validate(data)
    except (ValueError, ValidationError) as exc:
        log.warning("shared analysis did not validate (%s); using the message as is", exc)
        said = new_message.text.strip().replace("\n", " ")[:160]
        return SharedAnalysis(said=f"{new_message.author.name} said: {said}", parsed=False)
