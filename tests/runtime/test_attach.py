"""A host process attaches to a running runtime over <data dir>/runtime.sock: it gets the
same personas, memory and model, its replies stream back through the socket, and a fact
told through another host is recalled through it."""

from __future__ import annotations

import stat

import anyio
import pytest

from continuum.attach import attached, runtime_is_serving, socket_path
from continuum.config import parse_config
from continuum.hosts.base import CommandEvent
from continuum.persona import Persona
from continuum.runtime import Runtime
from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

pytestmark = pytest.mark.anyio
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")


async def until_serving(data_dir, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not await runtime_is_serving(data_dir):
            await anyio.sleep(0.02)


class Alpha(RecordingHost):
    name = "alpha"


class Editor(RecordingHost):  # lives in "another process": attached over the socket
    name = "editor"


async def test_an_attached_host_shares_the_served_runtimes_memory(tmp_path):
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted, Sam.")
    config = parse_config(
        {
            "memory": {"data_dir": str(tmp_path)},
            "policy": {"cognition": "direct", "recall_k": 5},
            "hosts": {"alpha": {}},
            "people": [{"id": "sam", "name": "Sam", "host_ids": ["alpha:u1", "editor:u1"]}],
        }
    )
    rt = Runtime(config, personas=[MAYA], backend=backend, host_classes={"alpha": Alpha})
    async with rt, anyio.create_task_group() as tg:
        tg.start_soon(lambda: rt.serve(handle_signals=False))
        await until_serving(tmp_path)
        assert stat.S_IMODE(socket_path(tmp_path).stat().st_mode) == 0o600
        told = text_envelope("Please remember that my sister Ada lives in Lisbon.",
                             host="alpha", author="u1")  # fmt: skip
        await (await rt.deliver("alpha", told)).wait()
        await rt.hippocampus.drain()
        async with attached(tmp_path, Editor) as editor:
            assert [p.id for p in editor.services.personas()] == ["maya"]
            asked = text_envelope("Where does my sister Ada live?", host="editor", author="u1")
            turn = await editor.services.deliver(asked)
            with anyio.fail_after(10):
                await turn.wait()
            assert turn.outcome == "answered"
            [reply] = editor.replies
            assert reply.start.persona_id == "maya" and reply.text == "Noted, Sam."
            assert reply.finished
            assert "Ada lives in Lisbon" in seen[-1]  # one memory, across the socket
            ask = CommandEvent(host="editor", room_id="room", name="personas", author=asked.author)
            result = await editor.services.submit(ask)
            assert result is not None and "Maya" in result.text
            assert "editor" in rt.hosts
        with anyio.fail_after(5):
            while "editor" in rt.hosts:  # detached when the process goes
                await anyio.sleep(0.02)
        rt.request_shutdown()
    assert not socket_path(tmp_path).exists()


async def test_a_second_host_of_the_same_name_is_refused(tmp_path):
    from continuum.errors import ContinuumError

    config = parse_config({"memory": {"data_dir": str(tmp_path)}, "hosts": {"alpha": {}}})
    backend = ScriptedBackend(lambda req: "hi")
    rt = Runtime(config, personas=[MAYA], backend=backend, host_classes={"alpha": Alpha})
    async with rt, anyio.create_task_group() as tg:
        tg.start_soon(lambda: rt.serve(handle_signals=False))
        await until_serving(tmp_path)
        with pytest.raises(ContinuumError, match="already running"):
            async with attached(tmp_path, Alpha):
                pass
        rt.request_shutdown()


async def test_run_host_attaches_when_a_runtime_serves_and_runs_its_own_otherwise(tmp_path):
    from continuum.host_process import run_host

    config = parse_config({"memory": {"data_dir": str(tmp_path)}, "personas": {"only": ["maya"]}})
    started: list[tuple[str, bool]] = []
    backend = ScriptedBackend(lambda req: "hi")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_host(
            Editor, config=config, backend=backend,
            ready=lambda h, a: started.append((h.name, a)),
        ))  # fmt: skip
        await until_serving(tmp_path, timeout=20)  # nothing to attach to: its own runtime
        tg.start_soon(lambda: run_host(
            Alpha, config=config, ready=lambda h, a: started.append((h.name, a)),
        ))  # fmt: skip
        with anyio.fail_after(10):
            while len(started) < 2:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert started == [("editor", False), ("alpha", True)]
