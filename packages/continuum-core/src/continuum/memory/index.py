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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from continuum.errors import ContinuumError
from continuum.memory.atomic import private_file, tighten
from continuum.memory.embeddings import Embedder
from continuum.memory.journal import JournalEntry, JournalFileError, JournalStore

log = logging.getLogger("continuum.memory")

SCHEMA_VERSION = 4
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
    commitments TEXT NOT NULL,
    salience REAL NOT NULL,
    told_by TEXT,
    about TEXT NOT NULL DEFAULT '[]',
    room TEXT,
    visibility TEXT,
    superseded INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_persona_ts ON entries(persona, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(body, tokenize='unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS entries_vocab USING fts5vocab(entries_fts, 'row');
"""


class RecallFilters(BaseModel):
    model_config = ConfigDict(frozen=True)

    partner: str | None = None
    topic: str | None = None
    emotion: str | None = None
    since: datetime | None = None
    until: datetime | None = None


VISIBILITY_RANK = {"dm": 0, "private": 1, "public": 2}
OWN_BOOST = 1.5


class RecallScope(BaseModel):
    """Who is asking, and where: recall returns the asker's own memories (what they told,
    anywhere), what was shared in this room, and what was said in public rooms — never
    what someone else said in a DM or another private room, never a superseded memory.
    Person ids are compared case-insensitively."""

    model_config = ConfigDict(frozen=True)

    asker: str | None = None
    # the other ids the asker's words may be stored under (the host ids linked to their
    # person id: what they said before a link is theirs too)
    asker_aliases: tuple[str, ...] = ()
    room: str | None = None
    visibility: str = "public"

    def asker_ids(self) -> list[str]:
        return [i.lower() for i in (self.asker, *self.asker_aliases) if i]


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
    told_by: str | None = None
    room: str | None = None
    visibility: str | None = None

    def render(self, name_of: Callable[[str], str | None] | None = None) -> str:
        """A line a model can read and repeat safely: a date and people's names, never
        raw host ids ("(2026-11-30, Sam, in a DM) Sam said: ...")."""
        when = self.timestamp.strftime("%Y-%m-%d")
        parts = [when]
        who = self.told_by or (self.partners[0] if self.partners else None)
        if who:
            parts.append((name_of(who) if name_of else None) or "someone")
        if self.visibility == "dm":
            parts.append("in a DM")
        elif self.visibility == "private":
            parts.append("in a private room")
        elif self.visibility == "sealed":
            parts.append("in this workspace")
        return f"({', '.join(parts)}) {self.text}"


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    broken: list[str] = field(default_factory=list)


@dataclass
class _Matrix:
    """A persona's entries in memory: vectors, metadata arrays and inverted maps for
    filters and scopes, so recall never scans rows in SQL or Python."""

    rowids: np.ndarray
    vectors: np.ndarray
    ts: np.ndarray
    salience: np.ndarray
    position: dict[int, int]
    by_value: dict[tuple[str, str], np.ndarray]
    public: np.ndarray  # bool: told in a public room
    sealed: np.ndarray  # bool: told in a sealed room (recalled only there)
    superseded: np.ndarray  # bool


STOPWORDS = frozenset(
    "a an and are as at be but by can did do does for from had has have he her him his how i "
    "if in into is it its me my of on or our she so that the their them then there they this "
    "to was we were what when where which who why will with you your".split()
)


_SUFFIXES = ("ing", "edly", "ed", "es", "ly", "s")


def stem(word: str) -> str:
    """A light, consistent suffix stripper applied at index and query time."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def fts_terms(text: str) -> list[str]:
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(stem(w) for w in words if len(w) > 1 and w not in STOPWORDS))


def fts_body(text: str) -> str:
    return " ".join(stem(w) for w in re.findall(r"\w+", text.lower()))


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
        self.rebuilt_from_corruption = False
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # The index is derived from the journal files: a corrupt, truncated or foreign
            # file is removed (it may hold text) and the index is rebuilt by sync().
            log.warning("%s is unusable (%s); rebuilding it from the journal files", db_path, exc)
            self._discard()
            self._db = self._open()
            self.rebuilt_from_corruption = True
        self._lock = threading.RLock()
        self._matrices: dict[str, _Matrix] = {}
        self._df: dict[str, int] = {}

    def _open(self) -> sqlite3.Connection:
        on_disk = self.db_path != ":memory:"
        if on_disk:
            path = Path(self.db_path)
            if path.is_dir():
                raise ContinuumError(f"{path} is a directory; remove it to let continuum rebuild")
            private_file(path)  # 0600; its -wal/-shm take the same permissions
            for extra in ("-wal", "-shm"):
                tighten(path.with_name(path.name + extra))
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        try:
            # deleted rows and freed pages are overwritten with zeros (forget means forgotten)
            db.execute("PRAGMA secure_delete=ON")
            if on_disk:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise sqlite3.DatabaseError("quick_check failed")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # An index of another layout: drop it; sync() re-adds everything from files.
                db.executescript(
                    "DROP TABLE IF EXISTS entries_vocab; DROP TABLE IF EXISTS entries_fts;"
                    "DROP TABLE IF EXISTS entries;"
                )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _discard(self) -> None:
        path = Path(self.db_path)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if p.is_file() and not p.is_symlink():
                p.unlink()

    def purge(self) -> None:
        """After deletions: rewrite the full-text index (old segments still hold the
        deleted text's terms) and truncate the write-ahead log, so nothing deleted can be
        recovered from the database files."""
        with self._lock:
            self._db.execute("INSERT INTO entries_fts(entries_fts) VALUES('optimize')")
            if self.db_path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
                    if old:  # serve nothing stale: the old text leaves the index too
                        self._delete_where("path = ?", key)
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
                " topics, emotions, commitments, salience, told_by, about, room, visibility,"
                " superseded, summary, text, embedding)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(entry.commitments),
                    entry.salience,
                    entry.told_by,
                    json.dumps(entry.about),
                    entry.room,
                    entry.visibility,
                    int(entry.superseded_by is not None),
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
        self._df.clear()

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
            self._df.clear()
        total = SyncReport()
        for store in stores:
            r = self.sync(store)
            total.added += r.added
            total.broken += r.broken
        self.purge()
        return total

    def count(self, persona: str | None = None) -> int:
        if persona is None:
            return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM entries WHERE persona = ?", (persona,)
        ).fetchone()[0]

    def commitments(self, persona: str, limit: int) -> list[str]:
        """The most salient, most recent commitments recorded for a persona."""
        # the persona's own promises, made in public rooms, still standing: what enters
        # every prompt of the persona must not carry a DM's or another person's words
        rows = self._db.execute(
            "SELECT c.value FROM entries e, json_each(e.commitments) c WHERE e.persona = ?"
            " AND e.told_by IS NULL AND e.visibility = 'public' AND e.superseded = 0"
            " ORDER BY e.salience DESC, e.ts DESC LIMIT ?",
            (persona, limit),
        ).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))

    # --- recall ----------------------------------------------------------------------------

    def _matrix(self, persona: str) -> _Matrix:
        m = self._matrices.get(persona)
        if m is None:
            rows = self._db.execute(
                "SELECT rowid, ts, salience, embedding, partners, topics, emotions, told_by,"
                " about, room, visibility, superseded"
                " FROM entries WHERE persona = ? ORDER BY rowid",
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
            groups: dict[tuple[str, str], list[int]] = {}
            for i, r in enumerate(rows):
                for column, raw in (("partner", r[4]), ("topic", r[5]), ("emotion", r[6])):
                    for value in json.loads(raw):
                        groups.setdefault((column, value), []).append(i)
                # who may hear it: its teller (an older entry: its first partner) and the room
                teller = r[7] or next(iter(json.loads(r[4])), None)
                if teller:
                    groups.setdefault(("told_by", teller), []).append(i)
                if r[9]:
                    groups.setdefault(("room", r[9]), []).append(i)
            m = _Matrix(
                rowids=np.array([r[0] for r in rows], dtype=np.int64),
                vectors=vectors,
                ts=np.array([r[1] for r in rows]),
                salience=np.array([r[2] for r in rows]),
                position={r[0]: i for i, r in enumerate(rows)},
                by_value={k: np.array(v, dtype=np.int64) for k, v in groups.items()},
                public=np.array([r[10] == "public" for r in rows], dtype=bool),
                sealed=np.array([r[10] == "sealed" for r in rows], dtype=bool),
                superseded=np.array([bool(r[11]) for r in rows], dtype=bool),
            )
            self._matrices[persona] = m
        return m

    def _scope(self, m: _Matrix, scope: RecallScope | None) -> np.ndarray:
        """Which entries this asker may hear in this room (and none superseded)."""
        if scope is None:
            return ~m.superseded
        allowed = m.public.copy()
        keys = [("told_by", i) for i in scope.asker_ids()] + [("room", scope.room or "")]
        for key in keys:
            hits = m.by_value.get(key)
            if hits is not None:
                allowed[hits] = True
        if m.sealed.any():  # a sealed room's words stay in that room, whoever asks
            here = np.zeros(len(m.rowids), dtype=bool)
            hits = m.by_value.get(("room", scope.room or ""))
            if hits is not None:
                here[hits] = True
            allowed &= ~m.sealed | here
        return allowed & ~m.superseded

    def _mask(self, m: _Matrix, f: RecallFilters) -> np.ndarray | None:
        mask = None
        for column, value in (("partner", f.partner), ("topic", f.topic), ("emotion", f.emotion)):
            if value:
                hit = np.zeros(len(m.rowids), dtype=bool)
                hit[m.by_value.get((column, value.lower()), np.zeros(0, np.int64))] = True
                mask = hit if mask is None else mask & hit
        if f.since or f.until:
            lo = f.since.timestamp() if f.since else -np.inf
            hi = f.until.timestamp() if f.until else np.inf
            window = (m.ts >= lo) & (m.ts <= hi)
            mask = window if mask is None else mask & window
        return mask

    def _selective_terms(self, terms: list[str], total: int, max_df: float) -> list[str]:
        """Drop terms that occur in more than ``max_df`` of all entries: they add little
        to BM25 and make FTS5 score most of the table."""
        missing = [t for t in terms if t not in self._df]
        if missing:
            marks = ",".join("?" * len(missing))
            found = dict(
                self._db.execute(
                    f"SELECT term, doc FROM entries_vocab WHERE term IN ({marks})", missing
                )
            )
            for t in missing:
                self._df[t] = found.get(t, 0)
        return [t for t in terms if 0 < self._df[t] <= max(50, max_df * total)]

    def search(
        self,
        persona: str,
        query: str,
        k: int = 5,
        filters: RecallFilters | None = None,
        now: float | None = None,
        candidates: int = 200,
        max_df: float = 0.05,
        scope: RecallScope | None = None,
    ) -> list[Recalled]:
        filters = filters or RecallFilters()
        now = time.time() if now is None else now
        with self._lock:
            m = self._matrix(persona)
            n = len(m.rowids)
            if not n:
                return []
            mask = self._mask(m, filters)
            allowed = self._scope(m, scope)
            mask = allowed if mask is None else mask & allowed
            if not mask.any():
                return []
            # semantic candidates
            sims = m.vectors @ self.embedder.embed([query])[0]
            if mask is not None:
                sims = np.where(mask, sims, -np.inf)
            take = min(candidates, n)
            cand = np.argpartition(-sims, take - 1)[:take]
            bm = np.zeros(n)
            # keyword candidates (selective terms only)
            terms = self._selective_terms(fts_terms(query), self.count(), max_df)
            if terms:
                rows = self._db.execute(
                    "SELECT f.rowid, bm25(entries_fts) FROM entries_fts f JOIN entries e"
                    " ON e.rowid = f.rowid WHERE entries_fts MATCH ? AND e.persona = ?"
                    " ORDER BY bm25(entries_fts) LIMIT ?",
                    (" OR ".join(f'"{t}"' for t in terms), persona, candidates),
                ).fetchall()
                hits = np.array([m.position[r] for r, _ in rows if r in m.position], dtype=np.int64)
                if len(hits):
                    bm[hits] = [_saturate(raw) for r, raw in rows if r in m.position]
                    cand = np.union1d(cand, hits)
            cand = cand[np.isfinite(sims[cand])]
            age_days = np.maximum(0.0, (now - m.ts[cand]) / 86400)
            recency = 0.5 + 0.5 * np.exp(-age_days * math.log(2) / self.half_life_days)
            base = 0.5 * bm[cand] + 0.5 * np.maximum(sims[cand], 0.0)
            score = base * recency * (0.75 + 0.25 * m.salience[cand])
            if scope is not None and scope.asker:
                # what the asker told comes first: "my dog" means the asker's, not the
                # dog of someone else with the same name who mentioned theirs in public
                for teller in scope.asker_ids():
                    own = m.by_value.get(("told_by", teller))
                    if own is not None:
                        score = np.where(np.isin(cand, own), score * OWN_BOOST, score)
            order = np.argsort(-score)[:k]
            best = [(float(score[i]), int(cand[i])) for i in order if score[i] > 0]
            if not best:
                return []
            rowids = [int(m.rowids[pos]) for _, pos in best]
            marks = ",".join("?" * len(rowids))
            fetched = {
                r[0]: r
                for r in self._db.execute(
                    "SELECT rowid, id, ts, partners, topics, summary, text, told_by, room,"
                    f" visibility FROM entries WHERE rowid IN ({marks})",
                    rowids,
                )
            }
            out = []
            for (sc, pos), rowid in zip(best, rowids, strict=True):
                row = fetched[rowid]
                out.append(
                    Recalled(
                        entry_id=row[1],
                        score=sc,
                        bm25=float(bm[pos]),
                        similarity=float(sims[pos]),
                        timestamp=datetime.fromtimestamp(row[2]).astimezone(),
                        partners=tuple(json.loads(row[3])),
                        topics=tuple(json.loads(row[4])),
                        summary=row[5],
                        text=row[6],
                        told_by=row[7],
                        room=row[8],
                        visibility=row[9],
                    )
                )
            return out
