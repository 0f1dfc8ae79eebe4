"""Markdown journals: one file per entry, YAML front matter + a body, per persona.

Layout under the data directory::

    personas/<persona>/journal/<YYYY>/<MM>/<entry-id>.md     the current version
    personas/<persona>/journal/.history/<entry-id>/<n>.md    every version ever written

Versioning is an append-only history beside the entries rather than a git tree: it needs
no git binary, writes are one fsync'd rename each, a forget can purge it precisely, and a
person can still read every version with a text editor. Files are human-editable; the
index notices edits by modification time and content hash.

Writes are atomic (temp file, fsync, rename) under a per-persona file lock, so concurrent
writers serialise and a killed process never leaves a half-written entry.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from continuum.errors import ContinuumError
from continuum.memory.atomic import atomic_write_bytes, fsync_dir, remove_stale_temps
from continuum.memory.crypto import ENV_KEY, Cipher, MemoryKeyError

ENTRY_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")


class JournalFileError(ContinuumError):
    """A journal file is malformed; names the file and the field."""

    def __init__(self, path: Path, field: str | None, message: str) -> None:
        self.path, self.field = path, field
        where = f"{path}: field '{field}'" if field else str(path)
        super().__init__(f"{where}: {message}")


def new_entry_id(at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    return f"{at.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


class JournalEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_entry_id, pattern=ENTRY_ID.pattern)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    persona: str
    host: str | None = None
    room: str | None = None
    partners: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    emotions: tuple[str, ...] = ()
    salience: float = Field(default=0.5, ge=0.0, le=1.0)
    commitments: tuple[str, ...] = ()
    summary: str = ""
    text: str = Field(min_length=1)

    @field_validator("partners", "topics", "emotions", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower() for v in value if str(v).strip())
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def searchable_text(self) -> str:
        extra = " ".join([*self.topics, *self.partners, *self.commitments])
        return f"{self.summary}\n{self.text}\n{extra}".strip()


def entry_to_markdown(entry: JournalEntry) -> str:
    meta = entry.model_dump(mode="json", exclude={"summary", "text"})
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=None)
    body = f"## Context\n\n{entry.summary.strip()}\n\n## Entry\n\n{entry.text.strip()}\n"
    return f"---\n{front}---\n\n{body}"


_SECTION = re.compile(r"^## (Context|Entry)\s*$", re.MULTILINE)


def entry_from_markdown(text: str, path: Path) -> JournalEntry:
    if not text.startswith("---\n"):
        raise JournalFileError(path, None, "missing YAML front matter ('---' first line)")
    try:
        _, front, body = text.split("---\n", 2)
    except ValueError as exc:
        raise JournalFileError(path, None, "unterminated YAML front matter") from exc
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError as exc:
        raise JournalFileError(path, None, f"invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise JournalFileError(path, None, "front matter must be a mapping")
    parts = _SECTION.split(body)
    if len(parts) > 1:  # ["", "Context", text, "Entry", text]
        sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
        summary, entry_text = sections.get("Context", ""), sections.get("Entry", "")
    else:  # hand-written without headings: the whole body is the entry
        summary, entry_text = "", body.strip()
    try:
        return JournalEntry.model_validate({**meta, "summary": summary, "text": entry_text})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise JournalFileError(path, field, first["msg"]) from exc


class JournalStore:
    """One persona's journal directory."""

    def __init__(self, data_dir: Path, persona_id: str, cipher: Cipher | None = None) -> None:
        self.persona_id = persona_id
        self.root = Path(data_dir) / "personas" / persona_id / "journal"
        self.history_root = self.root / ".history"
        self.cipher = cipher
        self.suffix = ".md.enc" if cipher else ".md"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root.parent / ".journal.lock"))
        remove_stale_temps(self.root)
        if cipher is None and next(self.root.rglob("*.md.enc"), None) is not None:
            raise MemoryKeyError(
                f"{self.root}: journals are encrypted but no key is set ({ENV_KEY})"
            )

    def path_for(self, entry_id: str) -> Path:
        if not ENTRY_ID.match(entry_id):
            raise ValueError(f"not a journal entry id: {entry_id!r}")
        return self.root / entry_id[:4] / entry_id[4:6] / f"{entry_id}{self.suffix}"

    def _encode(self, entry: JournalEntry) -> bytes:
        data = entry_to_markdown(entry).encode("utf-8")
        return self.cipher.encrypt(data) if self.cipher else data

    def read_path(self, path: Path) -> JournalEntry:
        raw = path.read_bytes()
        if self.cipher:
            raw = self.cipher.decrypt(raw, str(path))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JournalFileError(path, None, "not UTF-8 text (encrypted?)") from exc
        entry = entry_from_markdown(text, path)
        if entry.persona != self.persona_id:
            raise JournalFileError(path, "persona", f"belongs to {entry.persona!r}")
        return entry

    def write(self, entry: JournalEntry) -> Path:
        """Create or replace an entry; the new version is appended to its history."""
        if entry.persona != self.persona_id:
            raise ValueError(f"entry for {entry.persona!r} written to {self.persona_id!r}")
        data = self._encode(entry)
        path = self.path_for(entry.id)
        with self._lock:
            history = self.history_root / entry.id
            version = len(list(history.glob(f"*{self.suffix}"))) if history.exists() else 0
            atomic_write_bytes(history / f"{version:05d}{self.suffix}", data)
            atomic_write_bytes(path, data)
        return path

    def import_many(self, entries: list[JournalEntry]) -> list[Path]:
        """Bulk import (migrations, benchmarks): each file still appears by rename, but the
        fsyncs are batched — durable when this returns, not entry by entry."""
        paths = []
        with self._lock:
            dirs: set[Path] = set()
            for entry in entries:
                path = self.path_for(entry.id)
                data = self._encode(entry)
                for target in (self.history_root / entry.id / f"00000{self.suffix}", path):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, target)
                    dirs.add(target.parent)
                paths.append(path)
            os.sync()
            for directory in dirs:
                fsync_dir(directory)
        return paths

    def get(self, entry_id: str) -> JournalEntry:
        return self.read_path(self.path_for(entry_id))

    def paths(self) -> Iterator[Path]:
        yield from sorted(self.root.glob(f"[0-9][0-9][0-9][0-9]/[0-9][0-9]/*{self.suffix}"))

    def versions(self, entry_id: str) -> list[JournalEntry]:
        history = self.history_root / entry_id
        return [self.read_path(p) for p in sorted(history.glob(f"*{self.suffix}"))]

    def forget(self, entry_id: str, purge_history: bool = True) -> bool:
        path = self.path_for(entry_id)
        with self._lock:
            existed = path.exists()
            path.unlink(missing_ok=True)
            if purge_history:
                history = self.history_root / entry_id
                for version in history.glob("*"):
                    version.unlink()
                if history.exists():
                    history.rmdir()
        return existed
