"""Think-blocks: stripped from what others see, emitted as events for the memory engine."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from continuum.envelope import utc_now

# An unclosed <think> (a reply cut by max_tokens) hides the rest of the text.
_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL)


class ThinkBlock(BaseModel):
    """One think-block a persona produced, for the hippocampus to consolidate."""

    model_config = ConfigDict(frozen=True)

    persona_id: str
    message_id: str
    text: str
    timestamp: datetime = Field(default_factory=utc_now)


def split_think(text: str) -> tuple[str, list[str]]:
    """Return (visible text, think texts). Visible text has the blocks removed and is trimmed."""
    thinks = [m.group(1).strip() for m in _THINK.finditer(text)]
    visible = _THINK.sub("", text)
    visible = re.sub(r"\n{3,}", "\n\n", visible).strip()
    return visible, [t for t in thinks if t]


_OPEN = "<think>"


def strip_speaker_prefix(text: str, names: Sequence[str]) -> str:
    """Small models often start a reply with 'Name:' (theirs or another's); others should
    not see it. The author's raw text keeps it, so its own KV stays reusable."""
    for name in sorted(names, key=len, reverse=True):
        if text.startswith(f"{name}:"):
            return text[len(name) + 1 :].lstrip()
    return text


def visible_text(raw: str, names: Sequence[str] = ()) -> str:
    """What others see of a generated reply: think-blocks removed, trimmed, no 'Name:'."""
    visible, _ = split_think(raw)
    return strip_speaker_prefix(visible, names)


class VisibleStream:
    """Turns raw generated deltas into visible deltas, in order, as they come: text inside
    ``<think>`` (closed or not) never comes out, a partial ``<think`` tag, trailing
    whitespace and a possible leading ``Name:`` are held back until they are decided. What
    it emits is always a prefix of :func:`visible_text` of the whole reply."""

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names = tuple(names)
        self.raw = ""
        self.emitted = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        return self._advance(final=False)

    def close(self) -> str:
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if final:
            current = visible_text(self.raw, self.names)
        else:
            text = self.raw
            for k in range(len(_OPEN) - 1, 0, -1):  # hold a partial opening tag
                if text.endswith(_OPEN[:k]):
                    text = text[:-k]
                    break
            current, _ = split_think(text)
            current = current.lstrip()
            if any(f"{n}:".startswith(current) for n in self.names) and current:
                return ""  # could still become a speaker prefix
            current = strip_speaker_prefix(current, self.names).rstrip()
        if not current.startswith(self.emitted):
            return ""  # never contradict what was already shown
        out = current[len(self.emitted) :]
        self.emitted = current
        return out
