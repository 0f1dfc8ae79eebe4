"""Deterministic extraction: what a person says about themselves, in their own words.

A 135M model does not reliably pull facts out of a chat line; people, though, state facts
about themselves in a small number of shapes: first-person statements ("my sister just
moved to Lisbon", "I'm allergic to peanuts", "we live in Porto"), preferences ("my usual
order is..."), commitments ("I'll finish the slides by Monday"), and corrections ("actually
we're in Valencia now, not Porto"). Each such sentence is kept verbatim, attributed to its
speaker — nothing is paraphrased, so nothing is invented. Questions, greetings and
acknowledgements are not facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["fact", "preference", "commitment", "correction"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_FIRST_PERSON = re.compile(
    r"\b(i|i'm|im|i am|i've|i'd|i'll|my|mine|me|we|we're|we've|we'll|our|ours|us)\b",
    re.IGNORECASE,
)
_CORRECTION = re.compile(
    r"\b(actually|correction|i meant|no longer|not anymore|anymore|switched|changed|moved"
    r" again|now,? not|instead of|scratch that|update:|turns out|rescheduled|postponed|"
    r"moved (to|from)|pushed (back|to)|brought forward|(is|are|was) now|now (on|at|in)|"
    r"cancell?ed|called off)\b",
    re.IGNORECASE,
)
_NOT_X = re.compile(r"\bnot\s+(?:the\s+|in\s+|on\s+|at\s+)?([A-Za-z][\w-]{2,}(?:\s[A-Z][\w-]+)?)")
_COMMITMENT = re.compile(
    r"\b(i'll|i will|i promise|promise|i'm going to|i am going to|i plan to|remind me)\b",
    re.IGNORECASE,
)
# a commitment asked for as a reminder ("can you remind me to call the dentist on
# Friday?"): a question, and still a commitment worth keeping
_REMINDER = re.compile(r"\b(remind me|don't let me forget|make sure i)\b", re.IGNORECASE)
# pleasantries about the weather, the day, how people are: not facts worth a recall slot
_CHIT_CHAT = re.compile(
    r"\b(weather|sunny|rainy|rain(ed|ing)?|lovely day|nice day|beautiful day|hot today|"
    r"cold today|how are you|how's it going|have a (good|nice|great)|long week|"
    r"happy (friday|monday)|good to see)\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[A-Za-z][A-Za-z']*|\d+")
_FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at for with by from is are was were be been has have "
    "had do does did will would can could should".split()
)
_PREFERENCE = re.compile(
    r"\b(i (really )?(love|like|prefer|hate|enjoy|can't stand)|my (usual|favou?rite)|"
    r"i'm (a )?vegan|i'm vegetarian|allergic|i don't (eat|drink))\b",
    re.IGNORECASE,
)
# the whole message is small talk: no fact in it
_SMALL_TALK = re.compile(
    r"^\W*(ok(ay)?|k|cool|nice|great|thanks?( you)?( all| everyone)?|thx|ty|lol|haha|yes|no|"
    r"yep|nope|sure|bye|good (night|morning)|morning|hi|hello|hey|welcome|sounds good|"
    r"got it|noted|same|agreed|have a (good|nice) (day|weekend|one))\W*$",
    re.IGNORECASE,
)
# a personal statement carries something specific (a name, a number, a concrete noun)
_SPECIFIC = re.compile(r"\b([A-Z][a-z]+|\d+|[a-z]{5,})\b")


@dataclass(frozen=True)
class Extracted:
    text: str  # the speaker's own sentence
    kind: Kind
    salience: float
    replaces: tuple[str, ...] = ()  # words a correction says are no longer true ("Porto")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def self_contained(text: str) -> bool:
    """A sentence that says something on its own: a few words, with lower-case words
    among them (a verb, at least) — not a bare list of names or numbers."""
    words = _WORDS.findall(text)
    if len(words) < 3:
        return False
    plain = [w for w in words if w[0].islower() and not w.isdigit()]
    if len(plain) < 2 or len(plain) < len(words) * 0.3:
        return False
    return any(w.lower() in _FUNCTION_WORDS or w.endswith(("s", "ed")) for w in plain)


def extract(text: str) -> list[Extracted]:
    """The personal facts, preferences, commitments and corrections in a person's message
    (verbatim sentences). Empty for questions (a request to be reminded of something is
    a commitment) and small talk. A correction need not be about the speaker: a change
    of plan reported about someone else ("Dana's flight was moved to Thursday")
    supersedes what it corrects too."""
    if _SMALL_TALK.match(text.strip()):
        return []
    out: list[Extracted] = []
    previous = ""
    for sentence in sentences(text):
        words = sentence.split()
        before, previous = previous, sentence
        if len(words) < 4:
            continue
        if _REMINDER.search(sentence) and _SPECIFIC.search(sentence):
            out.append(Extracted(sentence, "commitment", 0.8))
            continue
        if sentence.rstrip().endswith("?") or _CHIT_CHAT.search(sentence):
            continue
        correction = bool(_CORRECTION.search(sentence)) and self_contained(sentence)
        if not correction and not _FIRST_PERSON.search(sentence):
            continue
        if not _SPECIFIC.search(sentence):
            continue
        if len(words) < 8 and before:  # "I go every Tuesday." needs what came before
            sentence = f"{before} {sentence}"
        if _CORRECTION.search(sentence):
            replaced = tuple(m.group(1) for m in _NOT_X.finditer(sentence))
            out.append(Extracted(sentence, "correction", 0.9, replaced))
        elif _COMMITMENT.search(sentence):
            out.append(Extracted(sentence, "commitment", 0.8))
        elif _PREFERENCE.search(sentence):
            out.append(Extracted(sentence, "preference", 0.75))
        else:
            out.append(Extracted(sentence, "fact", 0.7))
    return out
