"""People's words are data, never instructions to the engine.

Two defences, used together:

- :func:`as_data` neutralises, in text that came from outside (people's messages,
  host-supplied names, recalled memories, other personas' replies, persona files), what a
  model would read as structure: chat-template markers (``<|im_start|>``, ``<|eot_id|>``
  — any ``<|...|>``) and think-block tags. The text stays readable; it just cannot open a
  system turn or pose as a persona's private thought. The raw text stays in the room's
  history for the host.
- The backends tokenize a prompt so that only the template's own markers become control
  tokens (``CompletionRequest.control``); every other byte is tokenized as text.
"""

from __future__ import annotations

import re

# Any chat-template control marker spelled in text: <|im_start|>, <|eot_id|>, <|user|> ...
_MARKER = re.compile(r"<\|([^|<>\s]{0,40})\|>")
_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)
_JOINER = "\u2060"  # WORD JOINER: invisible, and breaks the marker for every tokenizer
# How a persona's speech is labelled in other personas' prompts ("Maya (persona): ..."):
# broken in every text from outside, so no person (named "Maya", or "Maya (persona)")
# and no line typed inside a message can pose as a persona.
PERSONA_TAG = "(persona)"
_TAG = re.compile(r"\((?=persona\))", re.IGNORECASE)


def escape_markers(text: str) -> str:
    """``<|im_start|>`` → ``<\u2060|im_start|\u2060>``: reads the same, parses as text."""
    if "<|" not in text:
        return text
    return _MARKER.sub(lambda m: f"<{_JOINER}|{m.group(1)}|{_JOINER}>", text)


def neutralise_think(text: str) -> str:
    """``<think>``/``</think>`` typed by someone → ``(think)``/``(/think)``."""
    if "<" not in text:
        return text
    return _THINK_TAG.sub(lambda m: f"({m.group(1)}think)", text)


def break_media_markers(text: str) -> str:
    """A media placeholder (``<__media:…__>``) or llama.cpp's ``<__media__>`` typed by
    someone is broken the same way: only the engine places media in a prompt."""
    return text.replace("<__", f"<{_JOINER}__") if "<__" in text else text


def break_persona_tag(text: str) -> str:
    """``(persona)`` typed by someone → ``(\u2060persona)``: reads the same, is not the tag."""
    return _TAG.sub("(" + _JOINER, text) if "(" in text else text


def as_data(text: str) -> str:
    """Text from outside the engine, made safe to place in any prompt."""
    return neutralise_think(escape_markers(break_media_markers(break_persona_tag(text))))


def speaker_label(name: str, is_persona: bool) -> str:
    """Who said a line, as other personas read it: a persona's name carries
    :data:`PERSONA_TAG`, which nobody else's name or words can spell."""
    return f"{as_data(name)} {PERSONA_TAG}" if is_persona else as_data(name)
