"""continuum-lsp as an editor runs it: a real subprocess over stdio, driven by pytest-lsp
(pygls's client, unpatched). The model behind it is scripted (tests/scripted_server.py);
test_lsp_model.py runs the real embedded one."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsp_testkit import CODE, editor, span
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from continuum_lsp.host import plain

pytestmark = pytest.mark.anyio


async def test_initialize_offers_chat_commands_code_actions_and_no_hover_by_default(tmp_path):
    async with editor(tmp_path) as ed:
        caps = ed.capabilities
        assert set(caps.execute_command_provider.commands) >= {"continuum.ask", "continuum.review"}
        assert caps.code_action_provider
        assert not caps.hover_provider  # a model call per hover: opt-in


async def test_code_actions_on_a_selection_list_the_persona_commands(tmp_path):
    async with editor(tmp_path) as ed:
        uri = ed.open()
        actions = await ed.code_actions(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(types.Position(1, 0), types.Position(3, 0)),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        titles = [a["title"] for a in actions]
        assert "Ask Maya about this" in titles and "Ask Juno about this" in titles
        ask = next(a for a in actions if a["title"] == "Ask Maya about this")
        assert ask["command"]["command"] == "continuum.ask"
        assert ask["command"]["arguments"][2] == uri
        assert any(t.startswith("Review this file with") for t in titles)


async def test_chat_streams_progress_and_returns_the_answer_with_only_the_selection(tmp_path):
    long_file = CODE + "\n".join(f"x{i} = {i}  # filler line {i}" for i in range(400)) + "\n"
    async with editor(tmp_path) as ed:
        uri = ed.open(text=long_file)
        token = "chat-1"
        ed.client.progress_reports[token] = []
        result = await ed.chat(
            "Why might this return the wrong thing?", uri, span(1, 0, 3, 0),
            persona="maya", workDoneToken=token,
        )  # fmt: skip
        assert result["text"] == "Profile it first. Then cache the hot path."
        assert result["persona"] == "Maya"
        kinds = [r.kind for r in ed.client.progress_reports[token]]
        assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
        streamed = "".join(r.message or "" for r in ed.client.progress_reports[token]
                           if r.kind == "report")  # fmt: skip
        assert streamed == result["text"]
        [seen] = ed.prompts()
        prompt = seen["prompt"]
        assert "if table.get(key) == None:" in prompt  # the selection
        assert "filler line 399" not in prompt  # not the whole file: a bounded window
        assert "Outline of lookup.py" in prompt and "class Cache:" in prompt
        assert "Compare with None using `is`" in prompt  # the workspace's conventions
        assert prompt.index("Compare with None using") < prompt.index("Why might this")


async def test_cancel_request_stops_generation_at_once(tmp_path):
    async with editor(tmp_path, script="slow") as ed:
        uri = ed.open()
        token = "chat-slow"
        ed.client.progress_reports[token] = []
        params = {"prompt": "Explain everything", "textDocument": {"uri": uri},
                  "workDoneToken": token}  # fmt: skip
        request = asyncio.ensure_future(
            ed.client.protocol.send_request_async("continuum/chat", params, msg_id="req-slow")
        )
        while not any(r.kind == "report" for r in ed.client.progress_reports[token]):
            await asyncio.sleep(0.05)
        cancelled_at = time.monotonic()
        ed.client.protocol.notify("$/cancelRequest", types.CancelParams(id="req-slow"))
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(request, 10)
        assert err.value.code == -32800  # RequestCancelled
        assert time.monotonic() - cancelled_at < 5
        await asyncio.sleep(0.5)
        reports = [r for r in ed.client.progress_reports[token] if r.kind == "report"]
        await asyncio.sleep(1.0)
        after = [r for r in ed.client.progress_reports[token] if r.kind == "report"]
        assert len(after) == len(reports) < 60  # 201 words at 0.1 s: stopped, not finished
        assert ed.client.progress_reports[token][-1].kind == "end"


async def test_cancelling_the_progress_stops_the_turn_and_the_request_says_so(tmp_path):
    async with editor(tmp_path, script="slow") as ed:
        uri = ed.open()
        token = "chat-progress-cancel"
        ed.client.progress_reports[token] = []
        request = asyncio.ensure_future(ed.chat("Explain", uri, workDoneToken=token))
        while not any(r.kind == "report" for r in ed.client.progress_reports[token]):
            await asyncio.sleep(0.05)
        ed.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(request, 10)
        assert err.value.code == -32800  # RequestCancelled
        assert "stopped" in err.value.message


async def test_a_failed_turn_is_an_error_with_the_reason_never_a_hang(tmp_path):
    async with editor(tmp_path, script="fail") as ed:
        uri = ed.open()
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(ed.chat("Explain", uri), 30)
        assert err.value.code == -32803  # RequestFailed
        assert "could not answer" in err.value.message or "did not answer" in err.value.message


async def test_a_review_publishes_diagnostics_whose_quick_fix_applies(tmp_path):
    async with editor(tmp_path, lsp={"reviewer": "juno"}) as ed:
        uri = ed.open()
        result = plain(
            await ed.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="continuum.review", arguments=[uri])
            )
        )
        assert result["findings"] == 1 and result["reviewer"] == "Juno"
        for _ in range(100):
            if ed.client.diagnostics.get(uri):
                break
            await asyncio.sleep(0.05)
        [diag] = ed.client.diagnostics[uri]
        assert diag.source == "Juno" and diag.range.start.line == 1
        assert "is None" in diag.message
        assert ed.prompts()[-1]["schema"]  # asked for as JSON (structured output)
        actions = await ed.code_actions(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=diag.range,
                context=types.CodeActionContext(diagnostics=[diag]),
            )
        )
        [fix] = [a for a in actions if a.get("kind") == "quickfix"]
        [edit] = fix["edit"]["changes"][uri]
        lines = CODE.splitlines(keepends=True)
        start, end = edit["range"]["start"]["line"], edit["range"]["end"]["line"]
        fixed = "".join(lines[:start]) + edit["newText"] + "".join(lines[end:])
        assert "    if value is None:\n" in fixed and "== None" not in fixed
        assert fixed.count("\n") == CODE.count("\n")


async def test_hover_is_cached_per_document_version(tmp_path):
    async with editor(tmp_path, lsp={"hover": True, "persona": "maya"}) as ed:
        uri = ed.open()
        at = types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 6)
        )
        first = await ed.client.text_document_hover_async(at)
        assert "Maya" in first.contents.value
        await ed.client.text_document_hover_async(at)
        assert len(ed.prompts()) == 1  # same version: cached
        ed.change(uri, CODE.replace("return table[key]", "return table[key] or None"))
        await ed.client.text_document_hover_async(at)
        assert len(ed.prompts()) == 2  # a new version: asked again


async def test_malformed_requests_get_errors_and_the_server_goes_on(tmp_path):
    async with editor(tmp_path) as ed:
        for params in ({}, {"prompt": ""}, {"prompt": 5}, {"prompt": "x", "range": "all"}):
            with pytest.raises(JsonRpcException) as err:
                await ed.client.protocol.send_request_async("continuum/chat", params)
            assert err.value.code == -32602  # InvalidParams
        with pytest.raises(JsonRpcException):
            await ed.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="continuum.nope", arguments=[])
            )
        with pytest.raises(JsonRpcException):
            await ed.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="continuum.review", arguments=[42])
            )
        with pytest.raises(JsonRpcException):
            await ed.client.protocol.send_request_async(
                "continuum/chat", {"prompt": "hi", "persona": "nobody"}
            )
        # documents opened, changed and closed quickly; then a request still works
        for i in range(20):
            uri = ed.open(f"f{i}.py", f"x = {i}\n")
            ed.change(uri, f"x = {i + 1}\n")
            ed.client.text_document_did_close(
                types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri))
            )
        uri = ed.open()
        assert (await ed.chat("still there?", uri))["text"]


async def test_the_client_exiting_without_shutdown_stops_the_server(tmp_path):
    import os
    import sys

    from lsp_testkit import SCRIPTED, write_config

    config = write_config(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPTED), "--config", str(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
    process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await process.stdin.drain()
    header = await asyncio.wait_for(process.stdout.readline(), 60)
    assert header.startswith(b"Content-Length:")  # only the protocol on stdout
    process.stdin.close()  # the editor crashed: no shutdown, no exit
    code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
