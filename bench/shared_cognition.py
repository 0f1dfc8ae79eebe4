"""bench/shared_cognition: one shared analysis + short renders vs every persona thinking alone.

Rooms of 4 and 6 personas, 10 people's messages each, on the embedded default model.
Per message, measured back to back on the same model (two rooms, two backends sharing
the loaded weights, so neither steals the other's KV):

- shared: the room's default flow — one shared analysis (grammar-constrained JSON), the
  relevance gate, a short lever-planning pass per gated persona, lead-first renders.
- naive: what a room without shared cognition does — every candidate persona (all of
  them: nobody is mentioned) runs its own full pass: it thinks the message through for
  as many tokens as the shared analysis of that message took, in a hidden think-block
  (end-of-generation is held off until then: a 135M model otherwise barely thinks), then
  replies on the same KV within the same reply budget.
- naive_same_responders: the naive pass for only the personas that answered in the shared
  run (like for like: the gain without the gate's silences).

Reported per room size: total wall time, time to the first persona reply (median over
messages), tokens evaluated and generated (the backend's own counts, summed over every
call: analysis, plans, renders).

    .venv/bin/python bench/shared_cognition.py           # full run (~15 min on 2 cores)
    .venv/bin/python bench/shared_cognition.py --quick   # 2 messages, 4 personas

Writes bench/results/shared_cognition.json and shared_cognition.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
from naive_cognition import naive

from continuum.backends.base import Backend, Completion, CompletionRequest
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig, EmbeddedModel
from continuum.envelope import Envelope, Participant, PersonaReply, ReplyTarget, TextPart
from continuum.events import AnalysisPosted
from continuum.models import default_model_path
from continuum.persona_files import load_personas
from continuum.room import Room, RoomPolicy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
USER = Participant(id="sam", name="Sam")
MESSAGES = [
    "Our login endpoint got slow after we raised the bcrypt cost; should we cache passwords?",
    "How did people keep time before mechanical clocks were invented?",
    "I'm a beginner and I feel lost learning recursion. Any advice?",
    "Our p99 latency doubled after the last deploy and the CPU profile looks flat.",
    "Is it risky to let the build server hold production credentials?",
    "What's the story behind the old typewriter keyboard layout?",
    "How do octopuses change colour so fast?",
    "What opening should a new chess player learn first?",
    "Our cache hit rate dropped to 40 percent; where would you look first?",
    "I keep giving up on side projects. How do I stay motivated?",
]


class MeteredBackend(Backend):
    """Sums the backend's own token counts over every call made through it."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.evaluated = 0
        self.generated = 0
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        completion = await self.inner.complete(request, on_token=on_token)
        self.calls += 1
        self.evaluated += completion.metrics.evaluated_tokens
        self.generated += completion.metrics.generated_tokens
        return completion


def envelope(text: str, room_id: str, i: int) -> Envelope:
    return Envelope(
        id=f"{room_id}-m{i}",
        host="bench",
        room_id=room_id,
        author=USER,
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="bench", channel=room_id),
    )


async def run_size(model: EmbeddedModel, n: int, messages: list[str], policy: RoomPolicy) -> dict:
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    personas = personas[:n]
    config = EmbeddedConfig(live_slots=n + 1, slot_ctx=4096, n_threads=os.cpu_count() or 2)
    backends = {
        mode: MeteredBackend(EmbeddedBackend(model, config))
        for mode in ("shared", "naive", "naive_same")
    }
    rooms = {mode: Room(f"{mode}{n}", personas, b, policy=policy) for mode, b in backends.items()}
    wall = {mode: 0.0 for mode in backends}
    first: dict[str, list[float]] = {mode: [] for mode in backends}
    responders_per_message: list[int] = []
    think_tokens: list[int] = []

    async def timed(mode: str, run: Callable) -> list[PersonaReply]:
        start = time.perf_counter()
        seen: list[float] = []

        async def on_reply(_: PersonaReply) -> None:
            if not seen:
                seen.append(time.perf_counter() - start)

        replies = await run(on_reply=on_reply)
        wall[mode] += time.perf_counter() - start
        if seen:
            first[mode].append(seen[0])
        return replies

    shared_room = rooms["shared"]
    for i, text in enumerate(messages):
        env = envelope(text, shared_room.id, i)
        replies = await timed("shared", partial(shared_room.handle, env))
        answered = [shared_room.personas[r.persona_id] for r in replies]
        responders_per_message.append(len(answered))
        # each naive persona thinks exactly as long as the shared analysis took
        analyses = [e for e in shared_room.events.of_type(AnalysisPosted) if e.message_id == env.id]
        think = sum(e.metrics.generated_tokens for e in analyses if e.metrics is not None)
        think_tokens.append(think)
        for mode, who in (("naive", personas), ("naive_same", answered)):
            room = rooms[mode]
            env_n = envelope(text, room.id, i)
            message = room.receive(env_n)
            run = partial(naive, room, env_n, message, who, think_tokens=think)
            await timed(mode, run)
        print(
            f"  n={n} msg {i + 1}/{len(messages)}: {len(answered)} answered; "
            f"shared {wall['shared']:.1f}s naive {wall['naive']:.1f}s "
            f"same-responders {wall['naive_same']:.1f}s",
            flush=True,
        )
    for b in backends.values():
        b.inner.close()  # type: ignore[attr-defined]

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 3) if xs else None

    return {
        "personas": n,
        "messages": len(messages),
        "naive_s": round(wall["naive"], 2),
        "shared_s": round(wall["shared"], 2),
        "speedup": round(wall["naive"] / wall["shared"], 2),
        "first_reply_s": med(first["shared"]),
        "naive_first_reply_s": med(first["naive"]),
        "naive_same_responders_s": round(wall["naive_same"], 2),
        "speedup_same_responders": round(wall["naive_same"] / wall["shared"], 2),
        "responders_median": statistics.median(responders_per_message),
        "analysis_tokens_median": statistics.median(think_tokens),
        "evaluated_tokens": {m: backends[m].evaluated for m in backends},
        "generated_tokens": {m: backends[m].generated for m in backends},
        "backend_calls": {m: backends[m].calls for m in backends},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [4] if args.quick else [4, 6]
    messages = MESSAGES[:2] if args.quick else MESSAGES
    policy = RoomPolicy(
        reply_max_tokens=64,
        analysis_max_tokens=256,
        max_persona_turns_per_message=6,
        stream_deltas=False,
    )
    model = EmbeddedModel.load(default_model_path())
    rows = []
    for n in sizes:
        print(f"room of {n} personas, {len(messages)} messages", flush=True)
        rows.append(await run_size(model, n, messages, policy))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "bench": "shared_cognition",
        "model": default_model_path().name,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "policy": policy.model_dump(),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "shared_cognition_quick" if args.quick else "shared_cognition"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bench/shared_cognition",
        "",
        f"Model {result['model']}, {result['machine']}; reply budget "
        f"{policy.reply_max_tokens} tokens, analysis budget {policy.analysis_max_tokens}; "
        "naive = every persona thinks as long as the shared analysis took, then replies.",
        "",
        "| personas | naive s | shared s | speedup | naive (same responders) s | speedup "
        "(same responders) | first reply s (shared / naive) | responders (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['personas']} | {r['naive_s']} | {r['shared_s']} | {r['speedup']}x | "
            f"{r['naive_same_responders_s']} | {r['speedup_same_responders']}x | "
            f"{r['first_reply_s']} / {r['naive_first_reply_s']} | {r['responders_median']} |"
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    anyio.run(main)
