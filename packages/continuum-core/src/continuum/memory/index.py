"""The recall index: SQLite (FTS5 BM25 + embeddings + metadata), kept consistent with the
journal files. Files are the source of truth; ``sync`` reconciles additions, hand edits
(by mtime/size, confirmed by content hash) and deletions, and ``rebuild`` starts over.

Recall is hybrid: BM25 over the entry text, cosine similarity of sentence embeddings,
metadata filters (partner, topic, emotion, time range), then recency decay and a small
salience boost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from continuum.memory.embeddings import Embedder
from continuum.memory.journal import JournalEntry, JournalFileError, JournalStore

log = logging.getLogger("continuum.memory")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    persona TEXT NOT NULL,
    path TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    ts REAL NOT NULL,
    partners TEXT NOT NULL,
    topics TEXT NOT NULL,
    emotions TEXT NOT NULL,
    salience REAL NOT NULL,
    summary TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_persona_ts ON entries(persona, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(body, tokenize='porter unicode61');
"""


class RecallFilters(BaseModel):
    model_config = ConfigDict(frozen=True)

    partner: str | None = None
    topic: str | None = None
    emotion: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Recalled(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry_id: str
    score: float
    bm25: float
    similarity: float
    timestamp: datetime
    partners: tuple[str, ...]
    topics: tuple[str, ...]
    summary: str
    text: str

    def render(self) -> str:
        when = self.timestamp.strftime("%Y-%m-%d")
        who = f" with {', '.join(self.partners)}" if self.partners else ""
        return f"({when}{who}) {self.text}"


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    broken: list[str] = field(default_factory=list)


@dataclass
class _Matrix:
    rowids: np.ndarray
    vectors: np.ndarray
    ts: np.ndarray
    salience: np.ndarray


STOPWORDS = frozenset(
    "a an and are as at be but by can did do does for from had has have he her him his how i "
    "if in into is it its me my of on or our she so that the their them then there they this "
    "to was we were what when where which who why will with you your".split()
)


def _fts_query(text: str) -> str:
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 and w not in STOPWORDS]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def _saturate(bm25: float, k: float = 4.0) -> float:
    """Map FTS5's bm25 (negative, lower is better) to [0, 1) without letting one weak hit
    look perfect just because it is the best of a poor lot."""
    relevance = max(0.0, -bm25)
    return relevance / (relevance + k)


class MemoryIndex:
    def __init__(
        self, db_path: Path | str, embedder: Embedder, half_life_days: float = 30.0
    ) -> None:
        self.embedder = embedder
        self.half_life_days = half_life_days
        self.db_path = str(db_path)
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        if self.db_path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._matrices: dict[str, _Matrix] = {}

    def close(self) -> None:
        self._db.close()

    # --- keeping the index consistent with the files -----------------------------------

    def sync(self, store: JournalStore) -> SyncReport:
        report = SyncReport()
        persona = store.persona_id
        with self._lock:
            known = {
                row[0]: row[1:]
                for row in self._db.execute(
                    "SELECT path, mtime_ns, size, sha256, id FROM entries WHERE persona = ?",
                    (persona,),
                )
            }
            seen: set[str] = set()
            for path in store.paths():
                key = str(path)
                seen.add(key)
                stat = path.stat()
                old = known.get(key)
                if old and old[0] == stat.st_mtime_ns and old[1] == stat.st_size:
                    report.unchanged += 1
                    continue
                data = path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                if old and old[2] == sha:
                    self._db.execute(
                        "UPDATE entries SET mtime_ns = ?, size = ? WHERE path = ?",
                        (stat.st_mtime_ns, stat.st_size, key),
                    )
                    report.unchanged += 1
                    continue
                try:
                    entry = store.read_path(path)
                except JournalFileError as exc:  # a bad hand edit: keep going, report it
                    log.warning("skipping %s", exc)
                    report.broken.append(str(exc))
                    continue
                self._upsert(entry, path, stat.st_mtime_ns, stat.st_size, sha)
                if old:
                    report.updated += 1
                else:
                    report.added += 1
            for key in set(known) - seen:
                self._delete_where("path = ?", key)
                report.removed += 1
        return report

    def add(self, entry: JournalEntry, path: Path) -> None:
        data = path.read_bytes()
        stat = path.stat()
        with self._lock:
            self._upsert(
                entry, path, stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest()
            )

    def add_many(self, items: list[tuple[JournalEntry, Path]]) -> None:
        """Bulk insert in one transaction with one embedding batch."""
        vectors = self.embedder.embed([e.searchable_text for e, _ in items])
        with self._lock:
            self._db.execute("BEGIN")
            for (entry, path), vector in zip(items, vectors, strict=True):
                data = path.read_bytes()
                stat = path.stat()
                self._upsert(
                    entry,
                    path,
                    stat.st_mtime_ns,
                    stat.st_size,
                    hashlib.sha256(data).hexdigest(),
                    vector,
                    transaction=False,
                )
            self._db.execute("COMMIT")

    def _upsert(
        self,
        entry: JournalEntry,
        path: Path,
        mtime_ns: int,
        size: int,
        sha: str,
        vector: np.ndarray | None = None,
        transaction: bool = True,
    ) -> None:
        if vector is None:
            vector = self.embedder.embed([entry.searchable_text])[0]
        if transaction:
            self._db.execute("BEGIN")
        try:
            self._delete_where("id = ?", entry.id, transaction=False)
            cur = self._db.execute(
                "INSERT INTO entries (id, persona, path, mtime_ns, size, sha256, ts, partners,"
                " topics, emotions, salience, summary, text, embedding)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    entry.id,
                    entry.persona,
                    str(path),
                    mtime_ns,
                    size,
                    sha,
                    entry.timestamp.timestamp(),
                    json.dumps(entry.partners),
                    json.dumps(entry.topics),
                    json.dumps(entry.emotions),
                    entry.salience,
                    entry.summary,
                    entry.text,
                    vector.astype(np.float32).tobytes(),
                ),
            )
            self._db.execute(
                "INSERT INTO entries_fts (rowid, body) VALUES (?, ?)",
                (cur.lastrowid, entry.searchable_text),
            )
            if transaction:
                self._db.execute("COMMIT")
        except BaseException:
            if transaction:
                self._db.execute("ROLLBACK")
            raise
        self._matrices.pop(entry.persona, None)

    def _delete_where(self, where: str, value: str, transaction: bool = True) -> None:
        rows = self._db.execute(
            f"SELECT rowid, persona FROM entries WHERE {where}", (value,)
        ).fetchall()
        for rowid, persona in rows:
            self._db.execute("DELETE FROM entries_fts WHERE rowid = ?", (rowid,))
            self._db.execute("DELETE FROM entries WHERE rowid = ?", (rowid,))
            self._matrices.pop(persona, None)

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._delete_where("id = ?", entry_id)

    def rebuild(self, stores: list[JournalStore]) -> SyncReport:
        with self._lock:
            self._db.execute("DELETE FROM entries")
            self._db.execute("DELETE FROM entries_fts")
            self._matrices.clear()
        total = SyncReport()
        for store in stores:
            r = self.sync(store)
            total.added += r.added
            total.broken += r.broken
        return total

    def count(self, persona: str | None = None) -> int:
        if persona is None:
            return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM entries WHERE persona = ?", (persona,)
        ).fetchone()[0]

    def ids(self, persona: str) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM entries WHERE persona = ? ORDER BY ts", (persona,)
            )
        ]

    # --- recall ----------------------------------------------------------------------------

    def _matrix(self, persona: str) -> _Matrix:
        m = self._matrices.get(persona)
        if m is None:
            rows = self._db.execute(
                "SELECT rowid, ts, salience, embedding FROM entries WHERE persona = ?"
                " ORDER BY rowid",
                (persona,),
            ).fetchall()
            dim = self.embedder.dim
            vectors = (
                np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(
                    len(rows), dim
                )
                if rows
                else np.zeros((0, dim), np.float32)
            )
            m = _Matrix(
                rowids=np.array([r[0] for r in rows], dtype=np.int64),
                vectors=vectors,
                ts=np.array([r[1] for r in rows]),
                salience=np.array([r[2] for r in rows]),
            )
            self._matrices[persona] = m
        return m

    def _filtered_rowids(self, persona: str, f: RecallFilters) -> set[int] | None:
        clauses, args = [], [persona]
        for column, value in (
            ("partners", f.partner),
            ("topics", f.topic),
            ("emotions", f.emotion),
        ):
            if value:
                clauses.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)")
                args.append(value.lower())
        if f.since:
            clauses.append("ts >= ?")
            args.append(f.since.timestamp())
        if f.until:
            clauses.append("ts <= ?")
            args.append(f.until.timestamp())
        if not clauses:
            return None
        sql = "SELECT rowid FROM entries WHERE persona = ? AND " + " AND ".join(clauses)
        return {r[0] for r in self._db.execute(sql, args)}

    def search(
        self,
        persona: str,
        query: str,
        k: int = 5,
        filters: RecallFilters | None = None,
        now: float | None = None,
        candidates: int = 200,
    ) -> list[Recalled]:
        filters = filters or RecallFilters()
        now = time.time() if now is None else now
        with self._lock:
            allowed = self._filtered_rowids(persona, filters)
            if allowed is not None and not allowed:
                return []
            m = self._matrix(persona)
            if not len(m.rowids):
                return []
            scores: dict[int, list[float]] = {}
            fts = _fts_query(query)
            if fts:
                rows = self._db.execute(
                    "SELECT f.rowid, bm25(entries_fts) FROM entries_fts f JOIN entries e"
                    " ON e.rowid = f.rowid WHERE entries_fts MATCH ? AND e.persona = ?"
                    " ORDER BY bm25(entries_fts) LIMIT ?",
                    (fts, persona, candidates),
                ).fetchall()
                for rowid, raw in rows:
                    if allowed is None or rowid in allowed:
                        scores[rowid] = [_saturate(raw), 0.0]
            q = self.embedder.embed([query])[0]
            sims = m.vectors @ q
            if allowed is not None:
                mask = np.isin(m.rowids, np.fromiter(allowed, dtype=np.int64))
                sims = np.where(mask, sims, -np.inf)
            top = np.argpartition(-sims, min(candidates, len(sims) - 1))[:candidates]
            for i in top:
                if np.isfinite(sims[i]):
                    scores.setdefault(int(m.rowids[i]), [0.0, 0.0])
            idx = {int(r): i for i, r in enumerate(m.rowids)}
            ranked = []
            for rowid, pair in scores.items():
                i = idx.get(rowid)
                if i is None:
                    continue
                bm, sim = pair[0], float(sims[i])
                age_days = max(0.0, (now - m.ts[i]) / 86400)
                recency = 0.5 + 0.5 * math.exp(-age_days * math.log(2) / self.half_life_days)
                base = 0.5 * bm + 0.5 * max(sim, 0.0)
                ranked.append((base * recency * (0.75 + 0.25 * m.salience[i]), rowid, bm, sim))
            ranked.sort(reverse=True)
            out = []
            for score, rowid, bm, sim in ranked[:k]:
                if score <= 0:
                    continue
                row = self._db.execute(
                    "SELECT id, ts, partners, topics, summary, text FROM entries WHERE rowid = ?",
                    (rowid,),
                ).fetchone()
                out.append(
                    Recalled(
                        entry_id=row[0],
                        score=score,
                        bm25=bm,
                        similarity=sim,
                        timestamp=datetime.fromtimestamp(row[1]).astimezone(),
                        partners=tuple(json.loads(row[2])),
                        topics=tuple(json.loads(row[3])),
                        summary=row[4],
                        text=row[5],
                    )
                )
            return out
