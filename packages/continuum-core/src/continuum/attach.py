"""Attach a host process to a running runtime: one memory, one model, one set of personas.

An editor starts its language server itself; a second runtime on the data dir is refused
(it would overwrite persona state), so without this the editor's persona would have a
memory and a model of its own. ``continuum serve`` listens on ``<data dir>/runtime.sock``
(a Unix socket, 0600: the same user only). A host process connects, says which host it is
and what it can do, and gets the same :class:`~continuum.hosts.base.HostServices` a
built-in host gets; the runtime drives its replies through the same socket.
:func:`run_host` attaches when a runtime is there and runs one of its own otherwise.

The wire is newline-delimited JSON, one object per line, ``{"op": ...}``:

- host → runtime: ``hello {host, capabilities}``, ``deliver {req, envelope}``,
  ``cancel {message_id}``, ``submit {req, event}``, ``remember_context {envelope}``,
  ``addressed {req, text, channel, thread, replying_to}``, ``posted {reply, id}``,
  ``finished {reply, id}``
- runtime → host: ``welcome {personas}`` or ``error {message}``, ``delivered {req,
  message_id}``, ``outcome {message_id, outcome, reason}``, ``result {req, result}``,
  ``open_reply {reply, start}``, ``write {reply, delta}``, ``finish {reply}``,
  ``abort {reply, reason}``, ``typing {reply_to, persona_id}``

Nothing of this writes to stdout: a stdio host (a language server) owns its stdout.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import TypeAdapter

from continuum.envelope import Envelope, PersonaReply, ReplyTarget
from continuum.errors import ContinuumError
from continuum.hosts.base import (
    CommandResult,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostEvent,
    Outcome,
    PersonaCard,
    ReplySink,
    ReplyStart,
)

log = logging.getLogger("continuum.attach")

SOCKET_NAME = "runtime.sock"
MAX_LINE = 8 << 20  # an envelope with a voice clip, base64: a few MB at most
_EVENT = TypeAdapter(HostEvent)
_GONE = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.IncompleteRead,
    anyio.ClosedResourceError,
)


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class _Line:
    """One JSON object per line over a byte stream (sends serialised by a lock)."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)
        self._lock = anyio.Lock()

    async def send(self, **message: Any) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        async with self._lock:
            await self.stream.send(data)

    async def receive(self) -> dict[str, Any]:
        raw = await self.reader.receive_until(b"\n", MAX_LINE)
        message = json.loads(raw)
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ValueError("not an attach message")
        return message


# --- the runtime's side ----------------------------------------------------------------------


class _RemoteSink(ReplySink):
    def __init__(self, host: RemoteHost, reply: int) -> None:
        self.host, self.reply = host, reply
        self.finished: anyio.Event = anyio.Event()
        self.host_message_id: str | None = None

    async def write(self, delta: str) -> None:
        await self.host.line.send(op="write", reply=self.reply, delta=delta)

    async def finish(self) -> str | None:
        await self.host.line.send(op="finish", reply=self.reply)
        with anyio.move_on_after(60):
            await self.finished.wait()
        self.host.sinks.pop(self.reply, None)
        return self.host_message_id

    async def abort(self, reason: str) -> None:
        self.host.sinks.pop(self.reply, None)
        await self.host.line.send(op="abort", reply=self.reply, reason=reason)


class RemoteHost(HostAdapter):
    """A host that lives in another process, attached over the runtime's socket."""

    name = "attached"

    def __init__(self, name: str, capabilities: HostCapabilities, line: _Line) -> None:
        super().__init__(services=None, config=HostConfig())  # type: ignore[arg-type]
        self.name = name  # type: ignore[misc]
        self.capabilities = capabilities  # type: ignore[misc]
        self.line = line
        self.sinks: dict[int, _RemoteSink] = {}
        self._ids = itertools.count(1)
        self.gone = anyio.Event()

    async def run(self) -> None:
        await self.gone.wait()

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        sink = _RemoteSink(self, next(self._ids))
        self.sinks[sink.reply] = sink
        await self.line.send(op="open_reply", reply=sink.reply, start=start.model_dump(mode="json"))
        return sink

    async def typing(self, reply_to: ReplyTarget, persona_id: str | None) -> None:
        await self.line.send(
            op="typing", reply_to=reply_to.model_dump(mode="json"), persona_id=persona_id
        )


class AttachServer:
    """Listens on ``<data dir>/runtime.sock`` for host processes (0600)."""

    def __init__(self, runtime: Any, path: Path) -> None:
        self.runtime = runtime
        self.path = path

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket a crashed runtime left (the data dir lock is ours)
        old = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self.path)
        except OSError as exc:  # a data dir path too long for a socket, a read-only dir
            log.warning("host processes cannot attach (%s): %s", self.path, exc)
            task_status.started()
            return
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        task_status.started()
        try:
            async with listener:
                await listener.serve(self._connection)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _connection(self, stream: ByteStream) -> None:
        line = _Line(stream)
        host: RemoteHost | None = None
        try:
            hello = await line.receive()
            name = str(hello.get("host", ""))
            if hello.get("op") != "hello" or not name:
                await line.send(op="error", message="say hello first: {op: hello, host: NAME}")
                return
            if name in self.runtime.hosts:
                await line.send(op="error", message=f"host {name!r} is already running here")
                return
            caps = HostCapabilities.model_validate(hello.get("capabilities") or {})
            host = RemoteHost(name, caps, line)
            self.runtime.hosts[name] = host
            cards = [c.model_dump(mode="json") for c in self.runtime.persona_cards()]
            await line.send(op="welcome", personas=cards)
            log.info("host %s attached", name)
            async with anyio.create_task_group() as tg:
                try:
                    while True:
                        message = await line.receive()
                        await self._handle(host, line, message, tg)
                except (ValueError, ContinuumError) as exc:  # a bad message: said, and gone
                    with contextlib.suppress(Exception):
                        await line.send(op="error", message=str(exc)[:500])
                except _GONE:
                    pass
                finally:
                    tg.cancel_scope.cancel()
        except _GONE:
            pass
        finally:
            if host is not None:
                host.gone.set()
                if self.runtime.hosts.get(host.name) is host:
                    del self.runtime.hosts[host.name]
                log.info("host %s detached", host.name)
            await stream.aclose()

    async def _handle(
        self, host: RemoteHost, line: _Line, message: dict[str, Any], tg: TaskGroup
    ) -> None:
        rt, op = self.runtime, message["op"]
        if op == "deliver":
            turn = await rt.deliver(host.name, Envelope.model_validate(message["envelope"]))
            await line.send(op="delivered", req=message.get("req"), message_id=turn.message_id)

            async def report() -> None:
                await turn.wait()
                await line.send(
                    op="outcome",
                    message_id=turn.message_id,
                    outcome=turn.outcome,
                    reason=turn.reason,
                )

            tg.start_soon(report)
        elif op == "cancel":
            turn = rt.turns.get(str(message.get("message_id")))
            if turn is not None:
                turn.cancel()
        elif op == "submit":
            result = await rt.submit(host.name, _EVENT.validate_python(message["event"]))
            dumped = result.model_dump(mode="json") if result is not None else None
            await line.send(op="result", req=message.get("req"), result=dumped)
        elif op == "remember_context":
            await rt.remember_context(host.name, Envelope.model_validate(message["envelope"]))
        elif op == "addressed":
            services = rt.services_for(host.name)
            found = services.addressed(
                str(message.get("text", "")),
                channel=message.get("channel"),
                thread=message.get("thread"),
                replying_to=message.get("replying_to"),
            )
            await line.send(op="result", req=message.get("req"), result=list(found))
        elif op in ("posted", "finished"):
            sink = host.sinks.get(int(message.get("reply", 0)))
            if sink is not None and message.get("id"):
                if op == "posted":
                    sink.posted(str(message["id"]))
                else:
                    sink.host_message_id = str(message["id"])
            if sink is not None and op == "finished":
                sink.finished.set()
        else:
            raise ValueError(f"unknown op {op!r}")


# --- the host process's side -------------------------------------------------------------


class _AttachedTurn:
    """A message delivered through the socket (the TurnHandle a host gets back)."""

    def __init__(self, services: AttachedServices, message_id: str) -> None:
        self.services = services
        self.message_id = message_id
        self.outcome: Outcome | None = None
        self.reason = ""
        self.replies: list[PersonaReply] = []
        self._done = anyio.Event()

    async def wait(self) -> list[PersonaReply]:
        await self._done.wait()
        return self.replies

    def cancel(self) -> None:
        self.services._tg.start_soon(
            lambda: self.services.line.send(op="cancel", message_id=self.message_id)
        )


class AttachedServices:
    """HostServices over the socket, for a host living in another process."""

    def __init__(self, host: str, line: _Line, personas: Sequence[PersonaCard]) -> None:
        self.host = host
        self.line = line
        self._personas = list(personas)
        self._requests: dict[int, Any] = {}
        self._waiting: dict[int, anyio.Event] = {}
        self._turns: dict[str, _AttachedTurn] = {}
        self._ids = itertools.count(1)
        self._tg: TaskGroup

    def personas(self) -> Sequence[PersonaCard]:
        return list(self._personas)

    async def _ask(self, **message: Any) -> Any:
        req = next(self._ids)
        self._waiting[req] = anyio.Event()
        await self.line.send(req=req, **message)
        with anyio.fail_after(60):
            await self._waiting[req].wait()
        del self._waiting[req]
        return self._requests.pop(req)

    async def deliver(self, envelope: Envelope) -> _AttachedTurn:
        answer = await self._ask(op="deliver", envelope=envelope.model_dump(mode="json"))
        message_id = answer["message_id"]
        return self._turns.setdefault(message_id, _AttachedTurn(self, message_id))

    async def submit(self, event: Any) -> CommandResult | None:
        answer = await self._ask(op="submit", event=event.model_dump(mode="json"))
        result = answer.get("result")
        return CommandResult.model_validate(result) if result is not None else None

    async def remember_context(self, envelope: Envelope) -> None:
        await self.line.send(op="remember_context", envelope=envelope.model_dump(mode="json"))

    def watch(self, room_id: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        raise ContinuumError("watching a room's stream is not offered to an attached host")

    def addressed(
        self,
        text: str,
        *,
        channel: str | None = None,
        thread: str | None = None,
        replying_to: str | None = None,
    ) -> tuple[str, ...]:
        from continuum.addressing import addressed

        return addressed(text, self._personas)  # names only: the map lives in the runtime

    async def addressed_remote(
        self,
        text: str,
        *,
        channel: str | None = None,
        thread: str | None = None,
        replying_to: str | None = None,
    ) -> tuple[str, ...]:
        """The full rule (replies, thread owners) from the runtime's message map."""
        answer = await self._ask(
            op="addressed", text=text, channel=channel, thread=thread, replying_to=replying_to
        )
        return tuple(answer["result"])


async def _pump(services: AttachedServices, host: HostAdapter) -> None:
    """Carry the runtime's messages to the host: replies, outcomes, answers."""
    sinks: dict[int, ReplySink] = {}
    line = services.line
    while True:
        message = await line.receive()
        op = message["op"]
        if op in ("delivered", "result"):
            req = int(message.get("req") or 0)
            if req in services._waiting:
                services._requests[req] = message
                services._waiting[req].set()
        elif op == "outcome":
            turn = services._turns.setdefault(
                message["message_id"], _AttachedTurn(services, message["message_id"])
            )
            turn.outcome, turn.reason = message.get("outcome"), message.get("reason", "")
            turn._done.set()
        elif op == "open_reply":
            reply = int(message["reply"])
            sink = await host.open_reply(ReplyStart.model_validate(message["start"]))

            def report(host_id: str, reply: int = reply) -> None:
                services._tg.start_soon(lambda: line.send(op="posted", reply=reply, id=host_id))

            sink.watch_posts(report)
            sinks[reply] = sink
        elif op == "write":
            sink = sinks.get(int(message["reply"]))
            if sink is not None:
                await sink.write(str(message["delta"]))
        elif op == "finish":
            sink = sinks.pop(int(message["reply"]), None)
            host_id = await sink.finish() if sink is not None else None
            await line.send(op="finished", reply=message["reply"], id=host_id)
        elif op == "abort":
            sink = sinks.pop(int(message["reply"]), None)
            if sink is not None:
                await sink.abort(str(message.get("reason", "")))
        elif op == "typing":
            with contextlib.suppress(Exception):
                await host.typing(
                    ReplyTarget.model_validate(message["reply_to"]), message.get("persona_id")
                )
        elif op == "error":
            raise ContinuumError(f"the runtime refused: {message.get('message')}")


@contextlib.asynccontextmanager
async def attached(
    data_dir: Path,
    host_cls: type[HostAdapter],
    config: HostConfig | None = None,
) -> AsyncIterator[HostAdapter]:
    """Connect ``host_cls`` to the runtime serving ``data_dir`` and run it there; yields
    the host (its ``run`` and the socket pump run until the block exits)."""
    stream = await anyio.connect_unix(socket_path(data_dir))
    line = _Line(stream)
    capabilities = host_cls.capabilities.model_dump(mode="json")
    await line.send(op="hello", host=host_cls.name, capabilities=capabilities)
    welcome = await line.receive()
    if welcome.get("op") != "welcome":
        await stream.aclose()
        raise ContinuumError(f"the runtime refused: {welcome.get('message')}")
    personas = [PersonaCard.model_validate(p) for p in welcome.get("personas", [])]
    services = AttachedServices(host_cls.name, line, personas)
    host = host_cls(services, config)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        services._tg = tg
        tg.start_soon(_pump, services, host)
        tg.start_soon(host.run)
        try:
            yield host
        finally:
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await stream.aclose()


async def runtime_is_serving(data_dir: Path) -> bool:
    """Whether a runtime listens on ``data_dir``'s socket now."""
    path = socket_path(data_dir)
    if not path.exists():
        return False
    try:
        stream = await anyio.connect_unix(path)
    except OSError:
        return False
    await stream.aclose()
    return True
