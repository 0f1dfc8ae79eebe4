"""MemoryEngine: journals + recall index + profiles for every persona under one data dir.

The data directory defaults to ``$CONTINUUM_DATA``, else ``$XDG_DATA_HOME/continuum``, else
``~/.local/share/continuum``. With a memory key (see :mod:`continuum.memory.crypto`)
journals and profiles are encrypted at rest and the index lives only in this process's
memory, rebuilt from the decrypted files at start.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from continuum.errors import ContinuumError
from continuum.memory.atomic import private_dir, tighten
from continuum.memory.crypto import ENV_KEY, Cipher, MemoryKeyError, cipher_from_environment
from continuum.memory.embeddings import Embedder, WordLlamaEmbedder
from continuum.memory.index import (
    MemoryIndex,
    Recalled,
    RecallFilters,
    RecallScope,
    SyncReport,
)
from continuum.memory.journal import PERSONA_ID, JournalEntry, JournalFileError, JournalStore
from continuum.memory.profile import ProfileStore

SUPERSEDE_SIMILARITY = 0.6  # a correction without "not X" replaces its closest earlier fact
log = logging.getLogger("continuum.memory")

EXPLICIT_REQUEST = re.compile(
    r"\b(remember (that|this|me|my|i|we|our)|please remember|don'?t forget|do not forget|"
    r"make a note|note that|keep in mind|bear in mind|for the record|write (this|that) down|"
    r"save (this|that)|just so you know|fyi\b)",
    re.IGNORECASE,
)


def default_data_dir() -> Path:
    if os.environ.get("CONTINUUM_DATA"):
        return Path(os.environ["CONTINUUM_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "continuum"


class WritePolicy(BaseModel):
    """When the model's plan may write a journal entry (explicit requests always may)."""

    model_config = ConfigDict(frozen=True)

    min_salience: float = Field(default=0.6, ge=0, le=1)
    max_per_hour: int = Field(default=30, ge=0)


class MemoryEngine:
    def __init__(
        self,
        data_dir: Path | str | None = None,
        embedder: Embedder | None = None,
        cipher: Cipher | bool | None = True,
        policy: WritePolicy | None = None,
        key_env: str = ENV_KEY,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ContinuumError(f"the data dir {self.data_dir} is a file, not a directory")
        private_dir(self.data_dir)
        tighten(self.data_dir)
        self.cipher = cipher_from_environment(key_env) if cipher is True else (cipher or None)
        self.embedder = embedder or WordLlamaEmbedder()
        index_path = self.data_dir / "index.sqlite3"
        plain = (self.data_dir / "personas").glob("*/journal/[0-9]*/*/*.md")
        if self.cipher is not None and index_path.exists() and any(plain):
            raise MemoryKeyError(
                f"{self.data_dir}: this memory is not encrypted, but a key is set. "
                "Encrypt it in place with `continuum memory encrypt`, or unset the key"
            )
        self.index = MemoryIndex(":memory:" if self.cipher else index_path, self.embedder)
        self.policy = policy or WritePolicy()
        self._journals: dict[str, JournalStore] = {}
        self._profiles: dict[str, ProfileStore] = {}
        self._recent_writes: dict[str, deque[float]] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._snapshots: dict[str, tuple[tuple[int, int], str]] = {}
        self._commitment_version: dict[str, int] = {}
        self.sync()

    # --- stores -------------------------------------------------------------------------

    def journal(self, persona_id: str) -> JournalStore:
        if persona_id not in self._journals:
            self._journals[persona_id] = JournalStore(self.data_dir, persona_id, self.cipher)
        return self._journals[persona_id]

    def profile(self, persona_id: str) -> ProfileStore:
        if persona_id not in self._profiles:
            self._profiles[persona_id] = ProfileStore(self.data_dir, persona_id, self.cipher)
        return self._profiles[persona_id]

    def persona_ids(self) -> list[str]:
        root = self.data_dir / "personas"
        if not root.exists():
            return []
        return sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and PERSONA_ID.match(p.name)
        )

    def on_change(self, listener: Callable[[str, str], None]) -> None:
        """``listener(persona_id, what)`` after a journal or profile change."""
        self._listeners.append(listener)

    def _changed(self, persona_id: str, what: str) -> None:
        for listener in self._listeners:
            listener(persona_id, what)

    # --- writing ------------------------------------------------------------------------

    def remember(self, entry: JournalEntry) -> JournalEntry:
        """Write unconditionally (explicit requests, imports)."""
        self._recent_writes.setdefault(f"{entry.persona}/{entry.told_by}", deque()).append(
            time.monotonic()
        )
        return self._write(entry)

    def _write(self, entry: JournalEntry) -> JournalEntry:
        path = self.journal(entry.persona).write(entry)
        self.index.add(entry, path)
        if entry.commitments:
            self._commitment_version[entry.persona] = (
                self._commitment_version.get(entry.persona, 0) + 1
            )
        self._changed(entry.persona, "journal")
        return entry

    def import_many(self, entries: list[JournalEntry], batch: int = 2000) -> int:
        """Bulk import (see JournalStore.import_many); indexes in large transactions."""
        by_persona: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            by_persona.setdefault(entry.persona, []).append(entry)
        for persona_id, items in by_persona.items():
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                paths = self.journal(persona_id).import_many(chunk)
                self.index.add_many(list(zip(chunk, paths, strict=True)))
            self._changed(persona_id, "journal")
        return len(entries)

    def consider(self, entry: JournalEntry, explicit: bool = False) -> JournalEntry | None:
        """Write if explicit, or salient enough and within the rate limit (per persona and
        teller: one chatty person cannot crowd out everyone else's memories)."""
        if explicit:
            return self.remember(entry)
        if entry.salience < self.policy.min_salience:
            return None
        writes = self._recent_writes.setdefault(f"{entry.persona}/{entry.told_by}", deque())
        now = time.monotonic()
        while writes and now - writes[0] > 3600:
            writes.popleft()
        if len(writes) >= self.policy.max_per_hour:
            return None
        writes.append(now)
        return self._write(entry)

    def supersede(self, persona_id: str, old_id: str, new_id: str) -> bool:
        """Mark ``old_id`` as corrected by ``new_id``: kept (and versioned), never
        recalled again. The new entry records what it supersedes."""
        store = self.journal(persona_id)
        try:
            old = store.get(old_id)
            new = store.get(new_id)
        except ContinuumError:
            return False
        if old.superseded_by is not None:
            return False
        for entry in (
            old.model_copy(update={"superseded_by": new_id}),
            new.model_copy(update={"supersedes": (*new.supersedes, old_id)}),
        ):
            self.index.add(entry, store.write(entry))
        self._changed(persona_id, "journal")
        return True

    def corrected_by(
        self,
        persona_id: str,
        *,
        teller: str,
        room: str,
        visibility: str,
        text: str,
        replaces: tuple[str, ...] = (),
    ) -> list[str]:
        """The earlier entries a correction replaces: those naming what it says is no
        longer so ("..., not Porto"), else the single closest one (cosine at least
        ``SUPERSEDE_SIMILARITY``). Natural talk and explicit notes alike. The teller's own
        entries first; else a public one of the person the correction names, about the
        same thing ("Sam asked me to pass this on: the offsite is now in Bruges" replaces
        Sam's "the offsite will be in Ghent") — never one from a private room."""
        teller = teller.lower()
        query = " ".join([text, *replaces])
        scope = RecallScope(asker=teller, room=room, visibility=visibility)  # type: ignore[arg-type]
        found = self.recall(persona_id, query, k=20, scope=scope)
        mine = [r for r in found if r.told_by == teller]
        if replaces:
            words = [w.lower() for w in replaces]
            named = [r.entry_id for r in mine if any(w in r.text.lower() for w in words)]
            named += [
                r.entry_id
                for r in found
                if r.told_by != teller
                and _names_teller(text, r)
                and any(w in r.text.lower() for w in words)
            ]
            if named:
                return named
        if mine:
            vectors = self.embedder.embed([text, *(r.text for r in mine)])
            sims = vectors[1:] @ vectors[0]
            best = int(np.argmax(sims))
            if sims[best] >= SUPERSEDE_SIMILARITY:
                return [mine[best].entry_id]
        # passed on about someone else: their public entry on the same subject
        theirs = [
            r
            for r in found
            if r.told_by != teller and _names_teller(text, r) and _same_subject(text, r.text)
        ]
        if not theirs:
            return []
        vectors = self.embedder.embed([text, *(r.text for r in theirs)])
        return [theirs[int(np.argmax(vectors[1:] @ vectors[0]))].entry_id]

    def forget(self, persona_id: str, entry_id: str, purge_history: bool = True) -> bool:
        """Forget an entry: its file, copies of it, its versions, and every trace in the
        index (rewritten, so the text cannot be recovered from the database file)."""
        existed = self.journal(persona_id).forget(entry_id, purge_history=purge_history)
        self._commitment_version[persona_id] = self._commitment_version.get(persona_id, 0) + 1
        self.index.remove(entry_id)
        self.index.purge()
        self._changed(persona_id, "journal")
        return existed

    def forget_person(self, person_id: str) -> int:
        """Forget every entry, for every persona, that involves ``person_id``."""
        count = 0
        for persona_id in self.persona_ids():
            for entry in self.entries(persona_id):
                if person_id.lower() in entry.partners:
                    count += self.journal(persona_id).forget(entry.id)
                    self.index.remove(entry.id)
            self._changed(persona_id, "journal")
        if count:
            self.index.purge()
        return count

    def apply_profile_update(self, persona_id: str, update: object) -> bool:
        merged = self.profile(persona_id).apply(update)  # type: ignore[arg-type]
        if merged is not None:
            self._changed(persona_id, "profile")
        return merged is not None

    # --- reading ------------------------------------------------------------------------

    def snapshot(self, persona_id: str, max_commitments: int = 5) -> str:
        """The SEMI_STABLE memory text: the profile snapshot plus standing commitments from
        consolidated journal entries. Cached; regenerated only when either changes."""
        profile = self.profile(persona_id)
        key = (profile.load().version, self._commitment_version.get(persona_id, 0))
        cached = self._snapshots.get(persona_id)
        if cached is None or cached[0] != key:
            commitments = self.index.commitments(persona_id, max_commitments)
            text = profile.snapshot()
            if commitments:
                text = (
                    (text + "\n" if text else "")
                    + "Commitments you made: "
                    + "; ".join(commitments)
                )
            cached = self._snapshots[persona_id] = (key, text)
        return cached[1]

    def recall(
        self,
        persona_id: str,
        query: str,
        k: int = 3,
        filters: RecallFilters | None = None,
        scope: RecallScope | None = None,
    ) -> list[Recalled]:
        """The persona's memories that fit ``query``. With a ``scope`` (who asks, where),
        only what that person may hear there; superseded memories never."""
        return self.index.search(persona_id, query, k=k, filters=filters, scope=scope)

    def entries(self, persona_id: str, broken: list[str] | None = None) -> list[JournalEntry]:
        """A persona's readable entries. A broken file (a bad hand edit) is skipped and
        reported in ``broken`` (or the log) — one bad file never hides the rest."""
        store = self.journal(persona_id)
        out = []
        for path in store.paths():
            try:
                out.append(store.read_path(path))
            except JournalFileError as exc:
                (broken.append(str(exc)) if broken is not None else log.warning("%s", exc))
        return out

    def sync(self) -> SyncReport:
        """Reconcile the index with the files (hand edits, deletions, other writers)."""
        total = SyncReport()
        for persona_id in self.persona_ids():
            r = self.index.sync(self.journal(persona_id))
            total.added += r.added
            total.updated += r.updated
            total.removed += r.removed
            total.unchanged += r.unchanged
            total.broken += r.broken
        return total

    def rebuild(self) -> SyncReport:
        return self.index.rebuild([self.journal(p) for p in self.persona_ids()])

    def close(self) -> None:
        self.index.close()


_SAID_BY = re.compile(r"^\(?[^)]*\)?\s*([A-Z][\w'-]{1,39}(?: [A-Z][\w'-]{1,39})?) said: ")


def _names_teller(text: str, recalled: object) -> bool:
    """A correction naming the person an entry came from ("Sam asked me to pass this
    on ..." for an entry "Sam said: ..."), in a room the corrector could see."""
    if getattr(recalled, "visibility", "public") != "public":
        return False
    m = _SAID_BY.match(getattr(recalled, "text", ""))
    return bool(m) and re.search(rf"\b{re.escape(m.group(1))}\b", text) is not None


_CONTENT = re.compile(r"[A-Za-z]{4,}")
_COMMON = frozenset(
    "about after again also asked been before being could does from have here into just "
    "know like more must next only other over pass said says should some still than that "
    "their them then there these they this told very want week were what when where which "
    "will with would your instead now today tomorrow".split()
)


def _same_subject(correction: str, entry: str) -> bool:
    """They share a content word (not a name, not a common word): "offsite" in both."""

    def words(t: str) -> set[str]:
        return {w.lower() for w in _CONTENT.findall(t) if w[0].islower()} - _COMMON

    return bool(words(correction) & words(entry))
