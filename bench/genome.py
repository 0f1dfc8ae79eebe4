"""bench/genome: fourteen personas, each with its own skill adapter, two shared
cross-domain adapters, and a genome budget that holds only a third of them.

Workload (SmolLM2-135M, embedded, 2 threads): 4 rooms of 3-4 personas, messages
round-robin across the rooms, every persona in the room answers (direct cognition, 12
tokens) with its specialty adapter active; every fourth message one persona also pages in
a shared cross-domain adapter for its render (what ``requestCrossDomainAdapter`` does).
The same workload without adapters runs side by side as the baseline for evaluated tokens.

Reported: activation hit / load latency, evictions, resident adapter bytes sampled at
every paging decision and after every turn (never over the budget), evaluated tokens per
warm turn with and without adapters (adapter switches must cost nothing the KV rules do
not require), renders that ran with their specialty adapter.

    .venv/bin/python bench/genome.py            # ~5 min on 2 cores
    .venv/bin/python bench/genome.py --quick

Writes bench/results/genome.json and genome.md. The adapters are random rank-4 LoRAs
made with the gguf writer (tests/server/lora_fixture.py): no real skill LoRA for the
default model installs offline; the paging, the KV rules and the costs are what is
measured, not what the adapters teach.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.base import AdapterUse  # noqa: E402
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig, EmbeddedModel  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona import AdapterRef, Persona  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.room import Room, RoomPolicy  # noqa: E402
from tests.server.lora_fixture import make_lora  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXTRA = [
    ("ines", "Ines", "a gardener who grows vegetables on a balcony"),
    ("kofi", "Kofi", "a jazz drummer and music teacher"),
    ("lena", "Lena", "a mountain guide who knows weather and safety"),
    ("noah", "Noah", "a baker who explains fermentation"),
    ("sara", "Sara", "a tax accountant for small businesses"),
    ("yuki", "Yuki", "a translator between Japanese and English"),
    ("omar", "Omar", "a bicycle mechanic"),
    ("vera", "Vera", "a librarian who loves old maps"),
]
QUESTIONS = [
    "What should I learn first this week?",
    "Any advice for a busy Monday?",
    "How would you explain your work to a child?",
    "What is one mistake beginners make in your field?",
]


def personas(tmp: Path) -> tuple[list[Persona], list[AdapterUse]]:
    base = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    base += [Persona(id=i, name=n, identity=f"You are {d}.", specialty=d) for i, n, d in EXTRA]
    out = []
    for seed, p in enumerate(base):
        lora = make_lora(tmp / f"skill-{p.id}.gguf", seed=100 + seed)
        out.append(
            p.model_copy(update={"adapters": (AdapterRef(id=f"skill-{p.id}", path=str(lora)),)})
        )
    shared = [
        AdapterUse(id=name, path=str(make_lora(tmp / f"{name}.gguf", seed=900 + i)))
        for i, name in enumerate(("crypto", "poetry"))
    ]
    return out, shared


def envelope(room: Room, text: str) -> Envelope:
    return Envelope(
        host="bench",
        room_id=room.id,
        author=Participant(id="sam", name="Sam"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="bench", channel=room.id),
    )


async def workload(
    backend: EmbeddedBackend, people: list[Persona], shared, rounds: int, budget: int
):
    groups = [people[0:4], people[4:8], people[8:11], people[11:14]]
    policy = RoomPolicy(cognition="direct", reply_max_tokens=12, recall_k=0)
    rooms = [
        Room(f"room{i}", g, backend, policy=policy, shared_adapters=shared)
        for i, g in enumerate(groups)
    ]
    turns, samples, seen = [], [], set()
    for room in rooms:

        def record(event: object, room: Room = room) -> None:
            if isinstance(event, ReplyPosted):
                key = (event.persona_id, room.id)
                turns.append(
                    {
                        "warm": key in seen,
                        "evaluated": event.metrics.evaluated_tokens,
                        "adapters": event.metrics.adapters,
                        "adapter_ms": event.metrics.adapter_ms,
                        "persona": event.persona_id,
                    }
                )
                seen.add(key)
                samples.append(backend.adapters.resident_bytes)

        room.events.subscribe(record)
    n = 0
    for r in range(rounds):
        for room in rooms:
            text = QUESTIONS[(r + rooms.index(room)) % len(QUESTIONS)]
            env = envelope(room, text)
            await room.handle(env)
            n += 1
            if n % 4 == 0:  # a cross-domain render: one persona pages a skill in (the
                # baseline renders the same turn without it, so the histories match)
                persona = next(iter(room.personas.values()))
                extra = [shared[n // 4 % 2]] if shared else []
                composed = room.compose(persona)
                await room.render_turn(
                    persona, env, composed, max_tokens=12, topics=[], extra_adapters=extra
                )
        print(f"  round {r + 1}/{rounds}", flush=True)
    return turns, samples


async def run(args: argparse.Namespace) -> dict:
    model = EmbeddedModel.load(default_model_path())
    threads = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        people, shared = personas(Path(tmp))
        sizes = [os.path.getsize(p.adapters[0].path) for p in people] + [
            os.path.getsize(s.path) for s in shared
        ]
        budget = sum(sizes) // 3
        config = EmbeddedConfig(
            live_slots=8, slot_ctx=2048, n_threads=threads, adapter_budget_bytes=budget
        )
        with_genome = EmbeddedBackend(model, config)
        turns, samples = await workload(with_genome, people, shared, args.rounds, budget)
        events = list(with_genome.adapters.events)
        with_genome.close()
        bare_people = [p.model_copy(update={"adapters": ()}) for p in people]
        bare = EmbeddedBackend(model, config)
        bare_turns, _ = await workload(bare, bare_people, [], args.rounds, budget)
        bare.close()

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 2) if xs else 0.0

    renders = [t for t in turns]
    specialty = [t for t in renders if f"skill-{t['persona']}" in t["adapters"]]
    warm = [t["evaluated"] for t in turns if t["warm"]]
    bare_warm = [t["evaluated"] for t in bare_turns if t["warm"]]
    all_samples = samples + [e.resident_bytes for e in events]
    return {
        "bench": "genome",
        "model": default_model_path().name,
        "personas": len(people),
        "adapters": len(sizes),
        "adapter_mb": round(sum(sizes) / len(sizes) / 1e6, 3),
        "budget_mb": round(budget / 1e6, 2),
        "peak_adapter_mb": round(max(all_samples) / 1e6, 2),
        "over_budget_samples": sum(s > budget for s in all_samples),
        "samples": len(all_samples),
        "hits": sum(e.kind == "hit" for e in events),
        "loads": sum(e.kind == "load" for e in events),
        "evictions": sum(e.kind == "evict" for e in events),
        "refusals": sum(e.kind == "refuse" for e in events),
        "hit_ms_p50": med([e.ms for e in events if e.kind == "hit"]),
        "load_ms_p50": med([e.ms for e in events if e.kind == "load"]),
        "load_ms_max": round(max((e.ms for e in events if e.kind == "load"), default=0), 2),
        "swap_ms_p50": med([t["adapter_ms"] for t in turns if t["adapter_ms"] > 0]),
        "evaluated_warm_median": med(warm),
        "evaluated_warm_median_without_adapters": med(bare_warm),
        "renders_with_specialty": len(specialty),
        "renders": len(renders),
        "cross_domain_renders": sum(len(t["adapters"]) > 1 for t in turns),
    }


def markdown(r: dict) -> str:
    rows = [
        ("renders with their specialty adapter", f"{r['renders_with_specialty']} / {r['renders']}"),
        ("cross-domain renders", r["cross_domain_renders"]),
        ("activation hit, p50", f"{r['hit_ms_p50']} ms"),
        ("adapter load, p50 / max", f"{r['load_ms_p50']} / {r['load_ms_max']} ms"),
        ("adapter switch on the context, p50 (turns that changed set)", f"{r['swap_ms_p50']} ms"),
        (
            "hits / loads / evictions / refusals",
            f"{r['hits']} / {r['loads']} / {r['evictions']} / {r['refusals']}",
        ),
        ("peak resident adapters", f"{r['peak_adapter_mb']} MB (budget {r['budget_mb']})"),
        ("samples over budget", f"**{r['over_budget_samples']}** of {r['samples']}"),
        (
            "evaluated tokens per warm turn, with / without adapters",
            f"{r['evaluated_warm_median']} / {r['evaluated_warm_median_without_adapters']}",
        ),
    ]
    head = (
        f"{r['model']}; {r['personas']} personas with a skill adapter each and 2 shared "
        f"cross-domain adapters ({r['adapters']} random rank-4 LoRAs, {r['adapter_mb']} MB "
        f"each); genome budget {r['budget_mb']} MB (a third of them); 4 rooms, messages "
        "round-robin, every persona in the room answers with its specialty adapter; a "
        "cross-domain skill paged in every fourth message."
    )
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# bench/genome\n\n{head}\n\n| measure | value |\n|---|---|\n{table}\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.rounds = 2 if args.quick else 4
    result = anyio.run(run, args)
    name = "genome_quick" if args.quick else "genome"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
