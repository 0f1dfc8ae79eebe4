"""bench/server_slots: 6 personas on one llama-server with 2 slots, 10 turns each.

Two servers run the same model with the same flags (2 slots, --slot-save-path, no
server-side prompt cache); two rooms with the same 6 personas get the same 10 messages,
message by message, one request at a time (so the two never compete for the cores):

- pinned: continuum's ServerBackend — each persona pinned to a slot; when a persona
  comes back to a slot another persona used, its KV is restored from the slot file
  (least recently used saved first).
- unpinned: the same backend with ``pin_slots=False`` — ``id_slot: -1``, the server's
  own slot choice (most similar cached prompt / least recently used), ``cache_prompt``
  still on.

Per warm turn (every persona turn after its first): tokens the server evaluated
(``timings.prompt_n``), tokens it reused (``cache_n``) and time to first token.

    .venv/bin/python bench/server_slots.py          # full run (~6 min on 2 cores)
    .venv/bin/python bench/server_slots.py --quick  # 3 messages

Writes bench/results/server_slots.json and server_slots.md. Needs the llama-server built
by ./scripts/build-llama-server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.server import ServerBackend, ServerConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona import load_personas  # noqa: E402
from continuum.room import Room, RoomPolicy  # noqa: E402
from tests.server.harness import LlamaServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MESSAGES = [
    "What should a small team measure first when the app feels slow?",
    "How do you decide what to cut from a project that is late?",
    "What is the most underrated tool you have ever used?",
    "How would you explain a race condition to a new colleague?",
    "Which old idea deserves a comeback?",
    "How do you keep a long meeting useful?",
    "What makes a code review kind and still honest?",
    "What is one risk people forget when they add a cache?",
    "How do you learn a new field quickly?",
    "What would you write in a note to your future self?",
]


def envelope(text: str, i: int) -> Envelope:
    return Envelope(
        id=f"m{i}",
        host="bench",
        room_id="r",
        author=Participant(id="sam", name="Sam"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="bench", channel="r"),
    )


def summarize(room: Room, backend: ServerBackend, mode: str) -> dict:
    seen: set[str] = set()
    warm = []
    for e in room.events.of_type(ReplyPosted):
        if e.persona_id in seen:
            warm.append(e.metrics)
        seen.add(e.persona_id)
    stats = next(iter(backend.servers.values())).stats
    return {
        "mode": mode,
        "warm_turns": len(warm),
        "evaluated_tokens_median": statistics.median(m.evaluated_tokens for m in warm),
        "reused_tokens_median": statistics.median(m.reused_tokens for m in warm),
        "prompt_tokens_median": statistics.median(m.prompt_tokens for m in warm),
        "ttft_ms_median": round(statistics.median(m.ttft_ms for m in warm), 1),
        "ttft_ms_p90": round(sorted(m.ttft_ms for m in warm)[int(0.9 * (len(warm) - 1))], 1),
        "restored_turns": sum(m.restored_from_hibernation for m in warm),
        "slot_saves": stats["saved"],
        "slot_restores": stats["restored"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    messages = MESSAGES[:3] if args.quick else MESSAGES
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    assert len(personas) == 6
    model = default_model_path()
    threads = os.cpu_count() or 2
    policy = RoomPolicy(reply_max_tokens=24, cognition="direct", max_persona_turns_per_message=6)
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            mode: LlamaServer(model, slots=2, slot_ctx=4096, threads=threads,
                              slot_save_path=Path(tmp) / mode)
            for mode in ("pinned", "unpinned")
        }  # fmt: skip
        for s in servers.values():
            s.start()
        try:
            backends = {
                "pinned": ServerBackend(servers["pinned"].url, ServerConfig()),
                "unpinned": ServerBackend(servers["unpinned"].url, ServerConfig(pin_slots=False)),
            }
            rooms = {
                mode: Room(f"bench-{mode}", personas, backends[mode], policy=policy)
                for mode in backends
            }
            for i, text in enumerate(messages):
                for room in rooms.values():
                    await room.handle(envelope(text, i))
                print(f"  message {i + 1}/{len(messages)} done", flush=True)
            rows = [summarize(rooms[m], backends[m], m) for m in ("pinned", "unpinned")]
            for b in backends.values():
                await b.aclose()
        finally:
            for s in servers.values():
                s.stop()
    p, u = rows
    result = {
        "bench": "server_slots",
        "model": model.name,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": "6 personas, 1 llama-server with 2 slots (-c 8192), --slot-save-path, "
        f"--cache-ram 0, {len(messages)} messages, every persona answers each (direct mode)",
        "rows": rows,
        "evaluated_ratio_unpinned_over_pinned": round(
            u["evaluated_tokens_median"] / max(p["evaluated_tokens_median"], 1), 2
        ),
        "ttft_ratio_unpinned_over_pinned": round(u["ttft_ms_median"] / p["ttft_ms_median"], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "server_slots_quick" if args.quick else "server_slots"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bench/server_slots",
        "",
        f"{result['setup']}; model {result['model']}, {result['machine']}. Warm turns only.",
        "",
        "| mode | warm turns | evaluated (median) | reused (median) | prompt (median) | "
        "TTFT ms median | TTFT ms p90 | restored turns | slot saves |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['warm_turns']} | {r['evaluated_tokens_median']} | "
            f"{r['reused_tokens_median']} | {r['prompt_tokens_median']} | {r['ttft_ms_median']} "
            f"| {r['ttft_ms_p90']} | {r['restored_turns']} | {r['slot_saves']} |"
        )
    lines += [
        "",
        f"Unpinned / pinned: evaluated tokens {result['evaluated_ratio_unpinned_over_pinned']}x,"
        f" TTFT {result['ttft_ratio_unpinned_over_pinned']}x.",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    anyio.run(main)
