"""bench/memory: recall latency at 1k, 10k and 100k journal entries, index rebuild time,
and write throughput of the crash-safe write path.

Entries are synthetic journal text with a Zipf-distributed vocabulary (so keyword queries
hit realistic numbers of documents), spread over two years, several partners, topics and
emotions. Queries mix keyword, semantic and filtered recall.

    .venv/bin/python bench/memory.py           # full run
    .venv/bin/python bench/memory.py --quick   # smoke run

Writes bench/results/memory.json and memory.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from continuum.memory.embeddings import WordLlamaEmbedder
from continuum.memory.engine import MemoryEngine
from continuum.memory.index import RecallFilters
from continuum.memory.journal import JournalEntry

RESULTS = Path(__file__).resolve().parent / "results"
TOPICS = ["work", "family", "music", "travel", "food", "health", "code", "books", "garden"]
EMOTIONS = ["joy", "calm", "worry", "pride", "anger", "surprise"]
PARTNERS = [f"person{i}" for i in range(40)]
COMMON = (
    "today talked about plans the project meeting trip dinner weekend book song "
    "garden code bug release doctor sister brother friend coffee rain"
).split()


def vocabulary(rng: random.Random, n: int = 6000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "qui", "ne", "bar", "zu"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(n)}
    return COMMON + sorted(words)


def make_entries(n: int, seed: int = 0) -> list[JournalEntry]:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf
    start = datetime.now(UTC) - timedelta(days=730)
    out = []
    for i in range(n):
        words = rng.choices(vocab, weights=weights, k=rng.randint(12, 40))
        out.append(
            JournalEntry(
                id=f"{(start + timedelta(minutes=i * 7)):%Y%m%dT%H%M%S}-{i % 16**6:06x}",
                persona="maya",
                timestamp=start + timedelta(minutes=i * 7),
                partners=(rng.choice(PARTNERS),),
                topics=(rng.choice(TOPICS),),
                emotions=(rng.choice(EMOTIONS),),
                salience=round(rng.random(), 2),
                text=" ".join(words).capitalize() + ".",
            )
        )
    return out


def queries(rng: random.Random) -> list[tuple[str, RecallFilters | None]]:
    texts = [
        "what did we plan for the weekend trip",
        "sister doctor appointment",
        "the release bug in the code",
        "coffee with a friend",
        "dinner plans",
        "a song I liked",
        "garden in the rain",
        "book recommendations",
    ]
    out = []
    for i in range(200):
        filters = None
        if i % 4 == 1:
            filters = RecallFilters(partner=rng.choice(PARTNERS))
        elif i % 4 == 2:
            filters = RecallFilters(
                topic=rng.choice(TOPICS), since=datetime.now(UTC) - timedelta(days=180)
            )
        out.append((rng.choice(texts), filters))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--writes", type=int, default=300, help="crash-safe writes to time")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.writes = [500, 2000], 50
    embedder = WordLlamaEmbedder()
    rows = []
    rebuild_s = None
    writes_per_s = None
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            engine = MemoryEngine(tmp, embedder=embedder, cipher=False)
            t0 = time.perf_counter()
            engine.import_many(make_entries(size))
            import_s = time.perf_counter() - t0
            engine.recall("maya", "warm up")  # loads the embedding matrix
            rng = random.Random(size)
            latencies = []
            for text, filters in queries(rng):
                t = time.perf_counter()
                engine.recall("maya", text, k=5, filters=filters)
                latencies.append((time.perf_counter() - t) * 1000)
            row = {
                "entries": size,
                "recall_p50_ms": round(statistics.median(latencies), 2),
                "recall_p95_ms": round(pct(latencies, 0.95), 2),
                "import_s": round(import_s, 1),
            }
            if size == max(args.sizes):
                engine.close()
                engine = MemoryEngine(tmp, embedder=embedder, cipher=False)
                t = time.perf_counter()
                report = engine.rebuild()
                rebuild_s = round(time.perf_counter() - t, 1)
                assert report.added == size and not report.broken
                # crash-safe writes (fsync'd temp + rename, history, index, embedding)
                t = time.perf_counter()
                for e in make_entries(args.writes, seed=99):
                    engine.remember(e.model_copy(update={"id": e.id[:-6] + "ffffff"}))
                writes_per_s = round(args.writes / (time.perf_counter() - t), 1)
            engine.close()
            rows.append(row)
            print(row, flush=True)
    result = {
        "rows": rows,
        "rebuild_s": rebuild_s,
        "rebuild_entries": max(args.sizes),
        "writes_per_s": writes_per_s,
        "embedder": "wordllama l2_supercat 256d",
        "quick": args.quick,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench/memory",
        "",
        "Hybrid recall (FTS5 BM25 + WordLlama cosine + filters + recency), k=5, 200 queries "
        "per size (a quarter with a partner filter, a quarter with topic + time range).",
        "",
        "| entries | recall p50 ms | recall p95 ms | bulk import s |",
        "|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['entries']} | {r['recall_p50_ms']} | {r['recall_p95_ms']} | {r['import_s']} |"
        for r in rows
    ]
    md += [
        "",
        f"Index rebuild from {result['rebuild_entries']} files: {rebuild_s} s. "
        f"Crash-safe writes (journal + history + index): {writes_per_s}/s.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
