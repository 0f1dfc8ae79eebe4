"""Forget means forgotten, files are private, nothing is followed out of the data dir,
a broken index or hand edit loses nothing and serves nothing stale, and encryption is
never silently half-on."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from continuum.errors import ContinuumError
from continuum.memory.atomic import UnsafePath
from continuum.memory.crypto import Cipher, MemoryKeyError
from continuum.memory.engine import MemoryEngine
from continuum.memory.journal import JournalEntry

SECRET = "zebra-marmalade-4471"


def cli(data: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "continuum", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=data.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(data.parent), **(env or {})},
    )


def grep(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle`` (sqlite files included)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            hits.append(path)
    return hits


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("CONTINUUM_MEMORY_KEY", raising=False)


def test_forget_leaves_no_trace_anywhere_in_the_data_dir(tmp_path, embedder):
    data = tmp_path / "data"
    engine = MemoryEngine(data, embedder=embedder, cipher=False)
    for i in range(30):  # other memories in the same index segments
        engine.remember(JournalEntry(persona="maya", text=f"Ordinary note {i} about ovens."))
    entry = engine.remember(
        JournalEntry(persona="maya", text=f"Sam's password hint is {SECRET}.", partners=("sam",))
    )
    # a careless user copies the journal file under another name
    path = engine.journal("maya").path_for(entry.id)
    shutil.copy(path, path.with_name("20200101T000000-000000.md"))
    engine.rebuild()
    assert grep(data, SECRET)
    assert engine.forget("maya", entry.id)
    engine.close()
    assert grep(data, SECRET) == []
    reopened = MemoryEngine(data, embedder=embedder, cipher=False)
    assert reopened.recall("maya", f"password hint {SECRET}") == [] or all(
        SECRET not in r.text for r in reopened.recall("maya", f"password hint {SECRET}")
    )
    reopened.close()


def test_a_person_forgets_everything_about_them(tmp_path, embedder):
    engine = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    for persona in ("maya", "otto"):
        engine.remember(JournalEntry(persona=persona, text=f"Ada said {SECRET}", partners=("ada",)))
    kept = engine.remember(JournalEntry(persona="maya", text="Ben likes tea", partners=("ben",)))
    assert engine.forget_person("ada") == 2
    assert [e.id for e in engine.entries("maya")] == [kept.id] and engine.entries("otto") == []
    engine.close()
    assert grep(tmp_path, SECRET) == []


def test_everything_under_the_data_dir_is_private(tmp_path, embedder):
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        engine = MemoryEngine(data, embedder=embedder, cipher=False)
        engine.remember(JournalEntry(persona="maya", text="a note"))
        engine.close()
        from continuum.cognition.state import PersonaState, PersonaStateStore
        from continuum.router import MessageMap

        PersonaStateStore(data / "state").save(PersonaState(persona_id="maya"), force=True)
        MessageMap(data / "messages.sqlite3").close()
        out = cli(data, "memory", "--data-dir", str(data), "export", "--persona", "maya",
                  "-o", str(tmp_path / "export.json"))  # fmt: skip
        assert out.returncode == 0, out.stderr
    finally:
        os.umask(old)
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path} is {oct(mode)}"
    assert stat.S_IMODE((tmp_path / "export.json").stat().st_mode) == 0o600


def test_forget_never_follows_a_symlink_out_of_the_data_dir(tmp_path, embedder):
    engine = MemoryEngine(tmp_path / "data", embedder=embedder, cipher=False)
    entry = engine.remember(JournalEntry(persona="maya", text="to be forgotten"))
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "thesis.md").write_text("years of work")
    history = engine.journal("maya").history_root / entry.id
    shutil.rmtree(history)
    history.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath):
        engine.forget("maya", entry.id)
    assert (outside / "thesis.md").read_text() == "years of work"


def test_persona_ids_never_become_paths(tmp_path):
    data = tmp_path / "data"
    for bad in ("../../escape", str(tmp_path / "abs"), "Maya/..", ""):
        out = cli(data, "memory", "--data-dir", str(data), "list", "--persona", bad)
        assert out.returncode == 2 and "not a persona id" in out.stderr, (bad, out.stderr)
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "escape").exists() and not (tmp_path / "abs").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-schema", "empty-wal"])
def test_a_broken_index_is_rebuilt_from_the_files(tmp_path, embedder, damage):
    import sqlite3

    data = tmp_path / "data"
    engine = MemoryEngine(data, embedder=embedder, cipher=False)
    entry = engine.remember(JournalEntry(persona="maya", text="The bridge opens at nine."))
    engine.close()
    index = data / "index.sqlite3"
    if damage == "garbage":
        index.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        index.write_bytes(index.read_bytes()[:1500])
    elif damage == "other-schema":
        index.unlink()
        db = sqlite3.connect(index)
        db.execute("CREATE TABLE entries (x)")
        db.commit()
        db.close()
    else:
        index.with_name("index.sqlite3-wal").write_bytes(b"\0" * 100)
    out = cli(data, "memory", "--data-dir", str(data), "list", "--persona", "maya")
    assert out.returncode == 0 and entry.id in out.stdout, out.stderr
    out = cli(data, "memory", "--data-dir", str(data), "rebuild")
    assert out.returncode == 0 and "indexed 1 entries" in out.stdout, out.stderr
    out = cli(data, "memory", "--data-dir", str(data), "search", "--persona", "maya", "bridge")
    assert entry.id in out.stdout


def test_a_broken_hand_edit_is_reported_skipped_and_never_served_stale(tmp_path, embedder):
    engine = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    bad = engine.remember(JournalEntry(persona="maya", text="Pelicans nest on the pier."))
    good = engine.remember(JournalEntry(persona="maya", text="Herons fish at dawn."))
    path = engine.journal("maya").path_for(bad.id)
    path.write_text("---\nid: [unclosed\n---\nPelicans everywhere")
    report = engine.sync()
    assert len(report.broken) == 1 and str(path) in report.broken[0]
    assert all("Pelicans" not in r.text for r in engine.recall("maya", "pelicans pier nest"))
    engine.close()
    out = cli(tmp_path, "memory", "--data-dir", str(tmp_path), "list", "--persona", "maya")
    assert good.id in out.stdout and "skipped" in out.stderr and str(path) in out.stderr


def test_a_key_on_a_plaintext_memory_is_refused_then_encrypted_in_place(tmp_path, embedder):
    data = tmp_path / "data"
    engine = MemoryEngine(data, embedder=embedder, cipher=False)
    entry = engine.remember(JournalEntry(persona="maya", text=f"Locker code {SECRET}"))
    engine.profile("maya").apply({"add_hobbies": ["chess"]})
    engine.close()
    key = Cipher.generate_key()
    env = {"CONTINUUM_MEMORY_KEY": key}
    out = cli(data, "memory", "--data-dir", str(data), "list", "--persona", "maya", env=env)
    assert out.returncode == 2 and "continuum memory encrypt" in out.stderr
    out = cli(data, "memory", "--data-dir", str(data), "list", "--persona", "maya",
              env={"CONTINUUM_MEMORY_KEY": ""})  # fmt: skip
    assert out.returncode == 2 and "set but empty" in out.stderr
    out = cli(data, "memory", "--data-dir", str(data), "encrypt", env=env)
    assert out.returncode == 0, out.stderr
    assert grep(data, SECRET) == [] and grep(data, "chess") == []
    out = cli(data, "memory", "--data-dir", str(data), "show", "--persona", "maya", entry.id,
              env=env)  # fmt: skip
    assert out.returncode == 0 and SECRET in out.stdout
    out = cli(data, "memory", "--data-dir", str(data), "list", "--persona", "maya")
    assert out.returncode == 2 and "no key" in out.stderr  # and never empty-with-exit-0
    with pytest.raises(MemoryKeyError):
        MemoryEngine(data, embedder=embedder, cipher=Cipher(Cipher.generate_key())).entries("maya")


def test_clear_one_line_errors_for_bad_arguments(tmp_path, embedder):
    data = tmp_path / "data"
    engine = MemoryEngine(data, embedder=embedder, cipher=False)
    engine.remember(JournalEntry(persona="maya", text="x"))
    engine.close()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    empty_dir = tmp_path / "no-personas"
    empty_dir.mkdir()
    memory = ["memory", "--data-dir", str(data)]
    cases = [
        ([*memory, "show", "--persona", "maya", "nope"], "not a journal entry id"),
        ([*memory, "show", "--persona", "maya", "20200101T000000-abcdef"], "no journal entry"),
        ([*memory, "forget", "--persona", "maya", "20200101T000000-abcdef"], "no journal entry"),
        ([*memory, "search", "--persona", "maya", "x", "--since", "yesterday"], "--since"),
        ([*memory, "export", "--persona", "maya", "-o", "/nonexistent/x.json"], "no such dir"),
        (["memory", "--data-dir", str(a_file), "list", "--persona", "maya"], "is a file"),
        (["room", "--backend", "nosuch", "--say", "hi"], "unknown backend"),
        (["room", "--name", "", "--say", "hi", "--no-memory"], "--name"),
        (["room", "--max-tokens", "0", "--say", "hi", "--no-memory"], "--max-tokens"),
        (["room", "--data-dir", str(a_file), "--say", "hi"], "is a file"),
        (["room", "--personas", str(empty_dir), "--say", "hi", "--no-memory"], "no persona files"),
        (
            [
                "room",
                "--backend",
                "server",
                "--server-url",
                "localhost:8080",
                "--say",
                "hi",
                "--no-memory",
            ],
            "not a server URL",
        ),
        (["serve", "--config", str(tmp_path / "missing.toml")], "continuum init"),
    ]
    for args, expected in cases:
        out = cli(data, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert expected in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, (
            args,
            out.stderr,
        )


def test_persona_files_and_cards_have_limits(tmp_path):
    import base64
    import json
    import resource
    import struct
    import time
    import zlib

    from continuum.character_cards import import_card
    from continuum.errors import PersonaFileError
    from continuum.persona_files import load_persona

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\0" * 13)
    bomb = zlib.compress(b"A" * (400 << 20), 9)  # 400 MiB of text in well under 1 MiB
    card = png + chunk(b"zTXt", b"chara\0\0" + bomb) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(card)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(PersonaFileError, match="inflates past"):
        import_card(tmp_path / "bomb.png")
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB

    nested = '{"a":' * 100_000 + "1" + "}" * 100_000
    (tmp_path / "deep.json").write_text(nested)
    with pytest.raises(PersonaFileError, match="nested deeper"):
        import_card(tmp_path / "deep.json")
    inner = base64.b64encode(nested.encode()).decode()
    (tmp_path / "deep.png").write_bytes(
        png + chunk(b"tEXt", b"chara\0" + inner.encode()) + chunk(b"IEND", b"")
    )
    with pytest.raises(PersonaFileError, match="nested deeper"):
        import_card(tmp_path / "deep.png")

    huge = tmp_path / "huge.toml"
    huge.write_text('id = "big"\nname = "Big"\nidentity = "' + "x" * (60 << 20) + '"\n')
    start = time.monotonic()
    with pytest.raises(PersonaFileError, match="larger than"):
        load_persona(huge)
    assert time.monotonic() - start < 2
    long_field = tmp_path / "long.toml"
    long_field.write_text('id = "long"\nname = "Long"\nidentity = "' + "x" * 40_000 + '"\n')
    with pytest.raises(PersonaFileError, match="identity"):
        load_persona(long_field)
    card_json = {"spec": "chara_card_v2", "data": {"name": "N", "description": "d" * 40_000}}
    (tmp_path / "long.json").write_text(json.dumps(card_json))
    with pytest.raises(PersonaFileError, match="identity"):
        import_card(tmp_path / "long.json")


def test_a_yaml_alias_bomb_in_a_journal_is_refused_quickly(tmp_path, embedder):
    import time

    engine = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    entry = engine.remember(JournalEntry(persona="maya", text="fine"))
    lines = ["---", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{','.join([f'*{prev}'] * 9)}]")
    lines += ["persona: maya", f"id: {entry.id}", "---", "boom"]
    engine.journal("maya").path_for(entry.id).write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    report = engine.sync()
    assert time.monotonic() - start < 2
    assert report.broken and "aliases are not allowed" in report.broken[0]
    engine.close()


def test_unknown_entry_errors_are_continuum_errors():
    from continuum.memory.journal import UnknownEntry

    assert issubclass(UnknownEntry, ContinuumError)


@pytest.mark.anyio
async def test_the_forget_command_leaves_no_trace_of_what_a_person_said(tmp_path):
    """Item 4 end to end: a person tells a persona something in a room, the turn runs
    (persona state, message map, memory all written), then the person runs `forget`:
    nothing under the data dir still holds their words."""
    from continuum.config import parse_config
    from continuum.hosts.base import CommandEvent
    from continuum.persona import Persona
    from continuum.runtime import Runtime
    from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

    class Alpha(RecordingHost):
        name = "alpha"

    data = tmp_path / "data"
    config = parse_config(
        {
            "memory": {"data_dir": str(data)},
            "policy": {"cognition": "direct"},
            "hosts": {"alpha": {}},
        },
        tmp_path / "continuum.toml",
    )
    maya = Persona(id="maya", name="Maya", identity="A performance engineer.")
    backend = ScriptedBackend(lambda req: "Noted, thanks.")
    async with Runtime(
        config, personas=[maya], backend=backend, host_classes={"alpha": Alpha}
    ) as rt:
        said = text_envelope(
            f"Please remember that my locker code is {SECRET}.", host="alpha", author="u1"
        )
        await (await rt.deliver("alpha", said)).wait()
        assert grep(data, SECRET)  # it was written somewhere: the test can fail
        result = await rt.host("alpha").services.submit(
            CommandEvent(host="alpha", room_id="room", name="forget", author=said.author)
        )
        assert result.ok and result.data["forgotten"] >= 1
    assert grep(data, SECRET) == []
