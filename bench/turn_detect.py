"""bench/turn_detect: end-of-turn detectors on labelled speech, thresholds chosen on one
set (bench/turn_sets.py CALIBRATION) and measured on another (HELD_OUT).

At every pause inside a turn, and at its true end, each detector gets what the ear would
give it: the audio so far plus 128 ms of silence (and, for the transcript rule, Whisper
tiny.en's transcript of it). The ear's rule then decides: a pause the detector reads as
finished ends the turn once it lasts ``short_tail_ms``; any pause ends it at
``long_tail_ms`` (960). A false end: a pause inside the turn long enough to end it.
Latency: the silence waited at the true end.

Chosen on the calibration set: for each rule, the threshold and short tail with the
lowest median end-of-turn wait whose false ends on paused utterances are at most 2 %.

    .venv/bin/python bench/turn_detect.py      # ~2 min on 2 cores

Writes bench/results/turn_detect.json and .md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.turn_sets import Labelled, calibration_set, held_out_set  # noqa: E402
from continuum.media.whisper import WhisperTranscriber  # noqa: E402
from continuum.voice.audio import RATE  # noqa: E402
from continuum.voice.turn_detect import SmartTurnDetector  # noqa: E402
from continuum.voice.vad import reads_finished  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LONG_TAIL = 960
AFTER_MS = 128  # silence the ear has seen when it asks
RULES = ("transcript", "smart-turn", "smart-turn+transcript", "smart-turn|transcript")
THRESHOLDS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def points(u: Labelled) -> list[tuple[np.ndarray, int | None]]:
    """(audio the detector sees, the pause's length in ms; None at the true end)."""
    pad = np.zeros(RATE * AFTER_MS // 1000, np.float32)
    out: list[tuple[np.ndarray, int | None]] = []
    for start, end in u.pauses:
        out.append((u.samples[: start + len(pad)], (end - start) * 1000 // RATE))
    out.append((np.concatenate([u.samples[: u.end], pad]), None))
    return out


def score(sets: dict[str, list[Labelled]]) -> dict[str, list[dict]]:
    smart = SmartTurnDetector()
    whisper = WhisperTranscriber(threads=2)
    scored: dict[str, list[dict]] = {}
    for name, utterances in sets.items():
        rows = []
        for u in utterances:
            for audio, pause_ms in points(u):
                text = whisper.transcribe(audio)
                rows.append(
                    {
                        "text": u.text,
                        "voice": u.voice,
                        "pause_ms": pause_ms,
                        "final": pause_ms is None,
                        "heard": text,
                        "smart": round(smart.finished(audio, None), 4),
                        "transcript": reads_finished(text),
                    }
                )
        scored[name] = rows
        print(f"{name}: {len(utterances)} utterances, {len(rows)} decision points", flush=True)
    return scored


def verdict(row: dict, rule: str, threshold: float) -> bool:
    if rule == "transcript":
        return bool(row["transcript"])
    if rule == "smart-turn":
        return row["smart"] >= threshold
    if rule == "smart-turn|transcript":  # either says finished
        return row["smart"] >= threshold or bool(row["transcript"])
    return row["smart"] >= threshold and bool(row["transcript"])  # both


def evaluate(rows: list[dict], rule: str, threshold: float, short: int) -> dict:
    by_utterance: dict[str, list[dict]] = {}
    for r in rows:
        by_utterance.setdefault(r["text"], []).append(r)
    false = paused = 0
    waits = []
    for points_ in by_utterance.values():
        pauses = [r for r in points_ if not r["final"]]
        if pauses:
            paused += 1
            false += any(
                (verdict(r, rule, threshold) and r["pause_ms"] >= short)
                or r["pause_ms"] >= LONG_TAIL
                for r in pauses
            )
        final = next(r for r in points_ if r["final"])
        waits.append(short if verdict(final, rule, threshold) else LONG_TAIL)
    return {
        "false_end_rate_paused": round(false / max(1, paused), 3),
        "false_ends": false,
        "paused_utterances": paused,
        "end_of_turn_wait_ms_p50": statistics.median(waits),
        "end_of_turn_wait_ms_mean": round(statistics.mean(waits), 1),
        "ended_by_detector": sum(w == short for w in waits),
        "utterances": len(waits),
    }


def choose(rows: list[dict], rule: str) -> dict:
    best = None
    thresholds = [0.5] if rule == "transcript" else THRESHOLDS
    for threshold in thresholds:
        for short in range(192, 961, 32):
            e = evaluate(rows, rule, threshold, short)
            if e["false_end_rate_paused"] > 0.02:
                continue
            key = (e["end_of_turn_wait_ms_mean"], -short, -threshold)
            if best is None or key < best[0]:
                best = (key, {"rule": rule, "threshold": threshold, "short_tail_ms": short, **e})
    assert best is not None
    return best[1]


def main() -> None:
    sets = {"calibration": calibration_set(), "held_out": held_out_set()}
    cached = RESULTS / "turn_detect.json"
    if "--rescore" not in sys.argv and cached.is_file():  # the same sets: reuse the scores
        scored = json.loads(cached.read_text())["points"]
    else:
        scored = score(sets)
    chosen = {rule: choose(scored["calibration"], rule) for rule in RULES}
    held = {
        rule: evaluate(scored["held_out"], rule, c["threshold"], c["short_tail_ms"])
        for rule, c in chosen.items()
    }
    for rule in RULES:
        c, h = chosen[rule], held[rule]
        print(
            f"{rule:22s} threshold {c['threshold']:.2f} short tail {c['short_tail_ms']} ms | "
            f"calibration: false {c['false_end_rate_paused']:.3f}, wait mean "
            f"{c['end_of_turn_wait_ms_mean']} | held out: false {h['false_end_rate_paused']:.3f}, "
            f"wait mean {h['end_of_turn_wait_ms_mean']}"
        )
    result = {
        "bench": "turn_detect",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "voices": {name: sorted({u.voice for u in s}) for name, s in sets.items()},
        "utterances": {name: len(s) for name, s in sets.items()},
        "long_tail_ms": LONG_TAIL,
        "chosen_on_calibration": chosen,
        "held_out": held,
        "points": scored,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "turn_detect.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench/turn_detect",
        "",
        f"Calibration: {len(sets['calibration'])} utterances "
        f"({', '.join(result['voices']['calibration'])}); held out: {len(sets['held_out'])} "
        f"({', '.join(result['voices']['held_out'])}), other "
        "sentences. Pauses inside turns 400-800 ms. Thresholds chosen on calibration only "
        "(lowest mean end-of-turn wait with at most 2 % false ends), then measured on the "
        "held-out set. Long tail 960 ms.",
        "",
        "| rule | threshold | short tail ms | calibration false ends | calibration wait mean ms "
        "| held-out false ends | held-out wait mean ms | held-out ended by detector |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        c, h = chosen[rule], held[rule]
        md.append(
            f"| {rule} | {c['threshold']} | {c['short_tail_ms']} | "
            f"{c['false_ends']}/{c['paused_utterances']} | {c['end_of_turn_wait_ms_mean']} | "
            f"{h['false_ends']}/{h['paused_utterances']} | {h['end_of_turn_wait_ms_mean']} | "
            f"{h['ended_by_detector']}/{h['utterances']} |"
        )
    (RESULTS / "turn_detect.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
