"""continuum-tcpchat: a complete, minimal host plugin (the example of docs/writing-a-host.md).

People connect with ``nc 127.0.0.1 7777``, give a name, and chat with the personas in one
room per port. Replies stream in as the personas generate them, prefixed with the
persona's name; ``+1``/``-1`` react to the last reply (reputation); ``/personas``, ``/who``,
``/state``, ``/forget``, ``/link`` are the runtime's commands; ``/why`` shows what the
persona remembered for its last reply.

    [hosts.tcpchat]
    port = 7777            # 0: any free port, written to port_file
    port_file = "tcpchat.port"
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from continuum import (
    CommandEvent,
    Envelope,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    MalformedEvent,
    Participant,
    ReactionEvent,
    ReplySink,
    ReplyStart,
    ReplyTarget,
    TextPart,
    hookimpl,
)

MAX_LINE = 4096
_NAME = re.compile(r"^[\w .-]{1,40}$")


class TcpChatConfig(HostConfig):
    host: str = "127.0.0.1"
    port: int = 7777
    port_file: Path | None = None  # where to write the port (handy with port = 0)
    room: str = "lobby"


class _Client:
    def __init__(self, stream: SocketStream, name: str) -> None:
        self.stream = stream
        self.person = Participant(id=name.lower().replace(" ", "-"), name=name)
        self.last_reply: str | None = None

    async def send(self, text: str) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.stream.send(text.encode())  # if they left, the room goes on


class _Sink(ReplySink):
    """Streams a reply to everyone connected, as '[Name] text…'."""

    def __init__(self, host: TcpChatHost, start: ReplyStart) -> None:
        self.host, self.start, self.opened = host, start, False

    async def write(self, delta: str) -> None:
        if not self.opened:
            self.opened = True
            await self.host.broadcast(f"[{self.start.persona_name}] ")
        # one reply, one line: the newline that ends it is the protocol's end of reply
        await self.host.broadcast(delta.replace("\r", " ").replace("\n", " "))

    async def finish(self) -> str:
        await self.host.broadcast("\n")
        message_id = f"tcp-{next(self.host.ids)}"
        for client in self.host.clients:
            client.last_reply = message_id
        return message_id

    async def abort(self, reason: str) -> None:
        if self.opened:
            await self.host.broadcast(f" … ({reason})\n")


class TcpChatHost(HostAdapter):
    name: ClassVar[str] = "tcpchat"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        streaming=True, reactions=True, max_message_chars=MAX_LINE
    )
    config_model: ClassVar[type[HostConfig]] = TcpChatConfig
    config: TcpChatConfig

    def __init__(self, services: Any, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        self.clients: list[_Client] = []
        self.ids = itertools.count(1)
        self.recalled: tuple[str, ...] = ()

    async def broadcast(self, text: str) -> None:
        for client in list(self.clients):
            await client.send(text)

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        return _Sink(self, start)

    def _on_event(self, event: Any) -> None:
        if getattr(event, "type", "") == "reply_posted":
            self.recalled = tuple(event.recalled)

    async def run(self) -> None:
        self.services.watch(self.config.room, self._on_event)
        listener = await anyio.create_tcp_listener(
            local_host=self.config.host, local_port=self.config.port
        )
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        if self.config.port_file:
            self.config.port_file.write_text(str(port))
        async with listener:
            await listener.serve(self._serve_client)

    async def _serve_client(self, stream: SocketStream) -> None:
        lines = BufferedByteReceiveStream(stream)
        async with stream:
            await stream.send(b"name? ")
            try:
                name = (await lines.receive_until(b"\n", MAX_LINE)).decode().strip()
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
                return
            if not _NAME.match(name):
                await stream.send(b"names are letters, digits, spaces, dots and dashes\n")
                return
            client = _Client(stream, name)
            self.clients.append(client)
            try:
                while True:
                    try:
                        raw = await lines.receive_until(b"\n", MAX_LINE)
                    except anyio.DelimiterNotFound:
                        await client.send(f"(lines are at most {MAX_LINE} bytes)\n")
                        return
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        return
                    await self._line(client, raw.decode("utf-8", errors="replace").strip())
            finally:
                self.clients.remove(client)

    async def _line(self, client: _Client, text: str) -> None:
        if not text:
            return
        if text in {"+1", "-1"}:
            if client.last_reply:
                await self.services.submit(
                    ReactionEvent(
                        host=self.name,
                        room_id=self.config.room,
                        host_message_id=client.last_reply,
                        reaction=text,
                        positive=text == "+1",
                        author=client.person,
                    )
                )
            return
        if text == "/why":
            lines = "".join(f"  remembered: {r}\n" for r in self.recalled)
            await client.send(lines or "  (nothing)\n")
            return
        if text.startswith("/"):
            name, *args = text[1:].split()
            result = await self.services.submit(
                CommandEvent(
                    host=self.name,
                    room_id=self.config.room,
                    name=name,
                    args=tuple(args),
                    author=client.person,
                )
            )
            if result is not None:
                await client.send(result.text + "\n")
            return
        await self.services.deliver(self.to_envelope(client, text))

    def to_envelope(self, client: _Client, text: str) -> Envelope:
        if len(text) > MAX_LINE:
            raise MalformedEvent("line too long")
        return Envelope(
            host=self.name,
            room_id=self.config.room,
            author=client.person,
            parts=(TextPart(text=text),),
            mentions=self.services.addressed(text),  # "Maya, ..." addresses Maya
            reply_to=ReplyTarget(host=self.name, channel=self.config.room),
        )


@hookimpl
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    register(TcpChatHost)
