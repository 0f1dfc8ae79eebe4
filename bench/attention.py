"""bench/attention: llama.cpp's flash attention on or off for the embedded backend, on CPU.

One persona slot, a prompt of ~800 and ~3000 tokens: the cold prefill, then a warm turn
(only the new line evaluated, ~11 tokens) and 30 generated tokens, with flash attention
on and off side by side in one run. continuum's turns are warm by design, so the warm
evaluation and the decode rate are what a persona feels.

    .venv/bin/python bench/attention.py      # ~2 min on 2 cores

Writes bench/results/attention.json and attention.md.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.base import CompletionRequest, GenerationSettings, SlotKey  # noqa: E402
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.models import default_model_path  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SETTINGS = GenerationSettings(max_tokens=30, min_tokens=30, temperature=0.0, repeat_penalty=1.0)
QUESTIONS = ["What time is it?", "Why is the build slow?", "Tell me more.", "And the cache?"]
# a long new message (~200 tokens: a pasted log with a question), as rooms often get
PASTE = " ".join(
    f"step {i}: cache miss on shard {i % 7}, retried after {i * 13} ms." for i in range(18)
)
LONG = [f"{q} Here is the log: {PASTE}" for q in QUESTIONS]
REPLY = 40  # generated tokens in a whole turn


def prompt(reps: int, question: str) -> str:
    system = "You are Maya." + " The cache is warm and the build is slow." * reps
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


async def measure(flash: bool, reps: int) -> dict:
    backend = EmbeddedBackend(
        default_model_path(),
        EmbeddedConfig(live_slots=2, slot_ctx=8192, n_threads=2, flash_attn=flash),
    )
    key = SlotKey(persona_id="maya")
    cold = await backend.complete(
        CompletionRequest(prompt=prompt(reps, "hi"), slot=key, settings=SETTINGS)
    )
    out: dict = {
        "prompt_tokens": cold.metrics.prompt_tokens,
        "cold_prefill_ms": round(cold.metrics.prompt_eval_ms, 1),
    }
    for label, questions in (("short", QUESTIONS), ("long", LONG)):
        warm = []
        for q in questions:
            r = await backend.complete(
                CompletionRequest(prompt=prompt(reps, q), slot=key, settings=SETTINGS)
            )
            warm.append(r.metrics)
            # back to the shared prefix, so every question is a warm turn on the same depth
            await backend.complete(
                CompletionRequest(prompt=prompt(reps, "hi"), slot=key, settings=SETTINGS)
            )
        eval_ms = statistics.median(m.prompt_eval_ms for m in warm)
        tps = statistics.median(m.decode_tokens_per_s for m in warm)
        out[label] = {
            "evaluated_tokens": statistics.median(m.evaluated_tokens for m in warm),
            "eval_ms_p50": round(eval_ms, 1),
            "decode_tokens_per_s_p50": round(tps, 1),
            # a whole warm turn: the new message, then a 40-token reply
            "turn_ms": round(eval_ms + REPLY / tps * 1000, 1),
        }
    backend.close()
    return out


async def main() -> dict:
    rows = []
    for reps in (80, 300):
        on = await measure(True, reps)
        off = await measure(False, reps)
        rows.append({"prompt_tokens": on["prompt_tokens"], "flash_on": on, "flash_off": off})
    return {
        "bench": "attention",
        "machine": f"{platform.machine()}, 2 threads",
        "model": default_model_path().name,
        "reply_tokens": REPLY,
        "rows": rows,
    }


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "attention.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bench/attention",
        "",
        f"{result['model']}, embedded backend, {result['machine']}: flash attention on vs off "
        "in one run. A warm turn evaluates only the new message (the prefix is reused): a "
        "short one (~11 tokens) or a long one (~200 tokens, a pasted log), then decodes; a "
        f"whole turn = that evaluation + {result['reply_tokens']} generated tokens.",
        "",
        "| prompt tokens | new message | eval ms, on / off | decode tok/s, on / off | "
        "whole turn ms, on / off |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        on, off = r["flash_on"], r["flash_off"]
        for label in ("short", "long"):
            a, b = on[label], off[label]
            lines.append(
                f"| {r['prompt_tokens']} | {label} ({a['evaluated_tokens']:.0f} tok) | "
                f"{a['eval_ms_p50']} / {b['eval_ms_p50']} | {a['decode_tokens_per_s_p50']} / "
                f"{b['decode_tokens_per_s_p50']} | {a['turn_ms']} / {b['turn_ms']} |"
            )
    lines += [
        "",
        "Cold prefill ms, on / off: "
        + "; ".join(
            f"{r['prompt_tokens']} tok: {r['flash_on']['cold_prefill_ms']} / "
            f"{r['flash_off']['cold_prefill_ms']}"
            for r in result["rows"]
        )
        + ".",
    ]
    (RESULTS / "attention.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    out = anyio.run(main)
    write(out)
    print((RESULTS / "attention.md").read_text())
