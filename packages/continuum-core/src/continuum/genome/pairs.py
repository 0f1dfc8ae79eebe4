"""Training pairs from a persona's own turns: the composed prompt it saw → what it said.

Opt-in per persona (``[learning] enabled = true`` in its file). Each reply appends one pair
to ``<data>/genome/<persona>/pairs/<domain>.jsonl``; reactions to that reply append to the
persona's ``reactions.jsonl`` and are merged when the pairs are read (a thumbs-down drops
a pair from training, a thumbs-up weighs it double). Lines are appended with one write and
an fsync: a crash mid-write leaves at most a broken last line, which readers skip and the
next append walls off, so it never costs an earlier pair. With a memory key every line is
encrypted (Fernet) like the journals. ``forget_person`` rewrites the files without any pair
whose prompt held that person's words.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.errors import ContinuumError
from continuum.memory.atomic import atomic_write_bytes, inside, private_dir
from continuum.memory.crypto import Cipher, MemoryKeyError
from continuum.memory.journal import check_persona_id

log = logging.getLogger("continuum.genome.pairs")

DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def domain_slug(text: str) -> str:
    """A topic or expertise name as a domain file name ("Rust async" → "rust-async")."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")
    return slug or "general"


def check_domain(domain: str) -> str:
    if not DOMAIN.match(domain):
        raise ContinuumError(f"{domain!r} is not a domain name (a-z, 0-9, '-', '_')")
    return domain


class TrainingPair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # the reply's message id (reactions find it by this)
    persona_id: str
    domain: str
    room: str
    prompt: str  # the composed prompt, exactly as the model saw it
    response: str  # what the model generated (think-blocks included: they are its turn)
    people: tuple[str, ...] = ()  # whose words are in the prompt (for forget)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    score: int = 0  # net reactions, merged in when read


class _Reaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    positive: bool


class PairLog:
    def __init__(self, data_dir: Path | str, cipher: Cipher | None = None) -> None:
        self.root = Path(data_dir) / "genome"
        self.cipher = cipher

    # --- where -----------------------------------------------------------------------------

    def _dir(self, persona_id: str) -> Path:
        check_persona_id(persona_id)
        return inside(self.root, self.root / persona_id / "pairs")

    def path(self, persona_id: str, domain: str) -> Path:
        return self._dir(persona_id) / f"{check_domain(domain)}.jsonl"

    # --- writing ---------------------------------------------------------------------------

    def _line(self, data: bytes) -> bytes:
        return (self.cipher.encrypt(data) if self.cipher else data) + b"\n"

    def _append(self, path: Path, data: bytes) -> None:
        private_dir(path.parent)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        try:
            line = self._line(data)
            size = os.fstat(fd).st_size
            if size:  # wall off a line a crash left half-written
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def record(self, pair: TrainingPair) -> Path:
        path = self.path(pair.persona_id, pair.domain)
        self._append(path, pair.model_dump_json(exclude={"score"}).encode())
        return path

    def react(self, persona_id: str, message_id: str, positive: bool) -> None:
        path = self._dir(persona_id) / "reactions.jsonl"
        self._append(path, _Reaction(id=message_id, positive=positive).model_dump_json().encode())

    # --- reading ---------------------------------------------------------------------------

    def _lines(self, path: Path) -> Iterator[bytes]:
        if not path.is_file():
            return
        for number, raw in enumerate(path.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                yield self.cipher.decrypt(raw, f"{path}:{number}") if self.cipher else raw
            except MemoryKeyError:
                if raw.lstrip().startswith(b"{"):
                    raise MemoryKeyError(
                        f"{path}: training pairs are not encrypted, but a key is set"
                    ) from None
                log.warning("%s:%d: unreadable line skipped (a crash mid-write?)", path, number)

    def _reactions(self, persona_id: str) -> dict[str, int]:
        score: dict[str, int] = {}
        for raw in self._lines(self._dir(persona_id) / "reactions.jsonl"):
            try:
                r = _Reaction.model_validate_json(raw)
            except ValidationError:
                continue
            score[r.id] = score.get(r.id, 0) + (1 if r.positive else -1)
        return score

    def _read(self, path: Path) -> Iterator[TrainingPair]:
        for raw in self._lines(path):
            try:
                yield TrainingPair.model_validate_json(raw)
            except ValidationError:
                log.warning("%s: a malformed pair skipped (a crash mid-write?)", path)

    def pairs(self, persona_id: str, domain: str) -> list[TrainingPair]:
        """Every pair of one domain, oldest first, with its net reaction score."""
        scores = self._reactions(persona_id)
        return [
            p.model_copy(update={"score": scores.get(p.id, 0)})
            for p in self._read(self.path(persona_id, domain))
        ]

    def domains(self, persona_id: str) -> dict[str, int]:
        """Domain → number of pairs."""
        folder = self._dir(persona_id)
        if not folder.is_dir():
            return {}
        return {
            p.stem: sum(1 for _ in self._read(p))
            for p in sorted(folder.glob("*.jsonl"))
            if p.stem != "reactions" and DOMAIN.match(p.stem)
        }

    def personas(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/pairs") if p.is_dir())

    # --- forgetting ------------------------------------------------------------------------

    def forget_person(self, person_id: str) -> int:
        """Rewrite every pair file without the pairs that hold ``person_id``'s words."""
        who = person_id.lower()
        removed = 0
        for persona_id in self.personas():
            for domain in self.domains(persona_id):
                path = self.path(persona_id, domain)
                pairs = list(self._read(path))
                kept = [p for p in pairs if who not in p.people]
                gone = len(pairs) - len(kept)
                if gone:
                    data = b"".join(self._line(p.model_dump_json().encode()) for p in kept)
                    atomic_write_bytes(path, data)
                    removed += gone
        return removed


def load_pairs_jsonl(path: Path) -> list[TrainingPair]:
    """Pairs from a plain JSONL file (an export, or pairs written by hand), for training."""
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ContinuumError(f"--pairs {path}: {reason}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(TrainingPair.model_validate(json.loads(line)))
            except RecursionError:
                reason = "nested too deeply"
                raise ContinuumError(f"{path}:{number}: not a training pair: {reason}") from None
            except (ValueError, ValidationError) as exc:
                reason = str(exc).splitlines()[0]
                raise ContinuumError(f"{path}:{number}: not a training pair: {reason}") from None
    return out
