from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from continuum_lsp.host import plain

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SCRIPTED = HERE / "scripted_server.py"
PERSONAS = ROOT / "examples" / "personas"

CODE = """def lookup(table, key):
    if table.get(key) == None:
        return default_for(key)
    return table[key]


class Cache:
    def get(self, key):
        return self.data.get(key)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_config(tmp_path: Path, lsp: dict | None = None, extra: str = "") -> Path:
    data = tmp_path / "data"
    lines = [
        f"[memory]\ndata_dir = {str(data)!r}\n",
        f"[personas]\npaths = [{str(PERSONAS)!r}]\nonly = ['maya', 'juno']\n",
        "[hosts.lsp]",
        *(f"{k} = {json.dumps(v)}" for k, v in (lsp or {}).items()),
        extra,
    ]
    path = tmp_path / "continuum.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Editor:
    """A pytest-lsp client talking to continuum-lsp over stdio, plus what the scripted
    model saw."""

    def __init__(self, client: LanguageClient, workspace: Path, prompts: Path) -> None:
        self.client, self.workspace, self.prompts_file = client, workspace, prompts
        self.version = 0
        self.capabilities: types.ServerCapabilities | None = None

    def prompts(self) -> list[dict]:
        if not self.prompts_file.exists():
            return []
        return [json.loads(ln) for ln in self.prompts_file.read_text().splitlines() if ln]

    def open(self, name: str = "lookup.py", text: str = CODE) -> str:
        uri = (self.workspace / name).as_uri()
        self.version = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    async def code_actions(self, params: types.CodeActionParams) -> list[dict]:
        """textDocument/codeAction as the JSON the server sent. (lsprotocol's client-side
        hook reads every item with a "command" key as a Command, so a CodeAction that
        carries a command comes back mangled: the raw result is what an editor gets.)"""
        msg_id = f"actions-{id(params)}"
        future = self.client.protocol.send_request(
            types.TEXT_DOCUMENT_CODE_ACTION, params, msg_id=msg_id
        )
        self.client.protocol._result_types.pop(msg_id, None)
        return await asyncio.wrap_future(future)

    async def chat(self, prompt: str, uri: str | None = None, selection=None, **extra) -> dict:
        params: dict = {"prompt": prompt, **extra}
        if uri:
            params["textDocument"] = {"uri": uri}
        if selection is not None:
            params["range"] = selection
        # a custom request's result arrives as namedtuples (pygls): JSON values again
        return plain(await self.client.protocol.send_request_async("continuum/chat", params))


def span(l0: int, c0: int, l1: int, c1: int) -> dict:
    return {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}


@contextlib.asynccontextmanager
async def editor(
    tmp_path: Path,
    script: str = "answer",
    lsp: dict | None = None,
    command: list[str] | None = None,
    extra: str = "",
) -> AsyncIterator[Editor]:
    workspace = tmp_path / "project"
    workspace.mkdir(exist_ok=True)
    (workspace / "CONVENTIONS.md").write_text("Compare with None using `is`, never `==`.\n")
    config = write_config(tmp_path, lsp, extra)
    prompts = tmp_path / "prompts.jsonl"
    env = {
        **os.environ,
        "CONTINUUM_TEST_SCRIPT": script,
        "CONTINUUM_TEST_PROMPTS": str(prompts),
    }
    server = ClientServerConfig(
        server_command=command or [sys.executable, str(SCRIPTED), "--config", str(config)],
        server_env=env,
    )
    client = await server.start()
    initialized = await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="project")],
        )
    )
    try:
        ed = Editor(client, workspace, prompts)
        ed.capabilities = initialized.capabilities
        yield ed
    finally:
        await client.shutdown_session()
        await client.stop()
