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

Then the same at ~4k and ~7k-token prompts (each room starts with that much earlier
history; 4 messages; 7k because the model's 8192-token context holds no more), where
re-evaluating a whole prompt costs what pinning saves.

    .venv/bin/python bench/server_slots.py          # full run (~40 min on 2 cores)
    .venv/bin/python bench/server_slots.py --quick  # 3 messages, ~1.3k prompts only

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
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.server import ServerBackend, ServerConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, RoomMessage, TextPart  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.prompt_sources import persona_turn_recipe  # noqa: E402
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


def seed_history(room: Room, tokens: int, server_url: str) -> None:
    """``tokens`` of earlier conversation in the model's own tokens (counted by the
    server's /tokenize, not estimated), the same in every room (deterministic)."""
    words = (
        "latency cache river garden history engine lantern budget profile archive clock "
        "signal copper meadow kernel thread harbour window puzzle recipe orbit ledger"
    ).split()
    sam = Participant(id="sam", name="Sam")
    i = total = 0
    while total < tokens:
        text = " ".join(words[(i * 7 + j) % len(words)] for j in range(60)).capitalize() + "."
        counted = httpx.post(f"{server_url}/tokenize", json={"content": text}, timeout=30)
        total += len(counted.json()["tokens"]) + 8  # + the turn's role markers
        room.history.append(RoomMessage(id=f"h{i}", author=sam, text=text))
        i += 1


async def run_size(
    label: str, history_tokens: int, messages: list[str], personas: list, model: Path
) -> list[dict]:
    threads = os.cpu_count() or 2
    policy = RoomPolicy(reply_max_tokens=24, cognition="direct", max_persona_turns_per_message=6)
    # llama-server caps a slot at the model's trained context (SmolLM2: 8192 tokens), so
    # the largest size is 7k of history: prompt plus reply must fit in those 8192
    slot_ctx = 4096 if history_tokens < 2000 else min(8192, history_tokens + 2048)
    # the history budget is in the backend's estimated tokens, which run ~30 % over the
    # model's: keep every seeded message, so the prompt really is this size on every turn
    recipe = persona_turn_recipe(history_budget=max(3072, 2 * history_tokens + 1024))
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            mode: LlamaServer(model, slots=2, slot_ctx=slot_ctx, threads=threads,
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
                mode: Room(f"bench-{mode}", personas, backends[mode], policy=policy, recipe=recipe)
                for mode in backends
            }
            for mode, room in rooms.items():
                seed_history(room, history_tokens, servers[mode].url)
            for i, text in enumerate(messages):
                for room in rooms.values():
                    await room.handle(envelope(text, i))
                print(f"  {label}: message {i + 1}/{len(messages)} done", flush=True)
            rows = [summarize(rooms[m], backends[m], m) for m in ("pinned", "unpinned")]
            for b in backends.values():
                await b.aclose()
        finally:
            for s in servers.values():
                s.stop()
    for row in rows:
        row["size"] = label
        row["slot_ctx"] = slot_ctx
        row["messages"] = len(messages)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sizes", help="rerun only these sizes (e.g. 4k,7k); the other rows are kept"
    )
    args = parser.parse_args()
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    assert len(personas) == 6
    model = default_model_path()
    sizes = [("1.3k", 0, MESSAGES[:3] if args.quick else MESSAGES)]
    if not args.quick:
        sizes += [("4k", 4000, MESSAGES[:4]), ("7k", 7000, MESSAGES[:4])]
    kept: list[dict] = []
    if args.sizes:
        wanted = set(args.sizes.split(","))
        stored = json.loads((RESULTS / "server_slots.json").read_text())["rows"]
        kept = [r for r in stored if r["size"] not in wanted]
        sizes = [s for s in sizes if s[0] in wanted]
    new_rows = []
    for label, history, messages in sizes:
        new_rows += await run_size(label, history, messages, personas, model)
    order = ["1.3k", "4k", "7k"]
    rows = sorted(kept + new_rows, key=lambda r: (order.index(r["size"]), r["mode"]))
    sizes = [s for s in [("1.3k",), ("4k",), ("7k",)] if any(r["size"] == s[0] for r in rows)]
    by = {(r["size"], r["mode"]): r for r in rows}
    result = {
        "bench": "server_slots",
        "model": model.name,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": "6 personas, 1 llama-server with 2 slots, --slot-save-path, --cache-ram 0, "
        "every persona answers each message (direct mode); 1.3k: 10 messages; 4k and 7k: the "
        "rooms start with that much earlier history, 4 messages",
        "rows": rows,
        "ratios": {
            label: {
                "evaluated_unpinned_over_pinned": round(
                    by[(label, "unpinned")]["evaluated_tokens_median"]
                    / max(by[(label, "pinned")]["evaluated_tokens_median"], 1),
                    2,
                ),
                "ttft_unpinned_over_pinned": round(
                    by[(label, "unpinned")]["ttft_ms_median"]
                    / by[(label, "pinned")]["ttft_ms_median"],
                    2,
                ),
            }
            for (label, *_) in sizes
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "server_slots_quick" if args.quick else "server_slots"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bench/server_slots",
        "",
        f"{result['setup']}; model {result['model']}, {result['machine']}. Warm turns only.",
        "",
        "| size | mode | warm turns | evaluated (median) | reused (median) | prompt (median) | "
        "TTFT ms median | TTFT ms p90 | restored turns | slot saves |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['mode']} | {r['warm_turns']} | {r['evaluated_tokens_median']} | "
            f"{r['reused_tokens_median']} | {r['prompt_tokens_median']} | {r['ttft_ms_median']} "
            f"| {r['ttft_ms_p90']} | {r['restored_turns']} | {r['slot_saves']} |"
        )
    lines.append("")
    for label, ratio in result["ratios"].items():
        lines.append(
            f"{label}: unpinned / pinned evaluated tokens "
            f"{ratio['evaluated_unpinned_over_pinned']}x, "
            f"TTFT {ratio['ttft_unpinned_over_pinned']}x."
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    anyio.run(main)
