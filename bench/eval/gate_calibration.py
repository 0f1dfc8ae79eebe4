"""Calibrate the relevance gate's bar on labelled (message, personas who should speak)
pairs — held apart from the eval's room script (bench/eval/fixtures.py ROOM_SCRIPT).

For each embedder, the cosine of every persona's specialty text with every message; the
bar that maximises F1 over (message, persona) decisions; the separation (mean similarity
of relevant vs irrelevant pairs).

    .venv/bin/python bench/eval/gate_calibration.py

Writes bench/results/gate_calibration.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS = ROOT / "bench" / "results"

CALIBRATION = [
    ("Our p99 latency spikes every few minutes, what could cause that?", {"maya"}),
    ("How do I find which function eats all the CPU?", {"maya"}),
    ("Is a bigger cache always faster?", {"maya"}),
    ("Memory usage keeps growing in our worker processes.", {"maya"}),
    ("How do I benchmark two JSON parsers fairly?", {"maya"}),
    ("Should database queries be batched to cut round trips?", {"maya"}),
    ("Someone got into our admin panel, what do we check first?", {"juno"}),
    ("Is it OK to log full request bodies with tokens in them?", {"juno"}),
    ("How should we store API keys for our CI jobs?", {"juno"}),
    ("What is a phishing attack and how do I spot one?", {"juno"}),
    ("Do we need two-factor authentication for internal tools?", {"juno"}),
    ("Who should get write permission to production?", {"juno"}),
    ("Where does the word 'computer' come from?", {"otto"}),
    ("How were clocks made before electricity?", {"otto"}),
    ("What did medieval scribes use for ink?", {"otto"}),
    ("Tell me the story of the first lighthouse.", {"otto"}),
    ("How did old bookbinders sew their books?", {"otto"}),
    ("Why do we still use the QWERTY layout?", {"otto"}),
    ("I keep failing my coding exercises and feel stupid.", {"pip"}),
    ("Can you explain recursion like I'm ten?", {"pip"}),
    ("How do I stay motivated learning to code after work?", {"pip"}),
    ("What is a variable, in plain words?", {"pip"}),
    ("I'm scared to ask questions in code review.", {"pip"}),
    ("Which beginner project should I try first?", {"pip"}),
    ("How do octopuses see colour without colour receptors?", {"rhea"}),
    ("Why are some jellyfish immortal?", {"rhea"}),
    ("What lives at the bottom of the Mariana Trench?", {"rhea"}),
    ("How do whales sleep without drowning?", {"rhea"}),
    ("Are sharks really dangerous to swimmers?", {"rhea"}),
    ("What makes the sea glow at night sometimes?", {"rhea"}),
    ("How do I get better at chess endgames?", {"tomas"}),
    ("What's the strategy behind the Queen's Gambit?", {"tomas"}),
    ("How do grandmasters plan several moves ahead?", {"tomas"}),
    ("Should I sacrifice a pawn for faster development?", {"tomas"}),
    ("How do I plan a long-term strategy for a board game?", {"tomas"}),
    ("What's a good opening for a beginner with black pieces?", {"tomas"}),
    ("Our login is slow and I worry about brute-force attacks.", {"maya", "juno"}),
    ("Explain to a beginner why caching makes websites faster.", {"maya", "pip"}),
    ("How did navigators map the oceans centuries ago?", {"otto", "rhea"}),
    ("What's the history of chess strategy?", {"otto", "tomas"}),
    ("Is it safe to use an old encryption library for speed?", {"juno", "maya"}),
    ("How do I teach my kid basic strategy thinking?", {"pip", "tomas"}),
    ("What's the weather like tomorrow?", set()),
    ("Can you recommend a good pizza place?", set()),
    ("I watched a great movie last night.", set()),
    ("What should I wear to a wedding?", set()),
    ("My cat keeps knocking things off the table.", set()),
    ("Happy Friday everyone!", set()),
]


def persona_texts(personas, mode: str) -> dict[str, str]:
    from continuum.cognition.gate import specialty_text

    if mode == "full":
        return {p.id: specialty_text(p) for p in personas}
    return {p.id: " ".join([p.specialty, *p.expertise]) for p in personas}


def calibrate(embedder, personas, mode: str) -> dict:
    texts = persona_texts(personas, mode)
    ids = sorted(texts)
    pv = embedder.embed([texts[i] for i in ids])
    mv = embedder.embed([m for m, _ in CALIBRATION])
    sims = mv @ pv.T
    labels = np.array([[pid in want for pid in ids] for _, want in CALIBRATION])
    best = (0.0, 0.0)
    for bar in np.arange(-0.2, 0.8, 0.01):
        pred = sims >= bar
        tp = (pred & labels).sum()
        fp = (pred & ~labels).sum()
        fn = (~pred & labels).sum()
        p = tp / (tp + fp) if tp + fp else 0
        r = tp / (tp + fn) if tp + fn else 0
        f1 = 2 * p * r / (p + r) if p + r else 0
        if f1 > best[0]:
            best = (float(f1), float(bar))
    return {
        "persona_text": mode,
        "best_f1": round(best[0], 3),
        "bar": round(best[1], 2),
        "relevant_mean": round(float(sims[labels].mean()), 3),
        "irrelevant_mean": round(float(sims[~labels].mean()), 3),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from continuum.memory.embeddings import WordLlamaEmbedder
    from continuum.memory.minilm import MiniLMEmbedder
    from continuum.persona_files import load_personas

    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    rows = []
    for name, embedder in (("wordllama", WordLlamaEmbedder()), ("minilm", MiniLMEmbedder())):
        for mode in ("full", "specialty"):
            row = {"embedder": name, **calibrate(embedder, personas, mode)}
            rows.append(row)
            print(row, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gate_calibration.json").write_text(
        json.dumps({"pairs": len(CALIBRATION) * len(personas), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
