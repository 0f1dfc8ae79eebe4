"""bench/load: the runtime under load — nothing lost, nothing duplicated, also across a
SIGTERM (graceful) and a SIGKILL (restart and check).

The runtime runs in a child process with three hosts: the console host (fed lines on its
stdin) and two scripted hosts ("loada", "loadb") that speak the real host contract, each
sending messages across 10 rooms (20 rooms in all) at a fixed rate for a fixed count, from
five people, some addressing a persona, some asking to remember something. The backend is
scripted (random latency, 5 % injected failures), so the model is not measured — the
runtime is. Every delivered message must end as exactly one of answered, silent (reason on
the stream), shed or cancelled (reason recorded); no reply may be posted twice; persona
state, memory and the message map must be consistent afterwards.

Three runs: normal; SIGTERM when half the messages are in (graceful: replies in flight
finish within the grace period or are cancelled); SIGKILL when half are in, then a restart
that answers (or sheds, with the reason) what was delivered but not answered.

    .venv/bin/python bench/load.py            # ~1-2 min
    .venv/bin/python bench/load.py --quick

Writes bench/results/load.json and load.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PEOPLE = ["ana", "ben", "cai", "dee", "eli"]


# --- the child: a runtime with three hosts ----------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import anyio

    from continuum.backends.base import CompletionRequest
    from continuum.config import parse_config
    from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
    from continuum.errors import BackendError
    from continuum.hosts.base import HostAdapter, ReplySink, ReplyStart
    from continuum.persona_files import load_personas
    from continuum.runtime import Runtime
    from continuum.testing import ScriptedBackend

    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - line-buffered for the parent

    def write(**record: object) -> None:
        log.write(json.dumps(record) + "\n")

    rng = random.Random(args.seed)
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def reply(req: CompletionRequest) -> str:
        if rng.random() < 0.05:
            raise BackendError("injected failure")
        props = (req.json_schema or {}).get("properties", {})
        if "levers" in props:
            return '{"levers": []}'
        if "key_concepts" in props:
            return json.dumps(
                {
                    "said": "A question.",
                    "key_concepts": ["question"],
                    "relevant_context": "",
                    "suggested_angles": [],
                    "specialists": [],
                }
            )
        if "summary" in props:
            return '{"summary": "chat", "salience": 0.1}'
        return "<think>hidden</think>Sure, here is my short answer to that."

    class TimedBackend(ScriptedBackend):
        async def complete(self, request, on_token=None):  # type: ignore[override]
            start = time.monotonic()
            try:
                return await super().complete(request, on_token)
            finally:
                room = request.slot.room if request.slot and request.slot.room else None
                if room is None and request.slot and request.slot.persona_id.startswith("_analyst"):
                    room = request.slot.persona_id.split(":", 1)[1]
                if room:
                    intervals[room].append((start, time.monotonic()))

    backend = TimedBackend(
        reply, token_delay_s=0.001, latency_s=lambda: rng.uniform(0.005, 0.04), parallel=False
    )

    class _Sink(ReplySink):
        def __init__(self, start: ReplyStart) -> None:
            self.start = start

        async def write(self, delta: str) -> None:
            if "<think" in delta or "hidden" in delta:
                write(kind="leak", id=self.start.in_reply_to)

        async def finish(self) -> str:
            write(kind="reply", id=self.start.in_reply_to, persona=self.start.persona_id)
            return f"h-{self.start.reply_id}"

        async def abort(self, reason: str) -> None:
            write(kind="aborted", id=self.start.in_reply_to, persona=self.start.persona_id)

    class LoadHost(HostAdapter):
        name: ClassVar[str] = "loada"

        async def open_reply(self, start: ReplyStart) -> ReplySink:
            return _Sink(start)

        async def run(self) -> None:
            if args.recover:
                await anyio.sleep_forever()
            host_rng = random.Random(f"{args.seed}-{self.name}")
            personas = [p.id for p in self.services.personas()]
            for i in range(args.messages):
                person = host_rng.choice(PEOPLE)
                room = f"room{host_rng.randrange(10)}"
                text = f"Message {i} from {person}: how should we handle this?"
                mentions: tuple[str, ...] = ()
                if host_rng.random() < 0.2:
                    mentions = (host_rng.choice(personas),)
                if host_rng.random() < 0.1:
                    text = f"Please remember that {person} prefers tea, note {i}."
                envelope = Envelope(
                    host=self.name,
                    room_id=room,
                    author=Participant(id=person, name=person.capitalize()),
                    parts=(TextPart(text=text),),
                    mentions=mentions,
                    reply_to=ReplyTarget(host=self.name, channel=room),
                    host_message_id=f"{self.name}-{i}",
                )
                turn = await self.services.deliver(envelope)
                write(kind="delivered", id=turn.message_id, host=self.name)
                await anyio.sleep(1.0 / args.rate)
            await anyio.sleep_forever()

    class LoadHostB(LoadHost):
        name: ClassVar[str] = "loadb"

    def on_outcome(turn) -> None:
        room = f"{turn.envelope.host}:{turn.envelope.room_id}"
        added = None
        if turn.started_at is not None and turn.ended_at is not None:
            busy = sum(
                min(e, turn.ended_at) - max(s, turn.started_at)
                for s, e in intervals.get(room, [])
                if e > turn.started_at and s < turn.ended_at
            )
            added = (turn.ended_at - turn.started_at - busy) * 1000
        write(
            kind="outcome",
            id=turn.message_id,
            outcome=turn.outcome,
            reason=turn.reason,
            replies=len(turn.replies),
            added_ms=added,
            at=time.time(),
        )

    config = parse_config(
        {
            "memory": {"data_dir": args.data},
            "runtime": {"shutdown_grace_s": 2.0, "max_in_flight": 512},
            "policy": {"reply_max_tokens": 16},
            "hosts": {"console": {"echo": False}, "loada": {}, "loadb": {}},
        }
    )
    personas = load_personas([ROOT / "examples" / "personas"])[:3]

    async def main() -> None:
        runtime = Runtime(
            config,
            personas=personas,
            backend=backend,
            host_classes={"loada": LoadHost, "loadb": LoadHostB},
        )
        runtime.on_outcome.append(on_outcome)
        async with runtime:
            write(kind="started", pending=len(runtime.turns), at=time.time())
            await runtime.serve()
        write(kind="stopped", at=time.time())

    anyio.run(main)


# --- the parent: drive, interrupt, check -----------------------------------------------------


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by SIGKILL
            out.append(json.loads(line))
    return out


def spawn(
    data: Path, log: Path, args: argparse.Namespace, recover: bool = False
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--data",
        str(data),
        "--log",
        str(log),
        "--messages",
        str(0 if recover else args.messages),
        "--rate",
        str(args.rate),
        "--seed",
        str(args.seed),
    ]
    if recover:
        cmd.append("--recover")
    err = open(log.with_suffix(".stderr"), "a")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, text=True
    )
    if not recover:
        for i in range(args.console):  # the console host reads these as a person typing
            proc.stdin.write(f"console line {i}: anyone there?\n")
        proc.stdin.flush()
    return proc


def wait_for(log: Path, predicate, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_log(log)
        if predicate(records):
            return records
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting on {log}")


def consistency(data: Path) -> dict:
    """Persona state parses; journals parse and the index matches them; the message map
    is intact; no pending message is left behind."""
    from continuum.memory.engine import MemoryEngine

    problems = []
    for path in (data / "state").glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            problems.append(f"{path.name}: {exc}")
    engine = MemoryEngine(data)
    report = engine.sync()
    files = sum(len(list(engine.journal(p).paths())) for p in engine.persona_ids())
    if report.broken or engine.index.count() != files:
        problems.append(f"index {engine.index.count()} vs files {files}, broken {report.broken}")
    engine.close()
    db = sqlite3.connect(data / "messages.sqlite3")
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        problems.append("messages.sqlite3 failed its integrity check")
    pending = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
    db.close()
    if pending:
        problems.append(f"{pending} messages left pending")
    return {"consistent": not problems, "problems": problems, "journal_entries": files}


def tally(records: list[dict]) -> dict:
    delivered = {r["id"] for r in records if r["kind"] == "delivered"}
    outcomes: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r["kind"] == "outcome":
            outcomes[r["id"]].append(r["outcome"])
    replies = Counter((r["id"], r["persona"]) for r in records if r["kind"] == "reply")
    final = {i: o[-1] for i, o in outcomes.items()}
    counts = Counter(final[i] for i in delivered if i in final)
    return {
        "delivered": len(delivered),
        "answered": counts["answered"],
        "silent": counts["silent"],
        "shed": counts["shed"],
        "cancelled": counts["cancelled"],
        "failed": counts["failed"],
        "lost": len([i for i in delivered if i not in final]),
        "duplicated": sum(n - 1 for n in replies.values() if n > 1),
        "leaks": sum(1 for r in records if r["kind"] == "leak"),
    }


def run_normal(args: argparse.Namespace, tmp: Path) -> dict:
    data, log = tmp / "normal", tmp / "normal.jsonl"
    total = 2 * args.messages
    proc = spawn(data, log, args)
    started = time.monotonic()
    records = wait_for(
        log,
        lambda rs: len({r["id"] for r in rs if r["kind"] == "outcome"}) >= total + args.console,
        timeout=300,
    )
    wall = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    records = read_log(log)
    t = tally(records)
    outs = [r for r in records if r["kind"] == "outcome"]
    first = min(r["at"] for r in outs)
    last = max(r["at"] for r in outs)
    added = [
        r["added_ms"] for r in outs if r.get("added_ms") is not None and r["outcome"] == "answered"
    ]
    added.sort()
    return {
        **t,
        "messages": total + args.console,
        "wall_s": round(wall, 2),
        "messages_per_s": round(len(outs) / max(1e-9, last - first), 1),
        "p50_added_ms": round(statistics.median(added), 2),
        "p95_added_ms": round(added[int(0.95 * (len(added) - 1))], 2),
        "exit_code": proc.returncode,
        **consistency(data),
    }


def run_interrupted(args: argparse.Namespace, tmp: Path, sig: int) -> dict:
    name = "sigterm" if sig == signal.SIGTERM else "sigkill"
    data, log = tmp / name, tmp / f"{name}.jsonl"
    proc = spawn(data, log, args)
    half = args.messages  # of 2 * messages
    wait_for(log, lambda rs: sum(r["kind"] == "delivered" for r in rs) >= half, timeout=300)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    result: dict = {"exit_code": proc.returncode}
    if sig == signal.SIGKILL:  # restart: it answers or sheds what was left pending
        before = read_log(log)
        delivered = {r["id"] for r in before if r["kind"] == "delivered"}
        done = {r["id"] for r in before if r["kind"] == "outcome"}
        result["unanswered_at_kill"] = len(delivered - done)
        rec = spawn(data, log, args, recover=True)
        wait_for(
            log,
            lambda rs: delivered <= {r["id"] for r in rs if r["kind"] == "outcome"},
            timeout=120,
        )
        rec.send_signal(signal.SIGTERM)
        rec.wait(timeout=60)
        result["restart_exit_code"] = rec.returncode
    return {**tally(read_log(log)), **result, **consistency(data)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--recover", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data")
    parser.add_argument("--log")
    parser.add_argument("--messages", type=int, default=200)  # per scripted host
    parser.add_argument("--rate", type=float, default=100.0)  # per scripted host, msgs/s
    parser.add_argument("--console", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.messages, args.console = 40, 3
    with tempfile.TemporaryDirectory(dir=os.environ.get("LOAD_TMP")) as tmp:
        normal = run_normal(args, Path(tmp))
        print("normal:", json.dumps(normal), flush=True)
        term = run_interrupted(args, Path(tmp), signal.SIGTERM)
        print("sigterm:", json.dumps(term), flush=True)
        kill = run_interrupted(args, Path(tmp), signal.SIGKILL)
        print("sigkill:", json.dumps(kill), flush=True)
    result = {
        "bench": "load",
        "rooms": 20,
        "hosts": ["console", "loada", "loadb"],
        "offered_rate_per_s": 2 * args.rate,
        "messages": normal["messages"],
        "answered": normal["answered"],
        "silent": normal["silent"],
        "shed": normal["shed"],
        "failed": normal["failed"],
        "lost": normal["lost"],
        "duplicated": normal["duplicated"],
        "messages_per_s": normal["messages_per_s"],
        "p50_added_ms": normal["p50_added_ms"],
        "p95_added_ms": normal["p95_added_ms"],
        "sigterm_lost": term["lost"],
        "sigterm_duplicated": term["duplicated"],
        "sigkill_lost": kill["lost"],
        "sigkill_duplicated": kill["duplicated"],
        "runs": {"normal": normal, "sigterm": term, "sigkill": kill},
    }
    name = "load_quick" if args.quick else "load"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = [
        "# bench/load",
        "",
        f"The runtime in one process with {len(r['hosts'])} hosts ({', '.join(r['hosts'])}), "
        f"{r['rooms']} rooms, 3 personas in shared cognition, a scripted backend (5-40 ms "
        "latency, 5 % injected failures); offered "
        f"{r['offered_rate_per_s']:.0f} messages/s. Outcome of every delivered message:",
        "",
        "| run | delivered | answered | silent | shed | cancelled | failed | lost | "
        "duplicated replies | think leaks | state, memory, map consistent |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in r["runs"].items():
        lines.append(
            f"| {name} | {run['delivered']} | {run['answered']} | {run['silent']} | "
            f"{run['shed']} | {run['cancelled']} | {run['failed']} | **{run['lost']}** | "
            f"**{run['duplicated']}** | {run['leaks']} | {run['consistent']} |"
        )
    lines += [
        "",
        f"Sustained: **{r['messages_per_s']} messages/s**; added latency of the runtime itself "
        f"(turn time minus backend time in that room): p50 {r['p50_added_ms']} ms, "
        f"**p95 {r['p95_added_ms']} ms**.",
        "",
        "sigterm: graceful — replies in flight finish within the 2 s grace or are cancelled "
        "(their sinks aborted); nothing is left pending. sigkill: the restart answers what was "
        f"delivered but unanswered ({r['runs']['sigkill'].get('unanswered_at_kill', 0)} "
        "messages) — unless a persona had already posted for it — and sheds nothing older "
        "than `replay_within_s`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
