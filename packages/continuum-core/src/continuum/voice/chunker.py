"""Cut a streaming reply into pieces to speak: at sentence ends, and at a clause break once
a piece is long enough that waiting for the full stop would cost more than a pause."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—–]\s")


class SpeechChunker:
    """The first piece is cut early (a short clause, or ``first_max_words`` words): it is
    what the person waits for; later pieces follow whole sentences and long clauses,
    which sound better and are spoken while the next ones are written."""

    def __init__(
        self, min_clause_words: int = 4, max_words: int = 24, first_max_words: int = 8
    ) -> None:
        self.min_clause_words = min_clause_words
        self.max_words = max_words
        self.first_max_words = first_max_words
        self._buf = ""
        self._first = True

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
        piece = self._cut_piece()
        if piece:
            self._first = False
        return piece

    def _cut_piece(self) -> str | None:
        min_clause = max(2, self.min_clause_words - 1) if self._first else self.min_clause_words
        longest = self.first_max_words if self._first else self.max_words
        m = _SENTENCE_END.search(self._buf)
        if m is None:
            for c in _CLAUSE_END.finditer(self._buf):
                if len(self._buf[: c.end()].split()) >= min_clause:
                    m = c
                    break
        if m is None and len(self._buf.split()) > longest:  # no punctuation in reach
            words = re.finditer(r"\S+", self._buf)
            cut = [w.end() for _, w in zip(range(longest), words, strict=False)][-1]
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            return piece or None
        if m is None:
            return None
        piece, self._buf = self._buf[: m.end()].strip(), self._buf[m.end() :]
        return piece or None
