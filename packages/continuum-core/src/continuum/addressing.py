"""Who a message speaks to: one rule for every host.

A persona is *addressed* when a message speaks to it, not when it merely names it:
``@maya`` anywhere; its name opening a sentence ("Maya, how …", "Hey Maya: …", "Maya and
Otto, thoughts?", or as speech-to-text writes it, "Maya and Otto please look") or closing
one ("thanks, Maya", "what do you think, Maya?"). "I told Maya yesterday that …" names her
without addressing her. Hosts add what only the platform
knows — a reply to one of a persona's messages, a thread a persona started — through
``HostServices.addressed``, which resolves both from the persisted message map, so they
hold after a restart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

# words that may stand before a name that opens a sentence ("hey Maya, ...")
_OPENERS = {"hey", "hi", "hello", "ok", "okay", "so", "and", "thanks", "thank", "you", "yo",
            "dear", "please", "oh", "well", "also", "but"}  # fmt: skip
_SENTENCES = re.compile(r"[^.!?\n]+[.!?]*")
_CLAUSE_BREAK = re.compile(r"[,:;]|\s[-–—]\s")
_WORD = re.compile(r"[\w'’-]+")
MAX_CLAUSE_WORDS = 4  # "Maya and Otto, ..." / "what do you think, Maya?"


class Named(Protocol):
    id: str
    name: str


def _spoken_to(clause: str, pattern: re.Pattern[str], opening: bool) -> bool:
    words = _WORD.findall(clause)
    if not pattern.search(clause):
        return False
    if len(words) <= MAX_CLAUSE_WORDS:
        return True
    if opening:  # "Hey Maya what do you think": the name right after greeting words
        lead = 0
        while lead < len(words) and words[lead].lower() in _OPENERS:
            lead += 1
        return lead < len(words) and bool(pattern.fullmatch(words[lead]))
    return False


def _opening_list(text: str, personas: Sequence[Named]) -> list[tuple[int, str]]:
    """Names listed at a sentence's opening, unpunctuated as speech-to-text writes them:
    "Maya and David please check the link" speaks to both (the clause rule sees one)."""
    by_word = {w.lower(): p.id for p in personas for w in (p.name, p.id) if _WORD.fullmatch(w)}
    found: list[tuple[int, str]] = []
    for sentence in _SENTENCES.finditer(text):
        words = list(_WORD.finditer(sentence.group()))
        i = 0
        while i < len(words) and words[i].group().lower() in _OPENERS:
            i += 1
        while i < len(words) and words[i].group().lower() in by_word:
            found.append((sentence.start() + words[i].start(), by_word[words[i].group().lower()]))
            i += 1
            if i < len(words) and words[i].group().lower() in ("and", "or"):
                i += 1
    return found


def addressed(text: str, personas: Sequence[Named]) -> tuple[str, ...]:
    """The ids of the personas ``text`` speaks to, in the order they are named."""
    found: list[tuple[int, str]] = _opening_list(text, personas)
    for p in personas:
        names = sorted({p.name, p.id}, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        pattern = re.compile(rf"(?<![\w@])(?:{alternatives})(?![\w])", re.IGNORECASE)
        at = re.search(rf"(?<![\w.])@(?:{alternatives})(?![\w])", text, re.IGNORECASE)
        if at:
            found.append((at.start(), p.id))
            continue
        for sentence in _SENTENCES.finditer(text):
            clauses = _CLAUSE_BREAK.split(sentence.group())
            first, last = clauses[0], clauses[-1]
            if _spoken_to(first, pattern, opening=True) or (
                len(clauses) > 1 and _spoken_to(last, pattern, opening=False)
            ):
                m = pattern.search(sentence.group())
                found.append((sentence.start() + (m.start() if m else 0), p.id))
                break
    return tuple(dict.fromkeys(pid for _, pid in sorted(found)))
