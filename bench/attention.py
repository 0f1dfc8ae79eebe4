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
    warm = []
    for q in QUESTIONS:
        r = await backend.complete(
            CompletionRequest(prompt=prompt(reps, q), slot=key, settings=SETTINGS)
        )
        warm.append(r.metrics)
    backend.close()
    return {
        "prompt_tokens": cold.metrics.prompt_tokens,
        "cold_prefill_ms": round(cold.metrics.prompt_eval_ms, 1),
        "warm_evaluated_tokens": statistics.median(m.evaluated_tokens for m in warm),
        "warm_eval_ms_p50": round(statistics.median(m.prompt_eval_ms for m in warm), 1),
        "decode_tokens_per_s_p50": round(statistics.median(m.decode_tokens_per_s for m in warm), 1),
    }


async def main() -> dict:
    rows = []
    for reps in (80, 300):
        on = await measure(True, reps)
        off = await measure(False, reps)
        rows.append(
            {
                "prompt_tokens": on["prompt_tokens"],
                "flash_on": on,
                "flash_off": off,
                "warm_eval_speedup_off": round(on["warm_eval_ms_p50"] / off["warm_eval_ms_p50"], 2),
                "decode_speedup_off": round(
                    off["decode_tokens_per_s_p50"] / on["decode_tokens_per_s_p50"], 2
                ),
                "cold_prefill_ratio_off": round(off["cold_prefill_ms"] / on["cold_prefill_ms"], 2),
            }
        )
    return {
        "bench": "attention",
        "machine": f"{platform.machine()}, 2 threads",
        "model": default_model_path().name,
        "rows": rows,
    }


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "attention.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bench/attention",
        "",
        f"{result['model']}, embedded backend, {result['machine']}: flash attention on vs off "
        "in one run. Warm turn: the new line only (prefix reused), then 30 generated tokens.",
        "",
        "| prompt tokens | warm eval ms, on / off | decode tok/s, on / off | cold prefill ms, "
        "on / off |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        on, off = r["flash_on"], r["flash_off"]
        lines.append(
            f"| {r['prompt_tokens']} | {on['warm_eval_ms_p50']} / {off['warm_eval_ms_p50']} "
            f"({r['warm_eval_speedup_off']}x) | {on['decode_tokens_per_s_p50']} / "
            f"{off['decode_tokens_per_s_p50']} ({r['decode_speedup_off']}x) | "
            f"{on['cold_prefill_ms']} / {off['cold_prefill_ms']} |"
        )
    lines += [
        "",
        "The embedded backend's default is flash attention off (`EmbeddedConfig.flash_attn`): "
        "on this CPU build it makes every warm turn and every generated token slower, and it "
        "only wins a cold prefill, which continuum's stable-first prompts avoid.",
    ]
    (RESULTS / "attention.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    out = anyio.run(main)
    write(out)
    print((RESULTS / "attention.md").read_text())
