"""The editor's persona is the same live persona: continuum-lsp started by the editor
attaches to the `continuum serve` that owns the data dir, and what the person told it
through another host (linked in [[people]]) is recalled in the editor."""

from __future__ import annotations

import json
import sys

import anyio
import pytest
from lsp_testkit import PERSONAS, editor

from continuum.attach import runtime_is_serving
from continuum.config import parse_config
from continuum.runtime import Runtime
from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

pytestmark = pytest.mark.anyio


class Chat(RecordingHost):
    name = "chat"


async def test_the_editor_attaches_and_recalls_what_was_said_elsewhere(tmp_path):
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted, Sam.")
    people = [{"id": "sam", "name": "Sam", "host_ids": ["chat:u1", "lsp:sam-at-desk"]}]
    config = parse_config(
        {
            "memory": {"data_dir": str(tmp_path / "data")},
            "personas": {"paths": [str(PERSONAS)], "only": ["maya"]},
            "policy": {"cognition": "direct", "recall_k": 5},
            "hosts": {"chat": {}},
            "people": people,
        }
    )
    rt = Runtime(config, backend=backend, host_classes={"chat": Chat})
    async with rt, anyio.create_task_group() as tg:
        tg.start_soon(lambda: rt.serve(handle_signals=False))
        with anyio.fail_after(20):
            while not await runtime_is_serving(tmp_path / "data"):
                await anyio.sleep(0.05)
        told = text_envelope(
            "Please remember that our service must stay on Python 3.11.", host="chat",
            author="u1",
        )  # fmt: skip
        await (await rt.deliver("chat", told)).wait()
        await rt.hippocampus.drain()
        extra = "[[people]]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in people[0].items())
        command = [sys.executable, "-m", "continuum_lsp"]  # the real entry: no test model
        async with editor(
            tmp_path, lsp={"user_id": "sam-at-desk", "persona": "maya"}, extra=extra,
            command=[*command, "--config", str(tmp_path / "continuum.toml")],
        ) as ed:  # fmt: skip
            uri = ed.open()
            result = await ed.chat("Which Python version may I use here?", uri)
            assert result["text"] == "Noted, Sam."  # the served runtime's model answered
            assert "Python 3.11" in seen[-1]  # one memory, through the socket
            assert "lsp" in rt.hosts
        rt.request_shutdown()
