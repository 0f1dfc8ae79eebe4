"""LspHost: continuum's personas in any LSP editor, through pygls 2.

The language server is a continuum host. Started by the editor (``continuum-lsp``), it
attaches to the runtime serving the data dir when there is one (the same live personas
as in Slack and Discord: one memory, one model, one person) and runs a runtime of its own
otherwise. Nothing but the protocol reaches stdout.

What it offers the editor:

- ``continuum/personas``: who can be asked (id, name, specialty).
- ``continuum/chat`` (a request with a ``workDoneToken``): a persona's answer about a
  selection or file streams as ``$/progress`` reports and the request returns the final
  text — the shape Copilot's language server uses. ``$/cancelRequest`` or cancelling the
  progress stops generation at once; a shed or failed turn is an LSP error with the
  reason, never a hang.
- ``workspace/executeCommand``: ``continuum.ask`` (persona, question, uri, range) and
  ``continuum.review`` (uri), offered as code actions on a selection.
- Review as diagnostics: the reviewer persona answers as JSON (``Envelope.reply_format``);
  each finding is published with the persona's name as ``source`` and a quick fix whose
  ``WorkspaceEdit`` applies its replacement.
- Hover (opt-in, ``hover = true``): a persona's short explanation of a symbol, cached per
  document version.

Rooms are per workspace (or per file) and *sealed*: what the reviewer learns about this
repository's conventions is recalled in this workspace only.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import anyio
from lsprotocol import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcRequestCancelled
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from continuum.envelope import (
    Envelope,
    Participant,
    ParticipantKind,
    ReplyFormat,
    ReplyTarget,
    TextPart,
)
from continuum.errors import ContinuumError, HostFailed
from continuum.events import ReplyPosted
from continuum.hosts.base import (
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    PersonaCard,
    ReplySink,
    ReplyStart,
)
from continuum_lsp.config import LspConfig
from continuum_lsp.context import review_message, selection_context

log = logging.getLogger("continuum.lsp")

CHAT = "continuum/chat"
PERSONAS = "continuum/personas"
ASK = "continuum.ask"
REVIEW = "continuum.review"
SOURCE = "continuum"


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid, the persona could not answer."""

    CODE = -32803
    MESSAGE = "Request failed"


# --- the wire shapes ---------------------------------------------------------------------


class _Position(BaseModel):
    model_config = ConfigDict(extra="ignore")
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class _Range(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start: _Position
    end: _Position

    def lsp(self) -> types.Range:
        return types.Range(
            start=types.Position(line=self.start.line, character=self.start.character),
            end=types.Position(line=self.end.line, character=self.end.character),
        )


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uri: str = Field(min_length=1)


class ChatParams(BaseModel):
    """``continuum/chat`` params."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    prompt: str = Field(min_length=1, max_length=20_000)
    persona: str | None = None
    text_document: _Document | None = Field(default=None, alias="textDocument")
    range: _Range | None = None
    work_done_token: str | int | None = Field(default=None, alias="workDoneToken")


class Finding(BaseModel):
    """One review finding (the reviewer persona's structured output)."""

    line: int = Field(ge=1)
    end_line: int | None = Field(default=None, ge=1)
    severity: Literal["error", "warning", "info", "hint"] = "warning"
    message: str = Field(min_length=1, max_length=500)
    replacement: str | None = None  # the new text for lines line..end_line


class Review(BaseModel):
    findings: list[Finding] = Field(default_factory=list, max_length=20)


def plain(value: Any) -> Any:
    """Params of a custom request (and command arguments) as JSON values: pygls hands
    them over as nested namedtuples."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


@dataclass
class _Pending:
    """A request waiting for a persona's reply."""

    token: str | int | None
    chunks: list[str] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=dict)
    turn: Any = None
    cancelled: bool = False  # the editor cancelled the progress
    aborted: str = ""  # the core ended the reply early (why)


class _Sink(ReplySink):
    def __init__(self, host: LspHost, pending: _Pending | None) -> None:
        self.host, self.pending = host, pending

    async def write(self, delta: str) -> None:
        if self.pending is None:
            return
        self.pending.chunks.append(delta)
        if self.pending.token is not None:
            self.host.server.work_done_progress.report(
                self.pending.token, types.WorkDoneProgressReport(message=delta)
            )

    async def finish(self) -> str | None:
        return None

    async def abort(self, reason: str) -> None:
        if self.pending is not None:
            self.pending.aborted = reason


class _Protocol(LanguageServerProtocol):
    """pygls's protocol, but ``exit`` stops the server instead of the process: the
    runtime behind it shuts down cleanly (memory written, slots saved)."""

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Any:
        host: LspHost | None = getattr(self._server, "continuum_host", None)
        if host is not None:
            host.stop()
        yield from ()


class _ThreadedReader:
    """stdin read on a daemon thread into an asyncio StreamReader (readline, readexactly):
    a server asked to stop never waits on a blocked read."""

    def __init__(self, stream: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        self.reader = asyncio.StreamReader(limit=64 << 20)
        self.loop = loop
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: BinaryIO) -> None:
        try:  # the raw descriptor: a blocked read holds no lock at interpreter exit
            fd = stream.fileno()

            def read(n: int) -> bytes:
                return os.read(fd, n)
        except (AttributeError, OSError, ValueError):  # not a file (tests: a pipe object)
            read = getattr(stream, "read1", stream.read)
        while True:
            try:
                chunk = read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                self.loop.call_soon_threadsafe(self.reader.feed_eof)
                return
            self.loop.call_soon_threadsafe(self.reader.feed_data, chunk)

    def readline(self) -> Any:
        return self.reader.readline()

    def readexactly(self, n: int) -> Any:
        return self.reader.readexactly(n)


class LspHost(HostAdapter):
    name: ClassVar[str] = "lsp"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(streaming=True, markup="markdown")
    config_model: ClassVar[type[HostConfig]] = LspConfig
    # an editor asks one persona at a time: no shared analysis, a longer answer
    default_policy: ClassVar[dict[str, Any]] = {"cognition": "direct", "reply_max_tokens": 256}
    config: LspConfig

    # the process's stdio (set by continuum-lsp's main; tests use pipes)
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        self.server = LanguageServer(
            "continuum-lsp", "0.1.0", protocol_cls=_Protocol, max_workers=2
        )
        self.server.continuum_host = self  # type: ignore[attr-defined]
        user = self.config.user_id or getpass.getuser()
        self.me = Participant(id=user, name=self.config.user_name or user)
        self.done = anyio.Event()
        self._stop = threading.Event()
        self._pending: dict[str, _Pending] = {}
        self._by_token: dict[str | int, _Pending] = {}
        self._rooms: set[str] = set()
        self._hover: OrderedDict[tuple[str, int, str], str] = OrderedDict()
        self._features()

    # --- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.done.set()

    async def run(self) -> None:
        if self.stdin is None:  # built by `continuum serve`, not started by an editor
            raise HostFailed(
                "[hosts.lsp] holds the editor's settings: the editor starts continuum-lsp, "
                "which attaches to this process — set enabled = false in [hosts.lsp]"
            )
        loop = asyncio.get_running_loop()
        reader = _ThreadedReader(self.stdin or sys.stdin.buffer, loop)
        self.server.protocol.set_writer(StdoutWriter(self.stdout or sys.stdout.buffer))
        try:
            await run_async(
                stop_event=self._stop,
                reader=reader,
                protocol=self.server.protocol,
                logger=log,
                error_handler=self.server.report_server_error,
            )
        finally:
            self.done.set()  # the editor went away (exit, or stdin closed without it)

    # --- outbound: replies stream as progress ----------------------------------------------

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        return _Sink(self, self._pending.get(start.in_reply_to))

    # --- the people, the rooms ----------------------------------------------------------------

    def personas(self) -> list[PersonaCard]:
        return list(self.services.personas())

    def persona(self, wanted: str | None, default: str | None = None) -> PersonaCard:
        personas = self.personas()
        if not personas:
            raise RequestFailed("no personas are configured")
        name = (wanted or default or "").strip().lower()
        if not name:
            return personas[0]
        for p in personas:
            if name in (p.id, p.name.lower()):
                return p
        names = ", ".join(p.name for p in personas)
        raise JsonRpcInvalidParams(f"no persona {wanted!r} (the personas: {names})")

    def root(self) -> str | None:
        try:
            return self.server.workspace.root_uri
        except RuntimeError:
            return None

    def room_for(self, uri: str | None) -> str:
        if self.config.room == "file" and uri:
            return f"file:{uri}"
        root = self.root() or (uri.rsplit("/", 1)[0] if uri else "workspace")
        return f"workspace:{root}"

    async def _conventions(self, room: str) -> None:
        """A room starts with the workspace's conventions: the stable part of every prompt
        in it, stored once (a restart finds them by their content's hash)."""
        if room in self._rooms:
            return
        self._rooms.add(room)
        root = self.root()
        path = to_fs_path(root) if root else None
        if not path:
            return
        for name in self.config.conventions:
            file = Path(path) / name
            if not file.is_file():
                continue
            text = file.read_text(encoding="utf-8", errors="replace")[:8000].strip()
            if not text:
                continue
            digest = hashlib.sha1(text.encode()).hexdigest()[:16]
            await self.services.remember_context(
                Envelope(
                    host=self.name,
                    room_id=room,
                    author=Participant(
                        id="workspace", name="Workspace conventions", kind=ParticipantKind.BOT
                    ),
                    parts=(TextPart(text=f"This workspace's conventions ({name}):\n{text}"),),
                    reply_to=ReplyTarget(host=self.name, channel=room),
                    host_message_id=f"conventions:{digest}",
                    visibility="sealed",
                )
            )

    def _lines(self, uri: str | None) -> list[str]:
        if not uri:
            return []
        try:
            doc = self.server.workspace.get_text_document(uri)
            return doc.source.splitlines()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise JsonRpcInvalidParams(f"cannot read {uri}: {exc}") from None

    # --- a persona's turn, as a request ------------------------------------------------------

    async def ask(
        self,
        persona: PersonaCard,
        text: str,
        uri: str | None,
        *,
        context: str = "",
        token: str | int | None = None,
        reply_format: ReplyFormat | None = None,
    ) -> tuple[str, dict[str, int]]:
        """Deliver ``text`` to ``persona`` in this workspace's room, with ``context`` (the
        code) for this turn only; the answer's text and what the turn cost (prompt /
        evaluated / reused / generated / volatile tokens)."""
        room = self.room_for(uri)
        await self._conventions(room)
        envelope = Envelope(
            host=self.name,
            room_id=room,
            author=self.me,
            parts=(TextPart(text=text),),
            reply_to=ReplyTarget(host=self.name, channel=room),
            mentions=(persona.id,),
            visibility="sealed",
            reply_format=reply_format,
            context=context or None,
        )
        pending = _Pending(token)
        self._pending[envelope.id] = pending
        if token is not None:
            self._by_token[token] = pending
            self.server.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(title=f"{persona.name} is answering", cancellable=True),
            )

        def posted(event: Any) -> None:
            if isinstance(event, ReplyPosted) and event.persona_id == persona.id:
                m = event.metrics
                pending.metrics = {
                    "prompt_tokens": m.prompt_tokens,
                    "evaluated_tokens": m.evaluated_tokens,
                    "reused_tokens": m.reused_tokens,
                    "generated_tokens": m.generated_tokens,
                    "volatile_tokens": event.volatile_tokens,
                }

        try:
            unwatch = self.services.watch(room, posted)
        except ContinuumError:  # attached to a served runtime: no stream, no metrics

            def unwatch() -> None:
                return None

        try:
            turn = pending.turn = await self.services.deliver(envelope)
            try:
                replies = await turn.wait()
            except asyncio.CancelledError:  # $/cancelRequest: generation stops now
                turn.cancel()
                raise
        finally:
            unwatch()
            self._pending.pop(envelope.id, None)
            if token is not None:
                self._by_token.pop(token, None)
                self.server.work_done_progress.end(token, types.WorkDoneProgressEnd())
        if pending.cancelled or turn.outcome == "cancelled":
            raise JsonRpcRequestCancelled(f"{persona.name} was stopped")
        if turn.outcome != "answered":
            why = turn.reason or pending.aborted or turn.outcome or "no answer"
            raise RequestFailed(f"{persona.name} did not answer ({turn.outcome}): {why}")
        if not replies:  # attached: the replies came through the sink, not the handle
            return "".join(pending.chunks).strip(), pending.metrics
        reply = replies[0]
        if reply.error:
            raise RequestFailed(f"{persona.name} could not answer: {reply.error}")
        return reply.message.text, pending.metrics

    async def chat(self, raw: Any) -> dict[str, Any]:
        try:
            raw = plain(raw)
            params = ChatParams.model_validate(raw if isinstance(raw, dict) else {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "params"
            raise JsonRpcInvalidParams(f"{CHAT}: {where}: {first['msg']}") from None
        persona = self.persona(params.persona, self.config.persona)
        uri = params.text_document.uri if params.text_document else None
        context = selection_context(
            uri or "",
            self._lines(uri),
            params.range.lsp() if params.range else None,
            window=self.config.window_lines,
            max_selection=self.config.max_selection_lines,
        )
        answer, metrics = await self.ask(
            persona, params.prompt.strip(), uri, context=context, token=params.work_done_token
        )
        return {"text": answer, "persona": persona.name, "metrics": metrics}

    async def review(self, uri: str) -> dict[str, Any]:
        """The reviewer's findings on a file, published as diagnostics."""
        reviewer = self.persona(self.config.reviewer, self.config.persona)
        lines = self._lines(uri)
        instruction, code = review_message(uri, lines, self.config.max_review_lines)
        wanted = ReplyFormat(
            json_schema=Review.model_json_schema(), max_tokens=self.config.review_max_tokens
        )
        answer, _ = await self.ask(reviewer, instruction, uri, context=code, reply_format=wanted)
        try:
            review = Review.model_validate(json.loads(answer))
        except (json.JSONDecodeError, ValidationError) as exc:
            log.warning("%s's review was not valid JSON: %s", reviewer.name, exc)
            self.server.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"{reviewer.name}'s review could not be read; try again.",
                )
            )
            review = Review()
        diagnostics = [self._diagnostic(f, reviewer, lines) for f in review.findings]
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )
        return {"findings": len(diagnostics), "reviewer": reviewer.name}

    def _diagnostic(self, f: Finding, reviewer: PersonaCard, lines: list[str]) -> types.Diagnostic:
        last_line = max(0, len(lines) - 1)
        first = min(f.line - 1, last_line)
        last = min(max(first, (f.end_line or f.line) - 1), last_line)
        end_char = len(lines[last]) if lines else 0
        return types.Diagnostic(
            range=types.Range(
                start=types.Position(line=first, character=0),
                end=types.Position(line=last, character=end_char),
            ),
            message=f.message,
            severity=SEVERITY[f.severity],
            source=reviewer.name,
            code="continuum.review",
            data={"persona": reviewer.id, "replacement": f.replacement},
        )

    # --- the protocol --------------------------------------------------------------------------

    def _features(self) -> None:
        server = self.server

        @server.feature(CHAT)
        async def chat(params: Any) -> dict[str, Any]:
            return await self.chat(params)

        @server.feature(PERSONAS)
        def personas(params: Any) -> list[dict[str, str]]:
            return [{"id": p.id, "name": p.name, "specialty": p.specialty} for p in self.personas()]

        @server.command(ASK)
        async def ask(*args: Any) -> dict[str, Any]:
            persona, question, uri, selection = (plain(list(args)) + [None] * 4)[:4]
            if not isinstance(question, str) or not question.strip():
                raise JsonRpcInvalidParams(f"{ASK}: arguments are [persona, question, uri, range]")
            raw: dict[str, Any] = {"prompt": question, "persona": persona}
            if isinstance(uri, str):
                raw["textDocument"] = {"uri": uri}
            if isinstance(selection, dict):
                raw["range"] = selection
            return await self.chat(raw)

        @server.command(REVIEW)
        async def review(*args: Any) -> dict[str, Any]:
            args = tuple(plain(list(args)))
            if not args or not isinstance(args[0], str):
                raise JsonRpcInvalidParams(f"{REVIEW}: arguments are [uri]")
            return await self.review(args[0])

        @server.feature(
            types.TEXT_DOCUMENT_CODE_ACTION,
            types.CodeActionOptions(
                code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.Source]
            ),
        )
        def code_actions(params: types.CodeActionParams) -> list[types.CodeAction]:
            return self.code_actions(params)

        @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
        def progress_cancelled(params: types.WorkDoneProgressCancelParams) -> None:
            pending = self._by_token.get(params.token)
            if pending is not None and pending.turn is not None:
                pending.cancelled = True
                pending.turn.cancel()

        @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
        def closed(params: types.DidCloseTextDocumentParams) -> None:
            uri = params.text_document.uri
            for key in [k for k in self._hover if k[0] == uri]:
                del self._hover[key]

        if self.config.hover:

            @server.feature(types.TEXT_DOCUMENT_HOVER)
            async def hover(params: types.HoverParams) -> types.Hover | None:
                return await self.hover(params)

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        actions: list[types.CodeAction] = []
        for d in params.context.diagnostics:
            data = d.data if isinstance(d.data, dict) else {}
            replacement = data.get("replacement")
            if d.code != "continuum.review" or not isinstance(replacement, str):
                continue
            whole = types.Range(
                start=types.Position(line=d.range.start.line, character=0),
                end=types.Position(line=d.range.end.line + 1, character=0),
            )
            text = replacement if replacement.endswith("\n") else replacement + "\n"
            actions.append(
                types.CodeAction(
                    title=f"{d.source}: {d.message[:60]} — apply the suggestion",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[d],
                    edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(whole, text)]}),
                )
            )
        selection = params.range
        span = {
            "start": {"line": selection.start.line, "character": selection.start.character},
            "end": {"line": selection.end.line, "character": selection.end.character},
        }
        if selection.start != selection.end:
            for p in self.personas():
                actions.append(
                    types.CodeAction(
                        title=f"Ask {p.name} about this",
                        kind=types.CodeActionKind.Source,
                        command=types.Command(
                            title=f"Ask {p.name} about this",
                            command=ASK,
                            arguments=[
                                p.id,
                                "Explain this code and point out anything risky.",
                                uri,
                                span,
                            ],
                        ),
                    )
                )
        reviewer = self.persona(self.config.reviewer, self.config.persona)
        actions.append(
            types.CodeAction(
                title=f"Review this file with {reviewer.name}",
                kind=types.CodeActionKind.Source,
                command=types.Command(
                    title=f"Review this file with {reviewer.name}", command=REVIEW, arguments=[uri]
                ),
            )
        )
        return actions

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        doc = self.server.workspace.get_text_document(uri)
        word = doc.word_at_position(params.position)
        if not word or len(word) < 2:
            return None
        key = (uri, doc.version or 0, word)
        if key not in self._hover:
            persona = self.persona(self.config.persona)
            line = params.position.line
            selection = types.Range(
                start=types.Position(line=line, character=0),
                end=types.Position(line=line + 1, character=0),
            )
            context = selection_context(
                uri,
                doc.source.splitlines(),
                selection,
                window=min(10, self.config.window_lines),
                max_selection=1,
            )
            question = f"In one or two sentences: what is `{word}` here?"
            answer, _ = await self.ask(persona, question, uri, context=context)
            self._hover[key] = f"**{persona.name}:** {answer}"
            while len(self._hover) > 256:
                self._hover.popitem(last=False)
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=self._hover[key])
        )
