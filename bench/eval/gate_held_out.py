"""Who should speak, on rooms the gate was not calibrated on (issue 21, item 1).

Two labelled sets of (message, personas who should speak) for the six example personas:
``CALIBRATION`` (bench/eval/gate_calibration.py, where the shipped bar came from) and
``HELD_OUT`` here — written afterwards, by other phrasing: casual, indirect, jargon-free,
questions that name no field ("my laptop fan screams whenever I open the dashboard").
Nothing was tuned on the held-out set.

The decision is the room's own (``SharedCognition``'s rule without the model): every
persona's ``RelevanceGate`` score against its bar, then the quorum — a person's question
gets at least one voice, the best fit — on an empty analysis (the small analyst's picks
are noise; tested separately). Precision / recall / F1 over (message, persona) decisions,
for the gate as it was and as it is.

    .venv/bin/python bench/eval/gate_held_out.py

Writes bench/results/gate_held_out.json and .md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval.gate_calibration import CALIBRATION  # noqa: E402

RESULTS = ROOT / "bench" / "results"

HELD_OUT = [
    ("my laptop fan screams whenever I open the dashboard, why?", {"maya"}),
    ("the nightly export used to take ten minutes and now it takes an hour", {"maya"}),
    ("page loads feel sluggish since the last deploy", {"maya"}),
    ("which is quicker for lookups, a hash map or a sorted list?", {"maya"}),
    ("our server runs out of RAM every friday afternoon", {"maya"}),
    ("how can I tell where my program spends its time?", {"maya"}),
    ("a stranger emailed me asking for my login code, is that normal?", {"juno"}),
    ("should interns be able to delete customer records?", {"juno"}),
    ("I found our database password in a public repo", {"juno"}),
    ("is it fine to reuse the same password on every site?", {"juno"}),
    ("what could a hacker do with our old unpatched router?", {"juno"}),
    ("who can see the files in our shared drive?", {"juno"}),
    ("what did people use to tell time before watches?", {"otto"}),
    ("where does the custom of shaking hands come from?", {"otto"}),
    ("how were maps drawn before satellites?", {"otto"}),
    ("how did monks copy books by hand?", {"otto"}),
    ("why is a floppy disk still the save icon?", {"otto"}),
    ("what was the first typewriter like?", {"otto"}),
    ("I'm new to programming and everything looks confusing", {"pip"}),
    ("what does a function actually do, simply put?", {"pip"}),
    ("I gave up on my tutorial halfway, how do I get back into it?", {"pip"}),
    ("my daughter wants to learn to code, where should she start?", {"pip"}),
    ("I feel like everyone at work is smarter than me", {"pip"}),
    ("can you walk me through what a loop is?", {"pip"}),
    ("why do dolphins sleep with one eye open?", {"rhea"}),
    ("what eats plankton besides whales?", {"rhea"}),
    ("are coral reefs really dying?", {"rhea"}),
    ("how deep can a sperm whale dive?", {"rhea"}),
    ("what is the smartest animal in the ocean?", {"rhea"}),
    ("why is sea water salty?", {"rhea"}),
    ("I keep losing my knight in the middle game", {"tomas"}),
    ("how should I open as white against a strong player?", {"tomas"}),
    ("when is it worth trading my bishop for a knight?", {"tomas"}),
    ("how do I think more moves ahead in a board game?", {"tomas"}),
    ("what should a team plan for before a big tournament?", {"tomas"}),
    ("what is castling for?", {"tomas"}),
    ("our checkout page is slow and we store card numbers in logs", {"maya", "juno"}),
    ("explain to a newcomer why the app is faster the second time", {"maya", "pip"}),
    ("how did sailors find their way across the sea long ago?", {"otto", "rhea"}),
    ("how did chess openings get their names?", {"otto", "tomas"}),
    ("is a faster but older crypto library worth the risk?", {"juno", "maya"}),
    ("how can I make practice fun for a kid learning chess?", {"pip", "tomas"}),
    ("anyone seen my umbrella?", set()),
    ("what a week, glad it's over", set()),
    ("the coffee machine is broken again", set()),
    ("good morning all", set()),
    ("lunch at noon today?", set()),
    ("I just got back from holiday", set()),
]


def decide(room_gate, personas, message: str, quorum: int = 1) -> set[str]:
    """The room's decision without the model: who passes, then the quorum's best fit."""
    from continuum.cognition.analysis import SharedAnalysis
    from continuum.cognition.gate import needs_answer
    from continuum.cognition.state import PersonaState

    analysis = SharedAnalysis.empty(message) if hasattr(SharedAnalysis, "empty") else None
    if analysis is None:
        analysis = SharedAnalysis(summary=message)
    states = {p.id: PersonaState(persona_id=p.id) for p in personas}
    scores = room_gate.score(personas, message, analysis, states)
    chosen = [s.persona_id for s in scores if s.passes]
    below = [s for s in scores if not s.passes]
    if needs_answer(message):
        while below and len(chosen) < quorum and room_gate.best_fit_ok(scores, below[0]):
            chosen.append(below.pop(0).persona_id)
    return set(chosen)


def prf(gate, personas, data) -> dict:
    tp = fp = fn = 0
    wrong: list[str] = []
    for message, want in data:
        got = decide(gate, personas, message)
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
        if got != want:
            wrong.append(f"{message} -> {sorted(got)} (wanted {sorted(want)})")
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(f1, 3),
        "messages_right": f"{len(data) - len(wrong)}/{len(data)}",
        "wrong": wrong,
    }


def main() -> None:
    from continuum.cognition.gate import RelevanceGate
    from continuum.memory.minilm import MiniLMEmbedder
    from continuum.persona_files import load_personas

    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    embedder = MiniLMEmbedder.shared()
    # the new gate's bar and stand-out margin: chosen on the calibration set only
    best = None
    for bar in [round(0.2 + 0.02 * i, 2) for i in range(21)]:
        for stand_out in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25):
            gate = RelevanceGate(embedder, threshold=bar, stand_out=stand_out)
            f1 = prf(gate, personas, CALIBRATION)["f1"]
            if best is None or f1 > best[0]:
                best = (f1, bar, stand_out)
    assert best is not None
    _, bar, stand_out = best
    print(f"chosen on calibration: bar {bar}, stand out {stand_out}")
    gates = {
        "before (one cosine vs the fixed bar, quorum: best score)": RelevanceGate(
            embedder, threshold=embedder.relevance_bar, mode="single"
        ),
        f"after (best phrase, bar {bar}, best fit {stand_out} above the room)": RelevanceGate(
            embedder, threshold=bar, stand_out=stand_out
        ),
        "as shipped (phrase_bar 0.34; quorum_stand_out 0: a question always gets its best fit)": (
            RelevanceGate(embedder, threshold=embedder.phrase_bar)
        ),
    }
    result = {
        "personas": [p.id for p in personas],
        "chosen": {"bar": bar, "stand_out": stand_out},
        "rows": [],
    }
    for name, gate in gates.items():
        for set_name, data in (("calibration", CALIBRATION), ("held_out", HELD_OUT)):
            found = prf(gate, personas, data)
            row = {"gate": name, "set": set_name, "messages": len(data), **found}
            result["rows"].append(row)
            print(
                f"{name[:40]:40s} {set_name:12s} P {row['precision']:.3f} R {row['recall']:.3f} "
                f"F1 {row['f1']:.3f} right {row['messages_right']}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gate_held_out.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Who should speak: the gate on a held-out labelled set",
        "",
        f"Six example personas; calibration set {len(CALIBRATION)} messages (where the bar "
        f"came from), held-out set {len(HELD_OUT)} messages written afterwards by other "
        "phrasing. The room's decision without the model (gate, then quorum). "
        "Precision/recall/F1 over (message, persona) decisions.",
        "",
        "| gate | set | precision | recall | F1 | messages right |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        md.append(
            f"| {row['gate']} | {row['set']} | {row['precision']} | {row['recall']} | "
            f"{row['f1']} | {row['messages_right']} |"
        )
    (RESULTS / "gate_held_out.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
