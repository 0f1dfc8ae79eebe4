"""compose_prompt: sections tagged by tier, rendered stable-first into a byte-stable prompt.

The three tiers are always rendered in the same order (INVARIANT, SEMI_STABLE, VOLATILE)
and sections sort deterministically inside each, so everything that did not change since
the last turn renders to the same bytes — and the backend's KV prefix cache reuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum.sanitize import escape_markers
from continuum.tiers import Tier

TokenCounter = Callable[[str], int]
Role = Literal["system", "user", "assistant"]


def approx_token_count(text: str) -> int:
    """A tokenizer-free estimate (~4 UTF-8 bytes per token) for budgets without a model."""
    return (len(text.encode("utf-8")) + 3) // 4


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class Section(BaseModel):
    """One piece of a prompt from one source: either system text or chat messages."""

    model_config = ConfigDict(frozen=True)

    name: str
    tier: Tier
    order: int = 0
    text: str = ""
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int | None = Field(default=None, gt=0)

    @property
    def is_empty(self) -> bool:
        return not self.text and not self.messages


@dataclass(frozen=True)
class ChatTemplate:
    """How messages become text. Rendered by continuum, deterministically — no timestamps,
    no re-ordering, nothing dropped from earlier turns — so the prefix stays byte-stable."""

    name: str
    open: str  # format with {role}
    close: str
    system_joiner: str = "\n\n"
    # the strings that are control tokens; only these may be tokenized as special tokens
    markers: tuple[str, ...] = ()

    def message(self, role: str, content: str) -> str:
        return self.open.format(role=role) + content + self.close

    def generation_prompt(self) -> str:
        return self.open.format(role="assistant")


CHATML = ChatTemplate(
    name="chatml",
    open="<|im_start|>{role}\n",
    close="<|im_end|>\n",
    markers=("<|im_start|>", "<|im_end|>"),
)
TEMPLATES = {CHATML.name: CHATML}


class SectionReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    tier: Tier
    tokens: int
    truncated: bool


class ComposedPrompt(BaseModel):
    """A prompt plus where its tiers end: prompt[:invariant_len] and prompt[:stable_len]
    are the prefixes that must not change between turns."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    invariant_len: int
    stable_len: int
    invariant_sha256: str
    sections: tuple[SectionReport, ...]
    control: tuple[str, ...] = CHATML.markers  # the template's markers (control tokens)

    def tokens_in(self, tier: Tier) -> int:
        return sum(s.tokens for s in self.sections if s.tier == tier)

    @property
    def volatile_text(self) -> str:
        return self.prompt[self.stable_len :]


def _truncate_text(text: str, budget: int, count: TokenCounter) -> str:
    """Longest head of ``text`` within ``budget`` tokens (cut at a line or word boundary)."""
    lo, hi = 0, len(text)
    while lo < hi:  # largest prefix length that fits
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    head = text[:lo]
    cut = max(head.rfind("\n"), head.rfind(" "))
    return head[:cut].rstrip() if cut > lo // 2 else head


CUT_NOTE = "[… {words} words cut here: the message was too long to read whole …]"


def _truncate_middle(text: str, budget: int, count: TokenCounter) -> str:
    """Head and tail of ``text`` within ``budget`` tokens, with a visible note in the
    middle saying how much was cut — never a silent drop."""
    words = text.split(" ")
    lo, hi = 0, len(words) // 2
    best = CUT_NOTE.format(words=len(words))
    while lo <= hi:  # the largest head/tail that fits (binary search on words kept)
        mid = (lo + hi) // 2
        note = CUT_NOTE.format(words=len(words) - 2 * mid)
        candidate = " ".join(words[:mid]) + f"\n{note}\n" + " ".join(words[len(words) - mid :])
        if count(candidate) <= budget:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def _fit(section: Section, count: TokenCounter) -> tuple[Section, int, bool]:
    """Apply a section's token budget: text keeps its head; messages keep the newest, and
    a newest message that alone is over budget keeps its head and tail with a visible
    note (a message is never silently removed from the prompt)."""
    if section.messages:
        sizes = [count(m.content) for m in section.messages]
        total = sum(sizes)
        if section.max_tokens is None or total <= section.max_tokens:
            return section, total, False
        keep = list(section.messages)
        while len(keep) > 1 and total > section.max_tokens:
            total -= sizes[len(section.messages) - len(keep)]
            keep.pop(0)
        if total > section.max_tokens:
            last = keep[-1]
            cut = _truncate_middle(last.content, section.max_tokens, count)
            keep[-1] = last.model_copy(update={"content": cut})
            total = count(cut)
        return section.model_copy(update={"messages": tuple(keep)}), total, True
    tokens = count(section.text)
    if section.max_tokens is None or tokens <= section.max_tokens:
        return section, tokens, False
    text = _truncate_text(section.text, section.max_tokens, count)
    return section.model_copy(update={"text": text}), count(text), True


def order_sections(sections: Sequence[Section]) -> list[Section]:
    """Tier first, then the source's declared order, then its name: total and stable."""
    names = [s.name for s in sections]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate section names: {dupes}")
    return sorted(sections, key=lambda s: (s.tier, s.order, s.name))


def compose_prompt(
    sections: Sequence[Section],
    *,
    template: ChatTemplate = CHATML,
    count_tokens: TokenCounter = approx_token_count,
    add_generation_prompt: bool = True,
) -> ComposedPrompt:
    """Render sections stable-first. Consecutive text sections share one system message;
    a messages section closes it. Returns the prompt and its tier boundaries."""
    parts: list[str] = []
    length = 0
    reports: list[SectionReport] = []
    system_open = False
    boundary = {Tier.INVARIANT: 0, Tier.SEMI_STABLE: 0}

    def emit(piece: str) -> None:
        nonlocal length
        parts.append(piece)
        length += len(piece)

    def close_system() -> None:
        nonlocal system_open
        if system_open:
            emit(template.close)
            system_open = False

    for section in order_sections(sections):
        fitted, tokens, truncated = _fit(section, count_tokens)
        reports.append(
            SectionReport(name=section.name, tier=section.tier, tokens=tokens, truncated=truncated)
        )
        if fitted.is_empty:
            continue
        # content never carries a template marker: only the template's own become tokens
        if fitted.messages:
            close_system()
            for message in fitted.messages:
                emit(template.message(message.role, escape_markers(message.content)))
        else:
            if system_open:
                emit(template.system_joiner)
            else:
                emit(template.open.format(role="system"))
                system_open = True
            emit(escape_markers(fitted.text))
        for tier in (Tier.INVARIANT, Tier.SEMI_STABLE):
            if section.tier <= tier:
                boundary[tier] = length
    close_system()
    if add_generation_prompt:
        emit(template.generation_prompt())
    prompt = "".join(parts)
    invariant_len = boundary[Tier.INVARIANT]
    stable_len = max(boundary[Tier.SEMI_STABLE], invariant_len)
    return ComposedPrompt(
        prompt=prompt,
        invariant_len=invariant_len,
        stable_len=stable_len,
        invariant_sha256=hashlib.sha256(prompt[:invariant_len].encode("utf-8")).hexdigest(),
        sections=tuple(reports),
        control=template.markers,
    )
