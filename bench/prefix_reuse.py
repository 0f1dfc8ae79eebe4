"""bench/prefix_reuse: warm-turn cost of continuum's per-persona slots vs the naive path.

For each context size: a room of 6 personas whose prompts hold ~N tokens of shared room
history; 10 rounds of (a new user message, then every persona answers). Each continuum
turn is followed at once by the naive path on the SAME prompt — one sequence, no reuse
across personas (what llama-cpp-python's single-sequence Llama does when personas
alternate) — so both are measured under the same machine conditions.

The limit for a warm turn is the tokens it must evaluate divided by the prompt-eval rate
measured with raw llama_decode at that context depth.

Also: resident memory with 6 and 14 personas holding 4k-token slots, and composition
time on a composition-cache miss.

    .venv/bin/python bench/prefix_reuse.py            # full run (~45 min on 2 cores)
    .venv/bin/python bench/prefix_reuse.py --quick    # smoke run (~1 min)

Writes bench/results/prefix_reuse.json and prefix_reuse.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from pathlib import Path

import anyio
import llama_cpp

from continuum.backends.base import CompletionRequest, GenerationSettings, SlotKey
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig, EmbeddedModel
from continuum.envelope import Envelope, Participant, ReplyTarget, RoomMessage
from continuum.models import default_model_path
from continuum.persona import Persona
from continuum.persona_files import load_personas
from continuum.prompt_sources import persona_turn_recipe
from continuum.room import Room, RoomPolicy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
USER = Participant(id="sam", name="Sam")
WORDS = [
    "latency",
    "cache",
    "river",
    "garden",
    "history",
    "engine",
    "lantern",
    "budget",
    "profile",
    "archive",
    "clock",
    "signal",
    "copper",
    "meadow",
    "kernel",
    "thread",
    "harbour",
    "window",
    "puzzle",
    "recipe",
    "orbit",
    "ledger",
    "candle",
    "market",
    "pattern",
    "bridge",
    "compass",
    "winter",
    "summer",
    "museum",
    "library",
    "patient",
    "measure",
    "careful",
    "bright",
    "question",
    "answer",
    "reason",
    "memory",
    "story",
    "journey",
    "village",
    "mountain",
    "ocean",
    "forest",
    "practice",
]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def personas() -> list[Persona]:
    """The four examples plus two more: six distinct personas."""
    examples = ROOT / "examples"
    return load_personas([examples / "personas", examples / "more-personas"])[:6]


def seed_history(room: Room, cast: list[Persona], target_tokens: int, count) -> None:
    """Synthetic multi-party history (people and every persona) up to ~target tokens."""
    rng = random.Random(target_tokens)
    authors = [USER] + [room.participants[p.id] for p in cast]
    total = 0
    i = 0
    while total < target_tokens:
        author = authors[i % len(authors)]
        text = " ".join(sentence(rng, rng.randint(8, 16)) for _ in range(4))
        room.history.append(RoomMessage(id=f"seed{i}", author=author, text=text))
        total += count(text) + 8
        i += 1


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def raw_eval_ms(backend: EmbeddedBackend, key: SlotKey, extra: list[int]) -> float:
    """Time llama_decode of ``extra`` tokens on top of the tokens already in ``key``'s slot,
    then remove them again (the limit measurement, no continuum code in the timed part)."""
    slot = backend.slots.peek(key)
    assert slot is not None
    depth = len(slot.tokens)
    record: list[int] = []
    t0 = time.perf_counter()
    backend._decode(extra, slot.seq_id, depth, threading.Event(), record)
    elapsed = (time.perf_counter() - t0) * 1000
    llama_cpp.llama_memory_seq_rm(backend._memory, slot.seq_id, depth, -1)
    return elapsed


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def run_context(
    model: EmbeddedModel,
    context: int,
    rounds: int,
    naive_rounds: int,
    threads: int,
    gen: int,
    user_words: int,
    log,
) -> dict:
    cast = personas()
    slot_ctx = context + rounds * (user_words * 2 + len(cast) * (gen + 16)) + 1024
    cfg = EmbeddedConfig(live_slots=len(cast), slot_ctx=slot_ctx, n_threads=threads)
    backend = EmbeddedBackend(model, cfg)
    naive = EmbeddedBackend(
        model, EmbeddedConfig(live_slots=1, hibernate=False, slot_ctx=slot_ctx, n_threads=threads)
    )
    recipe = persona_turn_recipe(history_budget=slot_ctx)
    room = Room(
        f"bench-{context}",
        cast,
        backend,
        recipe=recipe,
        policy=RoomPolicy(reply_max_tokens=gen, stream_deltas=False),
    )
    seed_history(room, cast, context, backend.count_tokens)
    rng = random.Random(7)
    settings = GenerationSettings(max_tokens=gen, temperature=0)
    warm: list[dict] = []
    naive_ms: list[float] = []
    limit_ms: list[float] = []
    compose_ms: list[float] = []
    cold_ms: list[float] = []
    for r in range(rounds):
        text = sentence(rng, user_words)
        envelope = Envelope(
            id=f"u{context}-{r}",
            host="bench",
            room_id=room.id,
            author=USER,
            parts=({"type": "text", "text": text},),
            reply_to=ReplyTarget(host="bench", channel=room.id),
        )
        room.receive(envelope)
        for persona in cast:
            t0 = time.perf_counter()
            composed = room.compose(persona)  # a composition-cache miss (new history tail)
            compose_ms.append((time.perf_counter() - t0) * 1000)
            result = await room.persona_turn(persona, envelope)
            m = result.metrics
            assert m is not None
            if r == 0:
                cold_ms.append(m.ttft_ms)
                log(
                    f"  {context:>6} cold  {persona.id:<6} prompt={m.prompt_tokens} "
                    f"ttft={m.ttft_ms:.0f}ms"
                )
            else:
                key = SlotKey.for_persona(persona)  # the naive backend's single sequence
                prompt_tokens = backend.model.tokenize(composed.prompt)
                # the limit: evaluate the same number of tokens at the same depth, raw
                depth_key = room.slot_for(persona)  # slots are per (persona, room)
                slot = backend.slots.peek(depth_key)
                extra = prompt_tokens[-m.evaluated_tokens :]
                saved = list(slot.tokens)
                keep = m.prompt_tokens - m.evaluated_tokens
                # rewind the slot to the turn's reusable prefix, time raw decode, restore
                llama_cpp.llama_memory_seq_rm(backend._memory, slot.seq_id, keep, -1)
                del slot.tokens[keep:]
                limit = raw_eval_ms(backend, depth_key, extra)
                # put the slot back exactly as the turn left it (untimed), so the next turn
                # of this persona is not penalised by the measurement
                backend._decode(saved[keep:], slot.seq_id, keep, threading.Event(), slot.tokens)
                assert slot.tokens == saved
                limit_ms.append(limit)
                row = {
                    "round": r,
                    "persona": persona.id,
                    "prompt_tokens": m.prompt_tokens,
                    "evaluated_tokens": m.evaluated_tokens,
                    "ttft_ms": m.ttft_ms,
                    "limit_ms": limit,
                    "volatile_tokens": m.prompt_tokens
                    - backend.count_tokens(composed.prompt[: composed.stable_len]),
                }
                if r <= naive_rounds:
                    n = await naive.complete(
                        CompletionRequest(
                            prompt=composed.prompt,
                            slot=key,
                            settings=settings.model_copy(update={"max_tokens": 1}),
                        )
                    )
                    row["naive_ttft_ms"] = n.metrics.ttft_ms
                    row["naive_evaluated_tokens"] = n.metrics.evaluated_tokens
                    naive_ms.append(n.metrics.ttft_ms)
                warm.append(row)
                log(
                    f"  {context:>6} warm r{r} {persona.id:<6} prompt={m.prompt_tokens} "
                    f"eval={m.evaluated_tokens} ttft={m.ttft_ms:.0f}ms limit={limit:.0f}ms"
                    + (f" naive={row['naive_ttft_ms']:.0f}ms" if "naive_ttft_ms" in row else "")
                )
    naive.close()
    backend.close()
    cont = median([w["ttft_ms"] for w in warm])
    naive_med = median(naive_ms)
    limit_med = median(limit_ms)
    return {
        "context_tokens": context,
        "prompt_tokens_median": median([w["prompt_tokens"] for w in warm]),
        "volatile_tokens": median([w["volatile_tokens"] for w in warm]),
        "evaluated_tokens_median": median([w["evaluated_tokens"] for w in warm]),
        "naive_evaluated_tokens_median": median(
            [w["naive_evaluated_tokens"] for w in warm if "naive_evaluated_tokens" in w]
        ),
        "naive_ttft_ms_median": naive_med,
        "continuum_ttft_ms_median": cont,
        "cold_ttft_ms_median": median(cold_ms),
        "ratio": naive_med / cont,
        "limit_ms": limit_med,
        "ttft_over_limit": cont / limit_med,
        "prompt_eval_tokens_per_s_at_depth": (
            median([w["evaluated_tokens"] for w in warm]) / limit_med * 1000
        ),
        "warm_turns": len(warm),
        "naive_turns": len(naive_ms),
        "composition_ms_p50": median(compose_ms),
        "composition_ms_p95": p95(compose_ms),
        "turns": warm,
    }


def memory_rows(
    model: EmbeddedModel, threads: int, counts: list[int], slot_tokens: int, log
) -> list[dict]:
    """RSS with N personas each holding a ``slot_tokens`` KV slot. One slot is evaluated
    for real; the others are filled by restoring its per-sequence state (same bytes)."""
    rows = []
    rng = random.Random(1)
    text = " ".join(sentence(rng, 12) for _ in range(slot_tokens // 8))
    tokens = model.tokenize(text)[:slot_tokens]
    for n in counts:
        before = rss_mb()
        b = EmbeddedBackend(
            model,
            EmbeddedConfig(
                live_slots=n, slot_ctx=slot_tokens + 256, n_threads=threads, hibernate=False
            ),
        )
        empty = rss_mb()
        first, _ = b.slots.acquire(SlotKey(persona_id="p0"))
        b._decode(tokens, first.seq_id, 0, threading.Event(), first.tokens)
        state = b.slots._store.save(first.seq_id)
        for i in range(1, n):
            slot, _ = b.slots.acquire(SlotKey(persona_id=f"p{i}"))
            assert b.slots._store.restore(slot.seq_id, state)
            slot.tokens[:] = first.tokens
        full = rss_mb()
        rows.append(
            {
                "personas": n,
                "slot_tokens": len(tokens),
                "rss_mb": round(full, 1),
                "rss_delta_mb": round(full - before, 1),
                "context_alloc_mb": round(empty - before, 1),
                "kv_state_mb_per_slot": round(len(state) / 2**20, 1),
            }
        )
        log(f"  memory: {rows[-1]}")
        b.close()
    return rows


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# bench/prefix_reuse",
        "",
        f"Model `{result['model']}`, {result['cpu_threads']} CPU threads, "
        f"{result['personas']} personas round-robin, {result['rounds']} rounds "
        f"(the first is cold), {result['gen_tokens']} generated tokens per reply.",
        "Naive = same model, same prompts, one sequence, no reuse across personas; "
        "measured right after each continuum turn.",
        "Limit = the tokens a warm turn evaluates ÷ the raw llama_decode rate at that depth.",
        "",
        "| context | prompt tok | volatile tok | evaluated (continuum / naive) | naive TTFT ms "
        "| continuum TTFT ms | ratio | limit ms | TTFT ÷ limit | compose p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['context_tokens']} | {r['prompt_tokens_median']:.0f} "
            f"| {r['volatile_tokens']:.0f} "
            f"| {r['evaluated_tokens_median']:.0f} / {r['naive_evaluated_tokens_median']:.0f} "
            f"| {r['naive_ttft_ms_median']:.0f} | {r['continuum_ttft_ms_median']:.0f} "
            f"| {r['ratio']:.1f}× | {r['limit_ms']:.0f} | {r['ttft_over_limit']:.2f} "
            f"| {r['composition_ms_p95']:.1f} |"
        )
    lines += [
        "",
        "Naive turns measured per row: "
        + ", ".join(f"{r['context_tokens']}: {r['naive_turns']}" for r in result["rows"])
        + " (a naive turn at depth re-evaluates everything, so large rows sample fewer).",
        "",
        "## Resident memory, slots of ~4k tokens",
        "",
        "| personas | RSS MB | RSS growth MB | KV state per slot MB |",
        "|---:|---:|---:|---:|",
    ]
    for m in result["memory"]:
        lines.append(
            f"| {m['personas']} | {m['rss_mb']} | {m['rss_delta_mb']} "
            f"| {m['kv_state_mb_per_slot']} |"
        )
    if any(r["context_tokens"] > 8192 for r in result["rows"]):
        lines += [
            "",
            "The model's trained context is 8k tokens: rows beyond it measure speed, "
            "not reply quality.",
        ]
    path.write_text("\n".join(lines) + "\n")


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--contexts", type=int, nargs="+", default=[2000, 8000, 14000])
    ap.add_argument("--rounds", type=int, default=10, help="rounds; each persona speaks once")
    ap.add_argument(
        "--naive-rounds",
        type=int,
        nargs="+",
        default=[9, 2, 1],
        help="warm rounds also measured on the naive path, per context",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen", type=int, default=16, help="tokens generated per reply")
    ap.add_argument("--user-words", type=int, default=60, help="words per user message")
    ap.add_argument("--memory-personas", type=int, nargs="*", default=[6, 14])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS / "prefix_reuse.json")
    args = ap.parse_args()
    if args.quick:
        args.contexts, args.rounds, args.naive_rounds = [600], 3, [2]
        args.memory_personas = [2]
    naive_rounds = args.naive_rounds + [args.naive_rounds[-1]] * len(args.contexts)
    model = EmbeddedModel.load(default_model_path())

    def log(msg: str) -> None:
        print(msg, flush=True)

    rows = []
    for context, nr in zip(args.contexts, naive_rounds, strict=False):
        log(f"context {context}: {args.rounds} rounds, naive on {nr} warm rounds")
        rows.append(
            await run_context(
                model, context, args.rounds, nr, args.threads, args.gen, args.user_words, log
            )
        )
    memory = memory_rows(
        model, args.threads, args.memory_personas, 1000 if args.quick else 4096, log
    )
    result = {
        "model": model.path.name,
        "cpu_threads": args.threads,
        "personas": 6,
        "rounds": args.rounds,
        "gen_tokens": args.gen,
        "machine": {"cpus": os.cpu_count(), "quick": args.quick},
        "rows": [{k: v for k, v in r.items() if k != "turns"} for r in rows],
        "memory": memory,
        "composition_ms_p95": max(r["composition_ms_p95"] for r in rows),
        "turns": {r["context_tokens"]: r["turns"] for r in rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    anyio.run(main)
