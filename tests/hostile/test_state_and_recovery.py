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


@pytest.mark.anyio
async def test_forget_after_a_link_forgets_what_was_said_before_it(tmp_path):
    """Sam tells Maya something on alpha, then links alpha with beta through the link
    code, then asks to be forgotten: what was said under alpha:u1 before the link goes too
    (before: forget looked only under the new person id and kept everything)."""
    from continuum.hosts.base import CommandEvent
    from continuum.testing import RecordingHost, text_envelope

    class Alpha(RecordingHost):
        name = "alpha"

    class Beta(RecordingHost):
        name = "beta"

    config = parse_config(
        {
            "memory": {"data_dir": str(tmp_path)},
            "policy": {"cognition": "direct"},
            "hosts": {"alpha": {}, "beta": {}},
        }
    )
    hosts = {"alpha": Alpha, "beta": Beta}
    backend = ScriptedBackend(lambda r: "Noted.")
    async with Runtime(config, personas=[MAYA], backend=backend, host_classes=hosts) as rt:
        told = text_envelope("Please remember that my PIN is 4417.", host="alpha", author="u1")
        await (await rt.deliver("alpha", told)).wait()
        await rt.hippocampus.drain()
        assert any("4417" in e.text for e in rt.memory.entries("maya"))
        sam_a = told.author
        sam_b = text_envelope("x", host="beta", author="u9").author
        alpha, beta = rt.host("alpha").services, rt.host("beta").services
        code = (await alpha.submit(CommandEvent(host="alpha", room_id="r", name="link",
                                                author=sam_a))).data["code"]  # fmt: skip
        done = await beta.submit(
            CommandEvent(host="beta", room_id="r", name="link", args=(code,), author=sam_b)
        )
        assert done.ok
        forget = CommandEvent(host="beta", room_id="r", name="forget", author=sam_b)
        gone = await beta.submit(forget)
        assert gone.ok and gone.data["forgotten"] >= 1
        assert not any("4417" in e.text for e in rt.memory.entries("maya"))
        assert not any("4417" in m.text for m in rt.router.room("alpha:room").history)
