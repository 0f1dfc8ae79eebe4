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
from typing import Any, Literal

import yaml
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from continuum.errors import ContinuumError, FileFieldError
from continuum.memory.atomic import (
    UnsafePath,
    atomic_write_bytes,
    fsync_dir,
    inside,
    private_dir,
    remove_stale_temps,
    safe_unlink,
)
from continuum.memory.crypto import ENV_KEY, Cipher, MemoryKeyError

ENTRY_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")
PERSONA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the same as a Persona's id


class UnknownEntry(ContinuumError):
    """A journal entry id that is malformed or not in the journal."""


def check_persona_id(persona_id: str) -> str:
    """A persona id names a directory: never a path (``../x``, ``/abs``)."""
    if not isinstance(persona_id, str) or not PERSONA_ID.match(persona_id):
        raise ContinuumError(
            f"not a persona id: {persona_id!r} (lowercase letters, digits, '-' and '_')"
        )
    return persona_id


class JournalFileError(FileFieldError):
    """A journal file is malformed; names the file and the field."""


def new_entry_id(at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    return f"{at.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


Visibility = Literal["dm", "private", "public", "sealed"]  # as continuum.envelope.Visibility


class JournalEntry(BaseModel):
    """One memory. Besides what it says, it records who told it (``told_by``), who it is
    about (``about``), where (``host``, ``room``) and how public that room was
    (``visibility``): recall uses them so one person's private words never reach
    another person. ``supersedes``/``superseded_by`` link a correction to what it
    corrected (the old entry is kept, and no longer recalled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_entry_id, pattern=ENTRY_ID.pattern)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    persona: str
    host: str | None = None
    room: str | None = None
    visibility: Visibility | None = None  # None: unknown (an older entry): treated as private
    told_by: str | None = None  # a person id
    about: tuple[str, ...] = ()  # person ids
    partners: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    emotions: tuple[str, ...] = ()
    salience: float = Field(default=0.5, ge=0.0, le=1.0)
    commitments: tuple[str, ...] = ()
    kind: Literal["fact", "preference", "commitment", "correction", "note"] = "note"
    supersedes: tuple[str, ...] = ()
    superseded_by: str | None = None
    summary: str = ""
    text: str = Field(min_length=1)

    @field_validator("told_by", mode="before")
    @classmethod
    def _lower_one(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) and value.strip() else None

    @field_validator("partners", "topics", "emotions", "about", mode="before")
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


MAX_FRONT_MATTER = 64 << 10  # bytes of YAML a journal entry's metadata may take


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: a few lines of aliases can expand to gigabytes
    (the "billion laughs"), and journal front matter never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases are not allowed (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def entry_from_markdown(text: str, path: Path) -> JournalEntry:
    if not text.startswith("---\n"):
        raise JournalFileError(path, None, "missing YAML front matter ('---' first line)")
    try:
        _, front, body = text.split("---\n", 2)
    except ValueError as exc:
        raise JournalFileError(path, None, "unterminated YAML front matter") from exc
    if len(front) > MAX_FRONT_MATTER:
        raise JournalFileError(path, None, f"front matter larger than {MAX_FRONT_MATTER} bytes")
    try:
        meta = yaml.load(front, Loader=_NoAliasLoader) or {}  # safe, and no aliases
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
        self.persona_id = check_persona_id(persona_id)
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "personas" / persona_id / "journal"
        self.history_root = self.root / ".history"
        self.cipher = cipher
        self.suffix = ".md.enc" if cipher else ".md"
        private_dir(self.root)
        inside(self.data_dir, self.root)
        self._lock = FileLock(str(self.root.parent / ".journal.lock"), mode=0o600)
        remove_stale_temps(self.root)
        if cipher is None and next(self.paths(".md.enc"), None) is not None:
            raise MemoryKeyError(
                f"{self.root}: journals are encrypted but no key is set ({ENV_KEY})"
            )
        if cipher is not None and next(self.paths(".md"), None) is not None:
            raise MemoryKeyError(
                f"{self.root}: this memory is not encrypted, but a key is set. Encrypt it in "
                "place with `continuum memory encrypt`, or unset the key"
            )

    def path_for(self, entry_id: str) -> Path:
        if not ENTRY_ID.match(entry_id):
            raise UnknownEntry(
                f"not a journal entry id: {entry_id!r} (like 20260101T120000-abc123)"
            )
        return self.root / entry_id[:4] / entry_id[4:6] / f"{entry_id}{self.suffix}"

    def _encode(self, entry: JournalEntry) -> bytes:
        data = entry_to_markdown(entry).encode("utf-8")
        return self.cipher.encrypt(data) if self.cipher else data

    def read_path(self, path: Path, check_name: bool = True) -> JournalEntry:
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
        if check_name and path.name != f"{entry.id}{self.suffix}":
            raise JournalFileError(path, "id", f"{entry.id!r} does not match the file name")
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
                    private_dir(target.parent)
                    tmp = target.with_name(f".{target.name}.tmp")
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.replace(tmp, target)
                    dirs.add(target.parent)
                paths.append(path)
            os.sync()
            for directory in dirs:
                fsync_dir(directory)
        return paths

    def get(self, entry_id: str) -> JournalEntry:
        path = self.path_for(entry_id)
        if not path.exists():
            raise UnknownEntry(f"{self.persona_id} has no journal entry {entry_id}")
        return self.read_path(path)

    def paths(self, suffix: str | None = None) -> Iterator[Path]:
        """The current entries' files (never through a symlinked directory)."""
        suffix = suffix or self.suffix
        for path in sorted(self.root.glob(f"[0-9][0-9][0-9][0-9]/[0-9][0-9]/*{suffix}")):
            if path.name.endswith(".md.enc") and suffix == ".md":
                continue
            if path.is_symlink() or path.parent.is_symlink() or path.parent.parent.is_symlink():
                continue  # not ours: never read or serve through a link
            yield path

    def versions(self, entry_id: str) -> list[JournalEntry]:
        history = inside(self.data_dir, self.history_root / entry_id)
        return [
            self.read_path(p, check_name=False) for p in sorted(history.glob(f"*{self.suffix}"))
        ]

    def forget(self, entry_id: str, purge_history: bool = True) -> bool:
        """Delete the entry, every copy of it under another file name, and (by default)
        every version of it. Never follows a symlink out of the data dir."""
        path = self.path_for(entry_id)
        with self._lock:
            existed = safe_unlink(self.data_dir, path)
            for other in list(self.paths()):  # copies under another name
                raw = other.read_bytes()
                if self.cipher is None and entry_id.encode() not in raw:
                    continue
                try:
                    if self.read_path(other, check_name=False).id == entry_id:
                        existed = safe_unlink(self.data_dir, other) or existed
                except (JournalFileError, MemoryKeyError):
                    continue
            if purge_history:
                history = self.history_root / entry_id
                if history.is_symlink():
                    raise UnsafePath(f"{history} is a symlink; not deleting through it")
                if history.exists():
                    for version in history.iterdir():
                        safe_unlink(self.data_dir, version)
                    history.rmdir()
        return existed
