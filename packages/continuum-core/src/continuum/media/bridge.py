"""The media bridge: a message's audio and images become text for a model that cannot take
them (speech-to-text, a description), and stay raw for one that can.

Every bridged message records which path ran — ``direct`` (the model takes the parts),
``stt`` (audio transcribed), ``describe`` (images described by a vision model), ``told``
(an image with no describer: the persona is told plainly that it cannot see it) — and how
many speech-to-text and description calls it cost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio

from continuum.envelope import AudioPart, ContentPart, ImagePart, TextPart
from continuum.errors import ContinuumError, MediaTooLong
from continuum.media.capabilities import ModelCapabilities

log = logging.getLogger("continuum.media")

MediaPath = Literal["text", "direct", "stt", "describe", "told"]


def _unplayable(exc: ContinuumError) -> str:
    """The line a persona reads for a voice message that could not be heard: named, so the
    rest of the message (a question typed beside it) still goes on."""
    if isinstance(exc, MediaTooLong):
        return "(sent a voice message too long to listen to)"
    return "(sent a voice message that could not be played)"


class Transcriber(Protocol):
    """Speech-to-text. Called in a worker thread (it may block)."""

    def transcribe(self, audio: AudioPart) -> str: ...


class Describer(Protocol):
    """An image described in a sentence or two. Called in a worker thread."""

    def describe(self, image: ImagePart) -> str: ...


@dataclass(frozen=True)
class Bridged:
    """A message's parts as the history line a text model reads, and how it was made."""

    text: str
    path: MediaPath
    stt_calls: int = 0
    describe_calls: int = 0


class MediaBridge:
    """Turns a message's parts into text for models that cannot take them."""

    def __init__(
        self, transcriber: Transcriber | None = None, describer: Describer | None = None
    ) -> None:
        self.transcriber = transcriber
        self.describer = describer

    async def render(
        self, parts: tuple[ContentPart, ...], capabilities: ModelCapabilities
    ) -> Bridged:
        audio = [p for p in parts if isinstance(p, AudioPart)]
        images = [p for p in parts if isinstance(p, ImagePart)]
        text = "\n".join(p.text for p in parts if isinstance(p, TextPart))
        if not audio and not images:
            return Bridged(text, "text")
        # direct: the model takes them, and the bytes are here (a part with only a URL the
        # host could not fetch is bridged instead)
        audio_direct = not audio or (capabilities.audio_in and all(p.data for p in audio))
        images_direct = not images or (capabilities.vision_in and all(p.data for p in images))
        if audio_direct and images_direct:
            return Bridged(text, "direct")
        lines = [text] if text else []
        path: MediaPath = "direct"
        stt = described = 0
        if audio and not audio_direct:
            for part in audio:
                if part.transcript is not None:  # the host heard it already
                    heard = part.transcript
                elif self.transcriber is not None:
                    stt += 1
                    try:
                        heard = await anyio.to_thread.run_sync(self.transcriber.transcribe, part)
                    except ContinuumError as exc:  # empty, not audio, truncated, too long
                        log.info("a voice message could not be heard: %s", exc)
                        lines.append(_unplayable(exc))
                        path = "told" if path == "direct" else path
                        continue
                else:  # said plainly, never silently dropped
                    lines.append("(sent a voice message you cannot hear)")
                    path = "told"
                    continue
                lines.append(heard.strip() or "(inaudible)")
                path = "stt"
        if images and not images_direct:
            for part in images:
                if self.describer is None:
                    lines.append("(shared an image you cannot see)")
                    path = "told" if path == "direct" else path
                    continue
                described += 1
                try:
                    seen = await anyio.to_thread.run_sync(self.describer.describe, part)
                except ContinuumError as exc:  # a truncated or hostile image
                    log.info("an image could not be described: %s", exc)
                    lines.append("(shared an image that could not be opened)")
                    path = "told" if path == "direct" else path
                    continue
                lines.append(f"(shared an image: {seen.strip()})")
                path = "describe" if path in ("direct", "told") else path
        return Bridged("\n".join(lines), path, stt, described)
