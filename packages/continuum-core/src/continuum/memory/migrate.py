"""``continuum memory encrypt``: turn a plaintext memory into an encrypted one, in place.

Crash-safe and resumable: every plaintext file first gets its encrypted twin (written
atomically), and only then is the plaintext overwritten and removed; a run killed midway
is finished by running it again (a twin that decrypts means its plaintext can go). The
plaintext recall index is removed (an encrypted memory keeps its index in process memory
only), and messages waiting to be answered are re-encoded.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from continuum.memory.atomic import atomic_write_bytes, inside
from continuum.memory.crypto import ENV_KEY, MemoryKeyError, cipher_from_environment
from continuum.memory.engine import default_data_dir


@dataclass
class EncryptReport:
    files: int = 0
    pending: int = 0


def _plain_files(data_dir: Path) -> list[tuple[Path, Path]]:
    """(plaintext, encrypted twin) pairs for journals, their versions and profiles."""
    pairs = []
    for persona in sorted((data_dir / "personas").glob("*")):
        if not persona.is_dir() or persona.is_symlink():
            continue
        journal = persona / "journal"
        for path in journal.rglob("*.md"):
            pairs.append((path, path.with_name(path.name + ".enc")))
        profile = persona / "profile.json"
        if profile.exists():
            pairs.append((profile, persona / "profile.json.enc"))
        for version in (persona / "profile.history").glob("*.json"):
            pairs.append((version, version.with_suffix(".enc")))
    return [(p, e) for p, e in pairs if not p.is_symlink()]


def _shred(path: Path) -> None:
    """Overwrite a file with zeros before removing it (what the filesystem allows)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


def encrypt_in_place(data_dir: Path | None = None, key_env: str = ENV_KEY) -> EncryptReport:
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cipher = cipher_from_environment(key_env)
    if cipher is None:
        raise MemoryKeyError(f"set {key_env} to the key to encrypt with (continuum memory keygen)")
    report = EncryptReport()
    for plain, twin in _plain_files(data_dir):
        inside(data_dir, plain)
        data = plain.read_bytes()
        if twin.exists():  # a previous run got this far: the twin must hold the same bytes
            if cipher.decrypt(twin.read_bytes(), str(twin)) != data:
                atomic_write_bytes(twin, cipher.encrypt(data))
        else:
            atomic_write_bytes(twin, cipher.encrypt(data))
        _shred(plain)
        report.files += 1
    index = data_dir / "index.sqlite3"
    for path in (index, index.with_name("index.sqlite3-wal"), index.with_name("index.sqlite3-shm")):
        if path.is_file() and not path.is_symlink():
            _shred(path)
    messages = data_dir / "messages.sqlite3"
    if messages.is_file():
        db = sqlite3.connect(messages)
        rows = db.execute("SELECT message_id, envelope FROM pending").fetchall()
        for message_id, blob in rows:
            if blob.lstrip().startswith(b"{"):  # plaintext JSON
                db.execute(
                    "UPDATE pending SET envelope = ? WHERE message_id = ?",
                    (cipher.encrypt(blob), message_id),
                )
                report.pending += 1
        db.commit()
        db.execute("PRAGMA secure_delete=ON")
        db.execute("VACUUM")
        db.close()
    return report
