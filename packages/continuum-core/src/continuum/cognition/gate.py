"""The relevance gate: does this persona's specialty add signal to this message?

A cheap, deterministic score per persona from the shared analysis — specialty similarity
to the message (sentence embeddings), expertise words in the message or its key concepts,
the analyst's pick of specialists, a direct mention, and earned domain reputation —
against a bar that rises when the persona is tired or overwhelmed. Personas that pass
then plan (and may still withhold through a lever); the rest stay silent with the reason
on the stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict

from continuum.cognition.analysis import SharedAnalysis
from continuum.cognition.state import PersonaState
from continuum.memory.embeddings import Embedder
from continuum.persona import Persona

WORD = re.compile(r"[a-z0-9]+")


class GateScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    persona_id: str
    similarity: float  # cosine of specialty vs message + concepts
    expertise_hits: tuple[str, ...]
    picked_by_analyst: bool
    mentioned: bool
    reputation: float  # domain score in [0, 1], 0.5 = no evidence
    score: float
    bar: float

    @property
    def passes(self) -> bool:
        return self.mentioned or self.score >= self.bar

    def reason(self) -> str:
        parts = [f"score {self.score:.2f} vs bar {self.bar:.2f}"]
        parts.append(f"similarity {self.similarity:.2f}")
        if self.expertise_hits:
            parts.append("expertise " + ",".join(self.expertise_hits))
        if self.picked_by_analyst:
            parts.append("picked by the analysis")
        return "; ".join(parts)


def _stem(word: str) -> str:
    for suffix in ("ing", "ers", "ies", "es", "ed", "er", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def specialty_text(persona: Persona) -> str:
    return " ".join(
        x for x in (persona.specialty, " ".join(persona.expertise), persona.identity) if x
    )


def specialty_phrases(persona: Persona) -> list[str]:
    """What a persona knows, phrase by phrase: its specialty and each expertise word."""
    return [x for x in (persona.specialty, *persona.expertise) if x.strip()]


class RelevanceGate:
    """Scores personas against a message. Weights are plain attributes: tune per room.

    ``mode="phrases"`` (the default): a persona's similarity is the best of the message's
    cosine with its whole specialty text and with each of its specialty phrases (one
    phrase that fits, "whale" for a marine biologist, is not diluted by the rest of a
    long identity). With ``stand_out`` > 0 the quorum's best fit must stand out from the
    room by that much (:meth:`best_fit_ok`), else nobody is made to answer.
    ``mode="single"``: one cosine with the whole text (the gate before issue 21; kept for
    bench/eval/gate_held_out.py)."""

    def __init__(
        self,
        embedder: Embedder | None,
        threshold: float = 0.25,
        w_similarity: float = 1.0,
        w_expertise: float = 0.35,
        w_analyst: float = 0.05,  # a small analyst's pick is noisy: a nudge, not a vote
        w_reputation: float = 0.3,
        mode: Literal["phrases", "single"] = "phrases",
        stand_out: float = 0.0,
    ) -> None:
        self.mode = mode
        self.stand_out = stand_out  # the quorum's best fit: this far above the room median
        self.embedder = embedder
        self.threshold = threshold
        self.w_similarity = w_similarity
        self.w_expertise = w_expertise
        self.w_analyst = w_analyst
        self.w_reputation = w_reputation
        self._persona_vectors: dict[str, tuple[str, np.ndarray]] = {}
        self._phrase_vectors: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        self._message: tuple[str, np.ndarray] | None = None

    async def prepare(self, personas: Sequence[Persona], message: str) -> None:
        """Embed the message (and any persona not embedded yet) in a worker thread: a
        sentence-model pass takes milliseconds of CPU that would otherwise stall every
        other room on the event loop. :meth:`score` then finds the vectors ready."""
        if self.embedder is not None:
            await anyio.to_thread.run_sync(self._embed_all, list(personas), message)

    def _embed_all(self, personas: list[Persona], message: str) -> None:
        for persona in personas:
            self.persona_vector(persona)
            if self.mode == "phrases":
                self.phrase_vectors(persona)
        self.message_vector(message)

    def phrase_vectors(self, persona: Persona) -> np.ndarray | None:
        if self.embedder is None:
            return None
        phrases = tuple(specialty_phrases(persona))
        if not phrases:
            return None
        cached = self._phrase_vectors.get(persona.id)
        if cached is None or cached[0] != phrases:
            cached = (phrases, self.embedder.embed(list(phrases)))
            self._phrase_vectors[persona.id] = cached
        return cached[1]

    def similarity(self, persona: Persona, message_vec: np.ndarray | None) -> float:
        vec = self.persona_vector(persona)
        if vec is None or message_vec is None:
            return 0.0
        best = float(vec @ message_vec)
        if self.mode == "phrases":
            phrases = self.phrase_vectors(persona)
            if phrases is not None:
                best = max(best, float((phrases @ message_vec).max()))
        return best

    def best_fit_ok(self, scores: Sequence[GateScore], candidate: GateScore) -> bool:
        """May the quorum hand the turn to ``candidate`` (the best below the bar)? Only if
        it fits clearly better than the room as a whole; else nobody fits and the room
        stays silent rather than answer with an arbitrary persona."""
        if self.mode == "single" or candidate.mentioned:
            return True
        values = sorted(s.score for s in scores)
        median = values[len(values) // 2]
        return candidate.score - median >= self.stand_out

    def message_vector(self, message: str) -> np.ndarray | None:
        if self.embedder is None:
            return None
        cached = self._message
        if cached is None or cached[0] != message:
            cached = self._message = (message, self.embedder.embed([message])[0])
        return cached[1]

    def persona_vector(self, persona: Persona) -> np.ndarray | None:
        if self.embedder is None:
            return None
        text = specialty_text(persona)
        cached = self._persona_vectors.get(persona.id)
        if cached is None or cached[0] != text:
            cached = (text, self.embedder.embed([text])[0])
            self._persona_vectors[persona.id] = cached
        return cached[1]

    def score(
        self,
        personas: Sequence[Persona],
        message: str,
        analysis: SharedAnalysis,
        states: dict[str, PersonaState],
        mentions: Sequence[str] = (),
    ) -> list[GateScore]:
        """Scores, best first."""
        topic_text = " ".join((message, " ".join(analysis.key_concepts)))
        words = {_stem(w) for w in WORD.findall(topic_text.lower())}
        # the message alone: a small analyst's concepts can be noise, so they only count
        # through exact expertise words
        message_vec = self.message_vector(message)
        out: list[GateScore] = []
        for persona in personas:
            state = states.get(persona.id) or PersonaState(persona_id=persona.id)
            similarity = self.similarity(persona, message_vec)
            hits = tuple(e for e in persona.expertise if _stem(e.lower()) in words)
            picked = persona.id in analysis.specialists
            reputation = state.reputation.domain_score(analysis.topics)
            score = (
                self.w_similarity * similarity
                + self.w_expertise * min(len(hits), 2)
                + (self.w_analyst if picked else 0.0)
                + self.w_reputation * (reputation - 0.5)
            )
            out.append(
                GateScore(
                    persona_id=persona.id,
                    similarity=round(similarity, 4),
                    expertise_hits=hits,
                    picked_by_analyst=picked,
                    mentioned=persona.id in mentions,
                    reputation=round(reputation, 4),
                    score=round(score, 4),
                    bar=round(self.threshold + state.engagement_bar(), 4),
                )
            )
        out.sort(key=lambda g: (not g.mentioned, -g.score, g.persona_id))
        return out


_ACKNOWLEDGEMENT = re.compile(
    r"^\W*((ok(ay)?|k|kk|cool|nice|great|awesome|perfect|thanks?|thank you|thx|ty|cheers|"
    r"lol|haha|yes|yep|yeah|no|nope|sure|got it|noted|sounds good|will do|bye|goodbye|"
    r"good ?night|see (you|ya)|later|that'?s all|all good|have a (good|nice|great) \w+|"
    r"(for|for now|for today|everyone|all|folks|guys)|\W)+)\W*$",
    re.IGNORECASE,
)


def needs_answer(text: str) -> bool:
    """False for acknowledgements and sign-offs ("ok", "thanks, that's all for today!",
    "bye everyone"): a room owes them no reply, so no persona is forced to speak."""
    stripped = text.strip()
    if not stripped or "?" in stripped:
        return bool(stripped)
    return not (len(stripped.split()) <= 8 and _ACKNOWLEDGEMENT.match(stripped))
