"""bench/livekit_room: six personas in one room on a real LiveKit server (loopback), ten
spoken questions from a test participant, the embedded default model (2 threads).

Side by side in one run:

- **continuum**: one runtime, the LiveKit host: each persona its own participant and
  track, one hidden listener with one ear per person, one speech-to-text pass per pause
  for the whole room, shared cognition (the relevance gate) picks who answers, one floor.
- **naive**: the layout of one-agent-per-session frameworks — six runtimes in the same
  process, one persona each, each with its own listener, its own speech-to-text and its
  own reply to every utterance (``cognition = "direct"``); the same model file, the same
  voices, the same server.

Per question: end of speech (the last sample left the person's microphone) → the first
persona audio frame with speech energy *received by the test participant* through the
server; prompt tokens evaluated per reply (warm slots: every persona answered once in text
before the questions), with the volatile tier for the breakdown; speech-to-text passes;
the resident memory of the whole process (``VmRSS``, LiveKit's native SDK included).

    .venv/bin/python bench/livekit_room.py          # ~12 min on 2 cores (naive: 3 turns)
    .venv/bin/python bench/livekit_room.py --turns 3

Writes bench/results/livekit_room.json and .md.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anyio
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packages" / "continuum-livekit" / "tests"))

from livekit_testkit import KEY, ROOM, SECRET, LiveKitServer, Person, espeak  # noqa: E402

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.testing import serve_host  # noqa: E402

RESULTS = ROOT / "bench" / "results"
QUESTIONS = [
    "Maya, why is the build so slow today?",
    "How do we keep the passwords safe?",
    "Maya, is the cache hit rate good enough?",
    "Where did the tradition of clock towers come from?",
    "How should a beginner start learning to code?",
    "Maya, how much memory does the server use?",
    "Is this permission change a security risk?",
    "What is the story behind the old archive?",
    "How can I stay motivated when I feel stuck?",
    "Maya, what should I measure first?",
]
KEY_ENV, SECRET_ENV = "BENCH_LIVEKIT_KEY", "BENCH_LIVEKIT_SECRET"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else -1.0


async def quiet(person: Person, seconds: float = 1.2, limit: float = 180.0) -> None:
    """Until no persona track has carried speech for ``seconds``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        last = max((h.loud()[-1] for h in person.heard.values() if h.loud()), default=0.0)
        if time.monotonic() - last >= seconds:
            return
        await anyio.sleep(0.1)


def first_audio_after(person: Person, since: float) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for pid, heard in person.heard.items():
        loud = heard.loud()
        i = bisect.bisect_right(loud, since)
        t = loud[i] if i < len(loud) else None
        if t is not None and (best[1] is None or t < best[1]):
            best = (pid, t)
    return best


async def person_process(url: str, wav_dir: Path) -> None:
    """The test participant, in its own process (as a real client would be): joins,
    then for each "ask I" line on stdin speaks question I, and prints one JSON line: when
    its speech ended, when the first persona audio arrived and from whom, who spoke."""
    import sys as _sys

    person = await Person(SimpleNamespace(url=url)).join()  # type: ignore[arg-type]
    print(json.dumps({"ready": True}), flush=True)
    lines = anyio.wrap_file(_sys.stdin)
    async for line in lines:
        if not line.startswith("ask "):
            break
        i = int(line.split()[1])
        audio = np.load(wav_dir / f"q{i}.npy")
        await quiet(person)
        end = await person.speak(audio, then_silence_s=0.3)
        with contextlib.suppress(TimeoutError):
            with anyio.fail_after(120):
                while first_audio_after(person, end)[1] is None:
                    await anyio.sleep(0.01)
        who, at = first_audio_after(person, end)
        await quiet(person)
        speakers = sorted(
            p for p, h in person.heard.items() if bisect.bisect_right(h.loud(), end) < len(h.loud())
        )
        print(json.dumps({"i": i, "end": end, "first": at, "who": who, "speakers": speakers,
                          "tracks": len(person.heard)}), flush=True)  # fmt: skip
    await person.leave()


class PersonClient:
    """Drives the person process from the bench (JSON lines on its stdout)."""

    def __init__(self, proc) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        self.proc = proc
        self.out = BufferedByteReceiveStream(proc.stdout)

    async def read(self) -> dict:
        while True:
            line = (await self.out.receive_until(b"\n", 1 << 20)).decode()
            if line.startswith("{"):
                return json.loads(line)

    async def ask(self, i: int) -> dict:
        await self.proc.stdin.send(f"ask {i}\n".encode())
        return await self.read()


async def ask_all(client: PersonClient, n: int, probes: list, tag: str) -> list[dict]:
    rows = []
    runtimes = [p._rt for p in probes]
    seen: list[ReplyPosted] = []
    for probe in probes:
        probe._rt.services_for("livekit").watch(
            ROOM, lambda e: seen.append(e) if isinstance(e, ReplyPosted) else None
        )
    for i in range(n):
        n0 = len(seen)
        voice0 = sum(rt.voice.stt_calls for rt in runtimes)
        calls0 = sum(rt.bridge.transcriber.calls for rt in runtimes)
        got = await client.ask(i)
        with anyio.move_on_after(180):  # every turn this question started has ended
            for h in [h for rt in runtimes for e in rt.voice.ears for h in e.heard]:
                if h.turn is not None:
                    await h.turn.wait()
        await anyio.sleep(0.5)
        posted = seen[n0:]
        voice = sum(rt.voice.stt_calls for rt in runtimes) - voice0
        calls = sum(rt.bridge.transcriber.calls for rt in runtimes) - calls0
        first = got["first"]
        stages = {}
        ears = [e for rt in runtimes for e in rt.voice.ears]
        heard = max((h for e in ears for h in e.heard), key=lambda h: h.end_of_turn, default=None)
        if heard is not None:
            stages["end_of_turn"] = round((heard.end_of_turn - got["end"]) * 1000, 1)
            stages["ended_by"] = heard.ended_by
            stages["preempted"] = heard.preempted
            stats = heard.turn.speech if heard.turn is not None else []
            if stats:
                s0 = min(stats, key=lambda x: x.first_audio_at or 1e18)
                for k in ("opened_at", "first_delta_at", "first_piece_at", "first_audio_at"):
                    v = getattr(s0, k)
                    stages[k[:-3]] = round((v - got["end"]) * 1000, 1) if v else None
        row = {
            "i": i,
            "said": QUESTIONS[i],
            "first_speaker": got["who"],
            "first_audio_ms": round((first - got["end"]) * 1000, 1) if first else None,
            "speakers": got["speakers"],
            "stages_ms": stages,
            "stt_calls": calls,  # every pass of the one transcriber (ears and media bridge)
            "bridge_stt_calls": calls - voice,
            "replies": [
                {
                    "persona": e.persona_id,
                    "prompt_tokens": e.metrics.prompt_tokens,
                    "reused_tokens": e.metrics.reused_tokens,
                    "evaluated_tokens": e.metrics.evaluated_tokens,
                    "volatile_tokens": e.volatile_tokens,
                    "generated_tokens": e.metrics.generated_tokens,
                    "prompt_eval_ms": round(e.metrics.prompt_eval_ms, 1),
                    "ttft_ms": round(e.metrics.ttft_ms, 1),
                    "text": e.message.text,
                }
                for e in posted
            ],
        }
        rows.append(row)
        print(f"{tag} {i} first audio {row['first_audio_ms']} ms by {row['first_speaker']}; "
              f"speakers {row['speakers']}; stt {row['stt_calls']}; evaluated "
              f"{[r['evaluated_tokens'] for r in row['replies']]} {stages}",
              flush=True)  # fmt: skip
    return rows


@contextlib.asynccontextmanager
async def person(server: LiveKitServer, wav_dir: Path):
    args = [sys.executable, __file__, "--person", server.url, "--wavs", str(wav_dir)]
    async with await anyio.open_process(args, stderr=None) as proc:
        client = PersonClient(proc)
        assert (await client.read())["ready"]
        try:
            yield client
        finally:
            await proc.stdin.send(b"end\n")
            with anyio.move_on_after(10):
                await proc.wait()


def settings(server: LiveKitServer, **kw) -> dict:
    return {"url": server.url, "api_key_env": KEY_ENV, "api_secret_env": SECRET_ENV,
            "rooms": [ROOM], **kw}  # fmt: skip


async def warm_up(probe, personas) -> None:
    """Every persona answers once in text: the turns measured run on warm slots."""
    services = probe._rt.services_for("livekit")
    for p in personas:
        turn = await services.deliver(
            Envelope(
                host="livekit", room_id=ROOM, author=Participant(id="sam", name="Sam"),
                parts=(TextPart(text=f"{p.name}, good morning."),),
                reply_to=ReplyTarget(host="livekit", channel=ROOM), mentions=(p.id,),
            )
        )  # fmt: skip
        with anyio.fail_after(120):
            await turn.wait()


def backend() -> EmbeddedBackend:
    return EmbeddedBackend(
        default_model_path(), EmbeddedConfig(live_slots=8, slot_ctx=4096, n_threads=2)
    )


CONFIG = {"media": {"stt": "whisper"}}
POLICY = {"reply_max_tokens": 40}


async def continuum_layout(server, personas, n: int, wavs: Path, tmp: Path):
    async with serve_host(
        "livekit", settings(server), data_dir=tmp / "one", personas=personas,
        backend=backend(), policy=POLICY, config=CONFIG,
    ) as probe:  # fmt: skip
        await joined(probe)
        await warm_up(probe, personas)
        async with person(server, wavs) as client:
            await until_listening([probe])
            rows = await ask_all(client, n, [probe], "continuum")
            return rows, rss_mb()


async def naive_layout(server, personas, n: int, wavs: Path, tmp: Path):
    async with contextlib.AsyncExitStack() as stack:
        probes = []
        for p in personas:
            probe = await stack.enter_async_context(
                serve_host(
                    "livekit",
                    settings(server, personas=[p.id], listener_identity=f"listener-{p.id}"),
                    data_dir=tmp / f"naive-{p.id}", personas=[p], backend=backend(),
                    policy={**POLICY, "cognition": "direct"}, config=CONFIG,
                )
            )  # fmt: skip
            probes.append(probe)
        for probe, p in zip(probes, personas, strict=True):
            await joined(probe)
            await warm_up(probe, [p])
        async with person(server, wavs) as client:
            await until_listening(probes)
            rows = await ask_all(client, n, probes, "naive")
            return rows, rss_mb()


async def joined(probe) -> None:
    with anyio.fail_after(60):
        while not hasattr(probe.host, "ready"):
            await anyio.sleep(0.05)
        await probe.host.ready.wait()


async def until_listening(probes) -> None:
    with anyio.fail_after(120):
        while not all(
            ROOM in p.host.rooms and "sam" in p.host.rooms[ROOM].listener.listening for p in probes
        ):
            await anyio.sleep(0.05)
    await anyio.sleep(1.0)  # the person's subscriptions to the six tracks


def summary(rows: list[dict]) -> dict:
    firsts = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    replies = [x for r in rows for x in r["replies"]]
    warm = [x for x in replies if x["reused_tokens"] > 0]
    return {
        "turns": len(rows),
        "answered": len(firsts),
        "first_audio_ms_p50": pct(firsts, 0.5),
        "first_audio_ms_p90": pct(firsts, 0.9),
        "warm_evaluated_tokens_max": max((x["evaluated_tokens"] for x in warm), default=None),
        "warm_evaluated_tokens_median": statistics.median([x["evaluated_tokens"] for x in warm])
        if warm
        else None,
        "volatile_tokens_max": max((x["volatile_tokens"] for x in warm), default=None),
        "prompt_tokens_median": statistics.median([x["prompt_tokens"] for x in replies])
        if replies
        else None,
        "cold_replies": len(replies) - len(warm),
        "stt_calls_per_turn_max": max(r["stt_calls"] for r in rows),
        "speakers_per_turn": [len(r["speakers"]) for r in rows],
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=len(QUESTIONS))
    ap.add_argument("--naive-turns", type=int, default=3, help="the naive layout is slow")
    ap.add_argument("--server", default=None, help="livekit-server binary (default: cached)")
    ap.add_argument("--watchdog", action="store_true", help="print where the loop blocks")
    ap.add_argument("--person", help=argparse.SUPPRESS)  # the test participant's process
    ap.add_argument("--wavs", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.person:
        await person_process(args.person, args.wavs)
        return
    if args.watchdog:
        import asyncio

        from bench.loop_watchdog import install

        install(asyncio.get_running_loop())
    import os
    import subprocess

    binary = args.server or subprocess.run(
        [str(ROOT / "scripts" / "build-livekit-server")], capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    os.environ[KEY_ENV], os.environ[SECRET_ENV] = KEY, SECRET
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    assert len(personas) == 6, [p.id for p in personas]
    tmp = Path(tempfile.mkdtemp(prefix="bench-livekit-"))
    wavs = tmp / "questions"
    wavs.mkdir()
    for i, q in enumerate(QUESTIONS[: args.turns]):
        np.save(wavs / f"q{i}.npy", espeak(tmp, q, speed=150))
    server = LiveKitServer(binary, tmp / "server.log")
    server.start()
    try:
        rows, rss = await continuum_layout(server, personas, args.turns, wavs, tmp)
        naive_rows, naive_rss = await naive_layout(
            server, personas, min(args.turns, args.naive_turns), wavs, tmp
        )
    finally:
        server.stop()
    ours, naive = summary(rows), summary(naive_rows)
    result = {
        "bench": "livekit_room",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": default_model_path().name,
        "livekit_server": "v1.13.5 (loopback)",
        "personas": len(personas),
        "turns": len(rows),
        "first_audio_ms_p50": ours["first_audio_ms_p50"],
        "first_audio_ms_p90": ours["first_audio_ms_p90"],
        "warm_evaluated_tokens_max": ours["warm_evaluated_tokens_max"],
        "stt_calls_per_turn_max": ours["stt_calls_per_turn_max"],
        "rss_mb": round(rss),
        "naive_first_audio_ms_p50": naive["first_audio_ms_p50"],
        "naive_first_audio_ms_p90": naive["first_audio_ms_p90"],
        "naive_stt_calls_per_turn": naive["stt_calls_per_turn_max"],
        "naive_rss_mb": round(naive_rss),
        "continuum": ours,
        "naive": naive,
        "rows": rows,
        "naive_rows": naive_rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "livekit_room.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench/livekit_room",
        "",
        f"Six personas in one room on a real LiveKit server (v1.13.5, loopback), "
        f"{len(rows)} spoken questions (espeak-ng) from a test participant, the embedded "
        f"default model ({result['model']}, 2 threads), {result['machine']}. First audio: "
        "end of speech to the first persona audio frame with speech energy received by "
        "the participant through the server.",
        "",
        "| layout | first audio p50 | p90 | answered | STT passes per turn (max) "
        "| warm evaluated tokens (max / median) | speakers per turn | RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s, r in (("continuum (one listener, shared cognition)", ours, rss),
                       ("naive (one agent per persona)", naive, naive_rss)):  # fmt: skip
        md.append(
            f"| {name} | {s['first_audio_ms_p50']} ms | {s['first_audio_ms_p90']} ms | "
            f"{s['answered']}/{s['turns']} | {s['stt_calls_per_turn_max']} | "
            f"{s['warm_evaluated_tokens_max']} / {s['warm_evaluated_tokens_median']} | "
            f"{s['speakers_per_turn']} | {r:.0f} MB |"
        )
    md += [
        "",
        f"continuum: volatile tier at most {ours['volatile_tokens_max']} tokens; median "
        f"prompt {ours['prompt_tokens_median']} tokens, of which the warm slot reused the "
        f"rest; cold replies {ours['cold_replies']} (after the text warm-up).",
        "",
        "Per question (continuum): " + "; ".join(
            f"{r['i']}: {r['first_audio_ms']} ms by {r['first_speaker']}" for r in rows
        ),
    ]  # fmt: skip
    (RESULTS / "livekit_room.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    anyio.run(main)
