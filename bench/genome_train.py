"""bench/genome_train: a persona learns a habit from its own turns, end to end.

A persona answers geography questions in real rooms (one room per question, so its
history never shows an earlier answer); a scripted teacher supplies the replies it should
learn ("Ahoy! The capital of X is Y, matey."), and those turns become training pairs
through the room's normal path. One reply gets a thumbs-down (left out of training).
``train_adapter`` then trains a PEFT LoRA on the GGUF base (dequantized by transformers),
converts it with llama.cpp's convert_lora_to_gguf.py and registers it; the embedded
backend serves it on the Q4 base.

Reported, base vs learned side by side on questions it never saw: mean similarity of the
greedy reply to the taught form (difflib ratio), how many replies take the taught form,
held-out loss per response token before/after, the time to load, train and convert, the
adapter's size, and a warm turn's evaluated tokens and TTFT with and without it.

    .venv/bin/python bench/genome_train.py      # ~3 min on 2 cores

Writes bench/results/genome_train.json and genome_train.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.genome.pairs import PairLog  # noqa: E402
from continuum.genome.registry import GenomeRegistry, resolve_persona  # noqa: E402
from continuum.genome.train import train_adapter  # noqa: E402
from continuum.genome.train_spec import TrainSpec  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.room import Room  # noqa: E402
from continuum.testing import ScriptedBackend  # noqa: E402
from tests.genome import teaching  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POLICY, TAUGHT, UNSEEN = teaching.POLICY, teaching.TAUGHT, teaching.UNSEEN
persona, taught, question = teaching.persona, teaching.taught, teaching.question


async def main() -> dict:
    model = default_model_path()
    data = Path(tempfile.mkdtemp(prefix="bench-genome-train-"))
    log = PairLog(data)
    scripted = ScriptedBackend(teaching.teacher())
    for i, country in enumerate(TAUGHT):
        room = Room(f"t{i}", [persona(True)], scripted, policy=POLICY, pairs=log)
        await room.handle(question(f"t{i}", country, ("sam", "lee", "ana")[i % 3]))
        if i == 5:
            room.react(room.events.of_type(ReplyPosted)[-1].message.id, positive=False)
    pairs = log.pairs("maya", "geography")
    registry = GenomeRegistry(data, base_model=model)
    spec = TrainSpec(steps=30, batch_size=3, learning_rate=2e-3, heldout_fraction=0.2)
    t0 = time.monotonic()
    record, report = train_adapter(registry, "maya", "geography", pairs, spec=spec)
    wall_s = time.monotonic() - t0
    learned = resolve_persona(persona(False), registry)

    backend = EmbeddedBackend(model, EmbeddedConfig(live_slots=4, slot_ctx=2048, n_threads=2))
    rows = []
    for i, (country, capital) in enumerate(UNSEEN.items()):
        row: dict = {"country": country}
        for label, who in (("base", persona(False)), ("learned", learned)):
            room = Room(f"{label}{i}", [who], backend, policy=POLICY)
            await room.handle(question(f"{label}{i}", country, "sam"))
            posted = room.events.of_type(ReplyPosted)[-1]
            text = posted.message.text
            row[label] = text
            row[f"{label}_score"] = round(
                SequenceMatcher(None, text, taught(country, capital)).ratio(), 3
            )
            row[f"{label}_form"] = text.startswith("Ahoy!") and text.rstrip(".").endswith("matey")
            row[f"{label}_adapters"] = list(posted.metrics.adapters)
            # a warm second turn in the same room: what the adapter costs per turn
            await room.handle(question(f"{label}{i}", country, "sam"))
            warm = room.events.of_type(ReplyPosted)[-1].metrics
            row[f"{label}_warm_evaluated"] = warm.evaluated_tokens
            row[f"{label}_warm_ttft_ms"] = round(warm.ttft_ms, 1)
        rows.append(row)
    backend.close()

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 1)

    result = {
        "model": model.name,
        "taught_pairs": len(pairs),
        "unseen_questions": len(rows),
        "train": json.loads(report.model_dump_json(exclude={"loss_curve"})),
        "loss_curve": report.loss_curve,
        "train_wall_s": round(wall_s, 1),
        "adapter": {
            "id": record.id,
            "rank": record.rank,
            "bytes": record.size,
            "targets": list(record.targets),
        },
        "base_score_mean": round(statistics.mean(r["base_score"] for r in rows), 3),
        "learned_score_mean": round(statistics.mean(r["learned_score"] for r in rows), 3),
        "base_taught_form": sum(r["base_form"] for r in rows),
        "learned_taught_form": sum(r["learned_form"] for r in rows),
        "warm_evaluated_tokens_p50": {
            "base": med("base_warm_evaluated"),
            "learned": med("learned_warm_evaluated"),
        },
        "warm_ttft_ms_p50": {
            "base": med("base_warm_ttft_ms"),
            "learned": med("learned_warm_ttft_ms"),
        },
        "rows": rows,
    }
    return result


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "genome_train.json").write_text(json.dumps(result, indent=2) + "\n")
    t = result["train"]
    lines = [
        "# bench/genome_train",
        "",
        f"{result['model']}; {result['taught_pairs']} turns recorded as training pairs through "
        "real rooms (a scripted teacher supplies the taught replies; one reply disliked); "
        f"PEFT LoRA rank {result['adapter']['rank']} on the GGUF base dequantized by "
        "transformers, converted by llama.cpp's convert_lora_to_gguf.py, served on the Q4 base "
        f"by the embedded backend; {result['unseen_questions']} questions it never saw.",
        "",
        "| measure | base | learned |",
        "|---|---|---|",
        f"| similarity to the taught form, mean | {result['base_score_mean']} | "
        f"{result['learned_score_mean']} |",
        f"| replies in the taught form | {result['base_taught_form']} / "
        f"{result['unseen_questions']} | {result['learned_taught_form']} / "
        f"{result['unseen_questions']} |",
        f"| held-out loss per response token | {t['heldout_loss_before']} | "
        f"{t['heldout_loss_after']} |",
        f"| warm turn: evaluated tokens p50 | {result['warm_evaluated_tokens_p50']['base']} | "
        f"{result['warm_evaluated_tokens_p50']['learned']} |",
        f"| warm turn: TTFT p50 (ms) | {result['warm_ttft_ms_p50']['base']} | "
        f"{result['warm_ttft_ms_p50']['learned']} |",
        "",
        f"Training: {t['train_pairs']} pairs ({t['dropped_disliked']} disliked left out), "
        f"{t['heldout_pairs']} held out, {t['steps']} steps; base load {t['load_s']} s, "
        f"training {t['train_s']} s, conversion {t['convert_s']} s, wall "
        f"{result['train_wall_s']} s in all; adapter {result['adapter']['bytes'] / 1e6:.2f} MB "
        f"({', '.join(result['adapter']['targets'])}).",
        "",
        "| question | base reply | learned reply |",
        "|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['country']} | {r['base']!r} | {r['learned']!r} |")
    (RESULTS / "genome_train.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    out = anyio.run(main)
    write(out)
    print((RESULTS / "genome_train.md").read_text())
