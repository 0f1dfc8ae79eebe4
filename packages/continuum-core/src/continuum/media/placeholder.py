"""Where a message's raw audio or image sits in a prompt, for a model that takes it.

A prompt is a string, so media travel beside it: the composed prompt holds a placeholder
``<__media:ID__>`` (ID: the first 16 hex digits of the SHA-256 of the bytes) where the
part belongs, and the request carries the parts by ID (``CompletionRequest.media``). The
backend puts the model's own media tokens there. People cannot type a placeholder: text
from outside is escaped (:func:`continuum.sanitize.as_data`), so only the engine makes one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from continuum.envelope import AudioPart, ImagePart, RoomMessage

MediaPart = AudioPart | ImagePart
PLACEHOLDER = re.compile(r"<__media:([0-9a-f]{16})__>")
MISSING = "(media that is no longer available)"


def media_id(part: MediaPart) -> str:
    return hashlib.sha256(part.data or b"").hexdigest()[:16]


def placeholder(part: MediaPart) -> str:
    return f"<__media:{media_id(part)}__>"


def placeholders_in(prompt: str) -> list[str]:
    """The media IDs a prompt holds, in order."""
    return PLACEHOLDER.findall(prompt) if "<__media:" in prompt else []


def without_media(prompt: str) -> str:
    """The prompt for a model that cannot take media: each placeholder said plainly."""
    return PLACEHOLDER.sub(MISSING, prompt) if "<__media:" in prompt else prompt


def unreadable_note(part: MediaPart) -> str:
    """What a persona reads instead of a part its model could not take."""
    if isinstance(part, AudioPart):
        return "(sent a voice message that could not be played)"
    return "(shared an image that could not be opened)"


def media_of(prompt: str, messages: Iterable[RoomMessage]) -> dict[str, MediaPart]:
    """The raw parts behind ``prompt``'s placeholders, found in ``messages`` (newest last)."""
    wanted = set(placeholders_in(prompt))
    found: dict[str, MediaPart] = {}
    if not wanted:
        return found
    for message in reversed(list(messages)):
        if message.media == "direct":
            for part in message.parts:
                if (mid := media_id(part)) in wanted:
                    found.setdefault(mid, part)
        if not wanted - found.keys():
            break
    return found
