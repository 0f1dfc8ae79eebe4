"""Prompt sources and recipes: every source declares its tier and its token budget.

A recipe is an ordered set of sources with an id; ``compose_turn`` runs them for one
persona's turn and hands the sections to :func:`continuum.compose.compose_prompt`.
Memory (profile snapshot, retrieval) plugs in as providers on the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Protocol

from continuum.compose import (
    CHATML,
    ChatMessage,
    ChatTemplate,
    ComposedPrompt,
    Section,
    TokenCounter,
    approx_token_count,
    compose_prompt,
)
from continuum.envelope import Participant, ParticipantKind, RoomMessage
from continuum.media.placeholder import placeholder
from continuum.persona import Persona
from continuum.sanitize import as_data, speaker_label
from continuum.tiers import Tier


@dataclass(frozen=True)
class TurnContext:
    """Everything a recipe may read to compose one persona's turn."""

    persona: Persona
    room_id: str
    history: Sequence[RoomMessage]  # before the new message, oldest first
    new_message: RoomMessage
    participants: Sequence[Participant] = ()
    guidance: str = ""  # room/session-stable guidance (INVARIANT)
    # "dm": one person and this persona (a DM); "group": anything else
    conversation: str = "group"
    profile_snapshot: str = ""  # condensed persona profile (SEMI_STABLE)
    retrieval: Sequence[str] = ()  # recalled memories for this message (VOLATILE)
    count_tokens: TokenCounter = approx_token_count
    # shared cognition (all VOLATILE, after the new message, in this order):
    analysis: str = ""  # the room's shared analysis of the new message
    build_on: Sequence[RoomMessage] = ()  # replies to the new message so far (visible text)
    instruction: str = ""  # what this pass is for: plan, render, think


class PromptSource(Protocol):
    name: str
    tier: Tier
    order: int
    budget: int | None

    def sections(self, ctx: TurnContext) -> list[Section]: ...


def text_section(
    source: PromptSource,
    text: str,
    *,
    name: str | None = None,
    order_offset: int = 0,
    budget: int | None = None,
) -> Section:
    """A system-text section carrying the source's tier, order and (unless given) budget."""
    return Section(
        name=name or source.name,
        tier=source.tier,
        order=source.order + order_offset,
        text=text,
        max_tokens=source.budget if budget is None else budget,
    )


def render_for(viewer: Persona, message: RoomMessage, *, answering: bool = False) -> ChatMessage:
    """A history message as ``viewer`` sees it. Its own messages are re-rendered exactly as
    generated (think-blocks kept, so its KV stays valid); others' show only visible text.
    ``answering``: the message being answered, with its turn-only context (an editor's
    selection) after its words — as history, the words alone."""
    if message.author.id == viewer.id:
        return ChatMessage(role="assistant", content=message.rendered_for_author())
    if message.author.kind == ParticipantKind.SYSTEM:
        return ChatMessage(role="system", content=message.text)
    # people's (and others') words are data: no template markers, no think-blocks
    who = speaker_label(message.author.name, message.author.kind == ParticipantKind.PERSONA)
    content = f"{who}: {as_data(message.text)}"
    if answering and message.context:
        content = f"{content}\n\n{as_data(message.context)}"
    if message.media == "direct":  # the model takes the audio / images themselves
        content = " ".join([content.rstrip(), *(placeholder(p) for p in message.parts)])
    return ChatMessage(role="user", content=content)


@dataclass(frozen=True)
class HistoryWindow:
    """Which history messages enter the prompt and where the stable part ends.

    Stable history is made of whole blocks of ``block_size`` messages that this persona has
    already processed (everything up to its own last message is in its KV slot), counted
    from ``start``. Over budget, ``start`` jumps forward by ``drop_blocks`` blocks at a
    time, so the prefix changes rarely and in big steps rather than every turn.
    """

    start: int
    stable_end: int
    end: int


def history_window(
    history: Sequence[RoomMessage],
    viewer_id: str,
    budget: int,
    count: TokenCounter,
    block_size: int = 8,
    drop_blocks: int = 4,
) -> HistoryWindow:
    n = len(history)
    sizes = [
        count(m.text if m.author.id != viewer_id else m.rendered_for_author()) + 8 for m in history
    ]
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + sizes[i]
    step = block_size * drop_blocks
    start = 0
    while start < n and suffix[start] > budget:
        start += step
    start = min(start, n)
    if start == n and n:  # even the newest block is over budget: keep what fits
        start = n - 1
        while start > 0 and suffix[start - 1] <= budget:
            start -= 1
        if suffix[start] > budget:
            start = n
    seen_end = start
    for i in range(n - 1, start - 1, -1):
        if history[i].author.id == viewer_id:
            seen_end = i + 1
            break
    # the message it last answered with turn-only context (an editor's selection) was in
    # its slot with that context: the slot is valid only up to it, not past it
    for i in range(seen_end - 1, start - 1, -1):
        if history[i].context and history[i].author.id != viewer_id:
            seen_end = i
            break
    stable_end = start + ((seen_end - start) // block_size) * block_size
    return HistoryWindow(start=start, stable_end=stable_end, end=n)


# --- the standard sources -------------------------------------------------------------


@dataclass(frozen=True)
class IdentitySource:
    name: str = "identity"
    tier: Tier = Tier.INVARIANT
    order: int = 0
    budget: int | None = 1024

    def sections(self, ctx: TurnContext) -> list[Section]:
        p = ctx.persona
        lines = [f"You are {p.name}. {p.identity.strip()}"]
        if p.personality:
            lines.append(f"Personality: {p.personality.strip()}")
        if p.specialty:
            lines.append(f"Specialty: {p.specialty.strip()}")
        if p.scenario:
            lines.append(f"Scenario: {p.scenario.strip()}")
        return [text_section(self, "\n".join(lines))]


@dataclass(frozen=True)
class StyleRulesSource:
    name: str = "style_rules"
    tier: Tier = Tier.INVARIANT
    order: int = 10
    budget: int | None = 512

    def sections(self, ctx: TurnContext) -> list[Section]:
        p = ctx.persona
        lines: list[str] = []
        if p.system_prompt:
            lines.append(p.system_prompt.strip())
        if p.style:
            lines.append(f"Style: {p.style.strip()}")
        lines.extend(f"- {rule.strip()}" for rule in p.rules)
        if p.example_dialogue:
            lines.append(f"Example of how you talk:\n{p.example_dialogue.strip()}")
        return [text_section(self, "\n".join(lines))]


@dataclass(frozen=True)
class GuidanceSource:
    """Session-stable guidance: how to behave in a shared room. Folded into the cached core."""

    name: str = "guidance"
    tier: Tier = Tier.INVARIANT
    order: int = 20
    budget: int | None = 512

    def sections(self, ctx: TurnContext) -> list[Section]:
        if ctx.conversation == "dm":
            base = (
                "You are in a private conversation with one person; their messages start "
                f"with their name. Reply as {ctx.persona.name} only, in a few sentences, "
                "without a name prefix."
            )
        else:
            base = (
                "You are in a group conversation. Messages from others start with their "
                f"name. Reply as {ctx.persona.name} only, in a few sentences, without a "
                "name prefix."
            )
        text = f"{base}\n{ctx.guidance.strip()}" if ctx.guidance else base
        return [text_section(self, text)]


@dataclass(frozen=True)
class ProfileSnapshotSource:
    name: str = "profile"
    tier: Tier = Tier.SEMI_STABLE
    order: int = 0
    budget: int | None = 512

    def sections(self, ctx: TurnContext) -> list[Section]:
        if not ctx.profile_snapshot:
            return []
        snapshot = as_data(ctx.profile_snapshot)
        return [text_section(self, f"What you know about yourself and others:\n{snapshot}")]


@dataclass(frozen=True)
class RosterSource:
    name: str = "roster"
    tier: Tier = Tier.SEMI_STABLE
    order: int = 10
    budget: int | None = 256

    def sections(self, ctx: TurnContext) -> list[Section]:
        others = sorted((p for p in ctx.participants if p.id != ctx.persona.id), key=lambda p: p.id)
        if not others:
            return []
        names = ", ".join(f"{as_data(p.name)} ({p.kind.value})" for p in others)
        return [text_section(self, f"In this room: {names}.")]


@dataclass(frozen=True)
class HistorySource:
    """Room history, split by :func:`history_window`: older whole blocks this persona has
    already seen are SEMI_STABLE; the rest is VOLATILE. Declares both tiers."""

    name: str = "history"
    tier: Tier = Tier.SEMI_STABLE
    order: int = 20
    budget: int | None = 3072
    block_size: int = 8
    drop_blocks: int = 4
    recent_name: ClassVar[str] = "recent_history"
    recent_tier: ClassVar[Tier] = Tier.VOLATILE

    def sections(self, ctx: TurnContext) -> list[Section]:
        window = history_window(
            ctx.history,
            ctx.persona.id,
            self.budget or 10**9,
            ctx.count_tokens,
            self.block_size,
            self.drop_blocks,
        )
        stable = tuple(
            render_for(ctx.persona, m) for m in ctx.history[window.start : window.stable_end]
        )
        recent = tuple(
            render_for(ctx.persona, m) for m in ctx.history[window.stable_end : window.end]
        )
        return [
            Section(name=self.name, tier=self.tier, order=self.order, messages=stable),
            Section(name=self.recent_name, tier=self.recent_tier, order=0, messages=recent),
        ]


@dataclass(frozen=True)
class RetrievalSource:
    """Recalled memories: VOLATILE, after the recent history and before the new message,
    where a small model uses them (bench/eval: placed after the new message, replies
    containing the recalled fact fell from 0.18 to 0). They are not kept in history, so
    the next turn evaluates again what followed them — keep the new message small: bulky
    material for one turn (an editor's selection) goes in ``Envelope.context``, which
    history does not keep."""

    name: str = "retrieval"
    tier: Tier = Tier.VOLATILE
    order: int = 10
    budget: int | None = 512

    def sections(self, ctx: TurnContext) -> list[Section]:
        if not ctx.retrieval:
            return []
        text = "Things you remember that may matter now:\n" + "\n".join(
            f"- {as_data(item.strip())}" for item in ctx.retrieval
        )
        return [text_section(self, text)]


@dataclass(frozen=True)
class PostHistorySource:
    name: str = "post_history"
    tier: Tier = Tier.VOLATILE
    order: int = 20
    budget: int | None = 256

    def sections(self, ctx: TurnContext) -> list[Section]:
        text = ctx.persona.post_history_instructions.strip()
        if not text:
            return []
        return [text_section(self, text)]


@dataclass(frozen=True)
class NewMessageSource:
    name: str = "new_message"
    tier: Tier = Tier.VOLATILE
    order: int = 30
    budget: int | None = 2048  # the message with its turn-only context (a selection)

    def sections(self, ctx: TurnContext) -> list[Section]:
        return [
            Section(
                name=self.name,
                tier=self.tier,
                order=self.order,
                messages=(render_for(ctx.persona, ctx.new_message, answering=True),),
                max_tokens=self.budget,
            )
        ]


@dataclass(frozen=True)
class LeverMenuSource:
    """The levers a persona may call on its own cognition (INVARIANT: same every turn)."""

    name: str = "levers"
    tier: Tier = Tier.INVARIANT
    order: int = 30
    budget: int | None = 512

    def sections(self, ctx: TurnContext) -> list[Section]:
        from continuum.cognition.levers import LEVER_MENU

        return [text_section(self, LEVER_MENU)]


@dataclass(frozen=True)
class SharedAnalysisSource:
    """Shared analysis, replies so far, and this pass's instruction: one system message
    after the new message. A planning pass and the render after it differ only in the
    instruction, so the render re-evaluates just that tail."""

    name: str = "shared_analysis"
    tier: Tier = Tier.VOLATILE
    order: int = 40
    budget: int | None = 768

    def sections(self, ctx: TurnContext) -> list[Section]:
        out: list[Section] = []
        if ctx.analysis:  # the analyst read people's words: its output is data too
            out.append(text_section(self, as_data(ctx.analysis)))
        if ctx.build_on:
            said = "\n".join(
                f"{speaker_label(m.author.name, m.author.kind == ParticipantKind.PERSONA)}: "
                f"{as_data(m.text)}"
                for m in ctx.build_on
            )
            out.append(
                text_section(
                    self, f"Already said about it:\n{said}", name="build_on", order_offset=10
                )
            )
        if ctx.instruction:
            out.append(
                text_section(self, ctx.instruction, name="instruction", order_offset=20, budget=256)
            )
        return out


@dataclass(frozen=True)
class Recipe:
    """A named, ordered set of prompt sources. Its id is part of the composition cache key."""

    id: str
    sources: tuple[PromptSource, ...]
    template: ChatTemplate = CHATML

    def compose(self, ctx: TurnContext) -> ComposedPrompt:
        sections = [s for source in self.sources for s in source.sections(ctx)]
        return compose_prompt(sections, template=self.template, count_tokens=ctx.count_tokens)

    def history_budget(self) -> int | None:
        return next((s.budget for s in self.sources if isinstance(s, HistorySource)), None)

    def with_history_budget(self, budget: int) -> Recipe:
        """The same recipe with less room for history (a prompt that would not fit the
        slot: long messages, an editor's selections)."""
        sources = tuple(
            replace(s, budget=budget) if isinstance(s, HistorySource) else s for s in self.sources
        )
        return Recipe(id=f"{self.id}/fit{budget}", sources=sources, template=self.template)


def persona_turn_recipe(history_budget: int = 3072, block_size: int = 8) -> Recipe:
    """The default recipe for a persona answering a room message."""
    return Recipe(
        id=f"persona-turn/v1/h{history_budget}/b{block_size}",
        sources=(
            IdentitySource(),
            StyleRulesSource(),
            GuidanceSource(),
            ProfileSnapshotSource(),
            RosterSource(),
            HistorySource(budget=history_budget, block_size=block_size),
            RetrievalSource(),
            PostHistorySource(),
            NewMessageSource(),
        ),
    )


def shared_cognition_recipe(base: Recipe | None = None) -> Recipe:
    """Persona passes in a shared-cognition room: the room's recipe (default
    :func:`persona_turn_recipe`) plus the lever menu (stable) and the shared analysis /
    replies so far / instruction (volatile tail)."""
    base = base or persona_turn_recipe()
    return Recipe(
        id=f"shared-cognition/v2+{base.id}",
        sources=(*base.sources, LeverMenuSource(), SharedAnalysisSource()),
        template=base.template,
    )


@dataclass
class MemoizedCounter:
    """Wrap a (possibly slow) tokenizer-backed counter; history strings repeat every turn."""

    count: TokenCounter
    max_entries: int = 65536
    _cache: dict[str, int] = field(default_factory=dict)

    def __call__(self, text: str) -> int:
        hit = self._cache.get(text)
        if hit is None:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            hit = self._cache[text] = self.count(text)
        return hit
