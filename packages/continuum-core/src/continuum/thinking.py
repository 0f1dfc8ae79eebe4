"""Think-blocks: stripped from what others see, emitted as events for the memory engine."""

from __future__ import annotations

import re
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
