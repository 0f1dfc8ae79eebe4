"""State that survives crashes and concurrent processes: a turn killed midway leaves no
inbox item behind, and a second process on the same data dir is refused clearly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from continuum.config import parse_config
from continuum.errors import DataDirInUse
from continuum.persona import Persona
from continuum.runtime import Runtime
from continuum.testing import ScriptedBackend
from tests.conftest import THREADS

MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")


def test_a_second_runtime_on_one_data_dir_is_refused(tmp_path):
    config = parse_config({"memory": {"data_dir": str(tmp_path)}})
    first = Runtime(config, personas=[MAYA], backend=ScriptedBackend(lambda r: "x"))
    with pytest.raises(DataDirInUse, match="another continuum process"):
        Runtime(config, personas=[MAYA], backend=ScriptedBackend(lambda r: "x"))
    out = subprocess.run(
        [sys.executable, "-m", "continuum", "room", "--data-dir", str(tmp_path), "--say", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "another continuum process" in out.stderr
    first._close_stores()
    Runtime(config, personas=[MAYA], backend=ScriptedBackend(lambda r: "x"))._close_stores()


@pytest.mark.parametrize("verb", ["forget", "rebuild", "link"])
def test_writing_commands_are_refused_while_a_runtime_serves(tmp_path, verb):
    """Before: `memory forget` under a serving runtime removed the entry behind the
    runtime's index, and every later turn of that persona failed with a KeyError."""
    from continuum.memory.engine import MemoryEngine
    from continuum.memory.journal import JournalEntry

    engine = MemoryEngine(tmp_path, cipher=False)
    entry = engine.remember(JournalEntry(persona="maya", text="Sam likes tea.", partners=("sam",)))
    engine.close()
    cli = [sys.executable, "-m", "continuum"]
    command = {
        "forget": [*cli, "memory", "--data-dir", str(tmp_path), "forget", "--persona", "maya"],
        "rebuild": [*cli, "memory", "--data-dir", str(tmp_path), "rebuild"],
        "link": [*cli, "people", "link", "sam", "slack:U1", "--data-dir", str(tmp_path)],
    }[verb]
    command += [entry.id] if verb == "forget" else []
    config = parse_config({"memory": {"data_dir": str(tmp_path)}})
    runtime = Runtime(config, personas=[MAYA], backend=ScriptedBackend(lambda r: "x"))
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert "a running continuum" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    runtime._close_stores()
    assert subprocess.run(command, capture_output=True, text=True, timeout=120).returncode == 0


@pytest.mark.model
def test_a_turn_killed_midway_leaves_no_stale_inbox_item(tmp_path, model_path):
    room = [sys.executable, "-m", "continuum", "room", "--data-dir", str(tmp_path), "--only"]
    room += ["maya", "--cognition", "direct", "--threads", str(THREADS)]
    state = tmp_path / "state" / "maya.json"
    for _ in range(3):  # three kills mid-turn
        proc = subprocess.Popen(
            [*room, "--max-tokens", "400", "--say", "Tell me everything about caches."],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if state.exists() and json.loads(state.read_text())["inbox"]["items"]:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise AssertionError("the turn never started")
        time.sleep(0.5)  # mid-generation
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert json.loads(state.read_text())["inbox"]["items"]  # the crash left it behind
    out = subprocess.run(
        [*room, "--max-tokens", "8", "--json", "--say", "Hello Maya!"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    [turn] = json.loads(out.stdout)["turns"]
    assert [r["persona_id"] for r in turn["replies"]] == ["maya"]  # not sitting it out
    saved = json.loads(state.read_text())
    assert saved["inbox"]["items"] == []
