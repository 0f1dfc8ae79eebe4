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


class RelevanceGate:
    """Scores personas against a message. Weights are plain attributes: tune per room."""

    def __init__(
        self,
        embedder: Embedder | None,
        threshold: float = 0.25,
        w_similarity: float = 1.0,
        w_expertise: float = 0.35,
        w_analyst: float = 0.05,  # a small analyst's pick is noisy: a nudge, not a vote
        w_reputation: float = 0.3,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.w_similarity = w_similarity
        self.w_expertise = w_expertise
        self.w_analyst = w_analyst
        self.w_reputation = w_reputation
        self._persona_vectors: dict[str, tuple[str, np.ndarray]] = {}
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
        self.message_vector(message)

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
            vec = self.persona_vector(persona)
            similarity = 0.0
            if vec is not None and message_vec is not None:
                similarity = float(vec @ message_vec)
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
