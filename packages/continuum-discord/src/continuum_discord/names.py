"""Persona names Discord accepts as a webhook username.

Discord refuses a webhook name that contains "discord" or "clyde" (any case), and takes 1
to 80 characters. Like PluralKit, the words are broken with a hair space (U+200A) after
their first letter, so the name still reads the same; a one-letter name is padded with an
invisible character and a long one cut at 80.
"""

from __future__ import annotations

import re

_REFUSED = re.compile(r"(c)(lyde)|(d)(iscord)", re.IGNORECASE)
HAIR_SPACE = "\u200a"
_PAD = "\u17b5"  # Khmer vowel inherent Aa: invisible, counts as a character
MAX_NAME = 80


def webhook_name(name: str) -> str:
    """``name`` made acceptable to Discord as a webhook username."""
    clean = " ".join(name.split()) or "persona"

    def _break(m: re.Match[str]) -> str:
        head, tail = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return head + HAIR_SPACE + tail

    clean = _REFUSED.sub(_break, clean)
    if len(clean) < 2:
        clean += _PAD
    return clean[:MAX_NAME]
