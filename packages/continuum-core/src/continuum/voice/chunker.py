"""Cut a streaming reply into pieces to speak: at sentence ends, and at a clause break once
a piece is long enough that waiting for the full stop would cost more than a pause."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—–]\s")


class SpeechChunker:
    def __init__(self, min_clause_words: int = 4, max_words: int = 24) -> None:
        self.min_clause_words = min_clause_words
        self.max_words = max_words
        self._buf = ""

    def feed(self, delta: str) -> list[str]:
        """Text in as it streams; the pieces that are ready to speak out."""
        self._buf += delta
        out = []
        while piece := self._cut():
            out.append(piece)
        return out

    def flush(self) -> str | None:
        piece, self._buf = self._buf.strip(), ""
        return piece or None

    def _cut(self) -> str | None:
        m = _SENTENCE_END.search(self._buf)
        if m is None:
            for c in _CLAUSE_END.finditer(self._buf):
                if len(self._buf[: c.end()].split()) >= self.min_clause_words:
                    m = c
                    break
        if m is None and len(self._buf.split()) > self.max_words:  # no punctuation at all
            words = re.finditer(r"\S+", self._buf)
            cut = [w.end() for _, w in zip(range(self.max_words), words, strict=False)][-1]
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            return piece or None
        if m is None:
            return None
        piece, self._buf = self._buf[: m.end()].strip(), self._buf[m.end() :]
        return piece or None
