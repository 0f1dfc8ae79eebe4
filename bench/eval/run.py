"""bench/eval: memory and judgement with real people, measured on bench/eval/fixtures.py.

Memory: a runtime with two hosts (slack, discord; real host contract), persona Maya on
the embedded default model, five people (two linked across hosts, two named Sam) telling
her things in ordinary words in channels and DMs. The runtime is then stopped (the
hippocampus gets a quiet minute first) and a new one on the same data dir is asked the
questions. Reported: facts written / facts told; scoped recall@5 (the fact among the
memories put in the asker's prompt); replies containing the fact; cross-host recall;
leaks (another person's private fact in a prompt: must be 0); stale (a superseded fact
recalled instead of its correction).

Judgement: six personas in one shared-cognition room, sixteen labelled messages; gate
precision / recall / F1 over (message, persona) speak decisions, lever rate, and how
often an expected disagreement drew two views.

    .venv/bin/python bench/eval/run.py --label after     # ~10 min on 2 cores
    .venv/bin/python bench/eval/run.py --label before --only memory
    .venv/bin/python bench/eval/run.py --label model --model /path/to/bigger.gguf

Writes bench/results/eval.json (+ eval.md): the latest run of each label side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import anyio

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = ROOT / "bench" / "results"

from fixtures import (  # noqa: E402
    BY_HOST_ID,
    CONVERSATION,
    DM_ACKS,
    FACTS,
    PEOPLE,
    QUESTIONS,
    ROOM_SCRIPT,
    SMALL_TALK,
)

from continuum.config import parse_config  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.events import LeverPulled, PersonaSilent, ReplyPosted, TurnStarted  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.runtime import Runtime  # noqa: E402
from continuum.testing import RecordingHost  # noqa: E402


class SlackHost(RecordingHost):
    name: ClassVar[str] = "slack"


class DiscordHost(RecordingHost):
    name: ClassVar[str] = "discord"


HOSTS = {"slack": SlackHost, "discord": DiscordHost}
MODEL: str | None = (
    None  # --model: a bigger GGUF than the default (item 7: the answer uses the fact)
)


# a fact told in a public room may be recalled anywhere; a DM's or private room's may not
PUBLIC_FACT = {
    f: next(t.room.visibility for t in CONVERSATION if f in t.facts) == "public" for f in FACTS
}


def holds(text: str, terms: tuple[str, ...]) -> bool:
    low = text.lower()
    return all(t.lower() in low for t in terms)


_RECALL_PREFIX = re.compile(r"^\s*(?:[-*]\s*)?(?:\([^)]*\)\s*|\[[^\]]*\]\s*)*(?:[^:]{0,40}:\s*)?")


def junk(line: str) -> bool:
    """A recalled memory that is small talk, or no statement at all (a bare list of names
    or numbers, a fragment)."""
    low = line.lower()
    if any(s in low for s in SMALL_TALK):
        return True
    body = _RECALL_PREFIX.sub("", line, count=1).strip()
    items = [i.strip() for i in re.split(r"[,;/]| and ", body) if i.strip()]
    listy = len(items) >= 2 and all(len(i.split()) <= 2 for i in items)
    return listy or len(re.findall(r"[A-Za-z]{2,}", body)) < 3


def envelope(who: str, room, text: str) -> Envelope:
    host, user = who.split(":", 1)
    envelope_kwargs = {}
    if "visibility" in Envelope.model_fields:
        envelope_kwargs["visibility"] = room.visibility
    return Envelope(
        host=host,
        room_id=room.id,
        author=Participant(id=user, name=BY_HOST_ID[who].name),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host=host, channel=room.id),
        **envelope_kwargs,
    )


def config(data: Path, threads: int, **policy: object):
    return parse_config(
        {
            "personas": {"paths": [str(ROOT / "examples" / "personas")], "only": ["maya"]},
            "backend": {"threads": threads, **({"model": MODEL} if MODEL else {})},
            "memory": {"data_dir": str(data)},
            "policy": {"cognition": "direct", "reply_max_tokens": 24, "recall_k": 5, **policy},
            "people": [{"id": p.id, "name": p.name, "host_ids": list(p.host_ids)} for p in PEOPLE],
            "hosts": {"slack": {}, "discord": {}},
        }
    )


async def memory_eval(threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        started = time.monotonic()
        async with Runtime(config(data, threads), host_classes=HOSTS) as rt:
            for turn in CONVERSATION:
                host = turn.who.split(":", 1)[0]
                await (await rt.deliver(host, envelope(turn.who, turn.room, turn.text))).wait()
            # a quiet minute after the conversation: the hippocampus consolidates
            deadline = time.monotonic() + 60
            while (
                rt.hippocampus is not None and rt.hippocampus.queue and time.monotonic() < deadline
            ):
                await anyio.sleep(0.5)
        told_s = time.monotonic() - started

        from continuum.memory.engine import MemoryEngine

        engine = MemoryEngine(data)
        entries = engine.entries("maya")
        engine.close()
        corpus = [f"{e.summary}\n{e.text}" for e in entries]
        told = {f for t in CONVERSATION for f in t.facts}
        written = {f for f in told if any(holds(c, FACTS[f].terms) for c in corpus)}

        rows = []
        async with Runtime(config(data, threads), host_classes=HOSTS) as rt:
            for q in QUESTIONS:
                host = q.who.split(":", 1)[0]
                turn = await rt.deliver(host, envelope(q.who, q.room, q.text))
                replies = await turn.wait()
                room = rt.router.room(f"{host}:{q.room.id}")
                posted = [
                    e
                    for e in room.events.recent
                    if isinstance(e, ReplyPosted)
                    and replies
                    and e.message.id == replies[0].message.id
                ]
                recalled = list(posted[0].recalled) if posted else []
                reply = replies[0].message.text if replies else ""
                asker = BY_HOST_ID[q.who].id
                rows.append(
                    {
                        "question": q.text,
                        "asker": asker,
                        "recalled": recalled,
                        "reply": reply,
                        "hit": [
                            f for f in q.expect if any(holds(r, FACTS[f].terms) for r in recalled)
                        ],
                        "in_reply": [f for f in q.expect if holds(reply, FACTS[f].terms)],
                        # another person's words from a DM or private room: must never happen
                        "leaked": [
                            f
                            for f in q.forbidden
                            if FACTS[f].about != asker
                            and not PUBLIC_FACT[f]
                            and any(holds(r, FACTS[f].terms) for r in recalled)
                        ],
                        "confusable": [  # another person's public words, for a "my ..." question
                            f
                            for f in q.forbidden
                            if FACTS[f].about != asker
                            and PUBLIC_FACT[f]
                            and any(holds(r, FACTS[f].terms) for r in recalled)
                        ],
                        "stale": [
                            f
                            for f in q.forbidden
                            if FACTS[f].about == asker
                            and any(holds(r, FACTS[f].terms) for r in recalled)
                        ],
                        "expect": list(q.expect),
                        "cross_host": q.cross_host,
                        "ids_in_recall": any(
                            h in " ".join(recalled) for p in PEOPLE for h in p.host_ids
                        ),
                        "junk_top3": [r for r in recalled[:3] if junk(r)],
                    }
                )
            ack_replies = []
            for who, room, text in DM_ACKS:
                host = who.split(":", 1)[0]
                replies = await (await rt.deliver(host, envelope(who, room, text))).wait()
                ack_replies += [r.message.text for r in replies]
    answerable = [r for r in rows if r["expect"]]
    cross = [r for r in answerable if r["cross_host"]]
    corrections = [
        r
        for r in answerable
        if any(FACTS[f].superseded_by in r["expect"] for f in FACTS if FACTS[f].superseded_by)
    ]
    return {
        "facts_told": len(told),
        "facts_written": len(written),
        "facts_missed": sorted(told - written),
        "journal_entries": len(entries),
        "scoped_recall_at_5": round(sum(bool(r["hit"]) for r in answerable) / len(answerable), 3),
        "reply_contains_fact": round(
            sum(bool(r["in_reply"]) for r in answerable) / len(answerable), 3
        ),
        "cross_host_recall": round(sum(bool(r["hit"]) for r in cross) / len(cross), 3),
        "leaks": sum(len(r["leaked"]) for r in rows),
        "confusable_recalled": sum(len(r["confusable"]) for r in rows),
        "stale_recalled": sum(len(r["stale"]) for r in rows),
        "raw_ids_in_recall": sum(r["ids_in_recall"] for r in rows),
        "corrections_superseded": f"{sum(bool(r['hit']) and not r['stale'] for r in corrections)}"
        f"/{len(corrections)}",
        "junk_in_top3": sum(len(r["junk_top3"]) for r in rows),
        "dm_acks_answered": f"{len(ack_replies)}/{len(DM_ACKS)}",
        "dm_ack_replies": ack_replies,
        "conversation_s": round(told_s, 1),
        "questions": rows,
    }


async def judgement_eval(threads: int) -> dict:
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
    from continuum.models import default_model_path
    from continuum.room import Room, RoomPolicy

    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    backend = EmbeddedBackend(
        MODEL or default_model_path(),
        EmbeddedConfig(live_slots=8, slot_ctx=4096, n_threads=threads),
    )
    room = Room("eval-room", personas, backend, policy=RoomPolicy(reply_max_tokens=24))
    tp = fp = fn = 0
    lines = []
    for i, line in enumerate(ROOM_SCRIPT):
        env = Envelope(
            host="eval",
            room_id="eval-room",
            author=Participant(id="sam", name="Sam"),
            parts=(TextPart(text=line.text),),
            reply_to=ReplyTarget(host="eval", channel="eval-room"),
            mentions=line.mentions,
        )
        seen = len(room.events.recent)
        replies = await room.handle(env)
        events = list(room.events.recent)[seen:]
        spoke = {r.persona_id for r in replies}
        tp += len(spoke & line.speak)
        fp += len(spoke - line.speak)
        fn += len(line.speak - spoke)
        plans = [e for e in events if isinstance(e, TurnStarted) and e.phase == "planning"]
        levers = [e for e in events if isinstance(e, LeverPulled) and e.lever != "quorum"]
        lines.append(
            {
                "text": line.text,
                "expected": sorted(line.speak),
                "spoke": sorted(spoke),
                "plans": len(plans),
                "planners_with_levers": len({e.persona_id for e in levers}),
                "levers": [f"{e.persona_id}:{e.lever}" for e in levers],
                "silent": {e.persona_id: e.reason for e in events if isinstance(e, PersonaSilent)},
                "disagree_expected": line.disagree,
                "none_needed": line.none_needed,
            }
        )
        print(f"  room line {i + 1}/{len(ROOM_SCRIPT)}: spoke {sorted(spoke)}", flush=True)
    backend.close()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    plans = sum(x["plans"] for x in lines)
    disagree = [x for x in lines if x["disagree_expected"]]
    return {
        "gate_precision": round(precision, 3),
        "gate_recall": round(recall, 3),
        "gate_f1": round(2 * precision * recall / (precision + recall), 3)
        if precision + recall
        else 0.0,
        "lever_rate": round(sum(x["planners_with_levers"] for x in lines) / plans, 3)
        if plans
        else 0.0,
        "disagreement_surfaced": round(
            sum(len(x["spoke"]) >= 2 for x in disagree) / len(disagree), 3
        ),
        "replies_to_acknowledgements": sum(len(x["spoke"]) for x in lines if x["none_needed"]),
        "lines": lines,
    }


def markdown(results: dict) -> str:
    keys = [
        ("facts_told", "facts told"),
        ("facts_written", "facts written"),
        ("scoped_recall_at_5", "scoped recall@5"),
        ("reply_contains_fact", "replies containing the fact"),
        ("cross_host_recall", "cross-host recall"),
        ("leaks", "leaks (another person's private fact in a prompt)"),
        ("stale_recalled", "superseded facts recalled"),
        ("confusable_recalled", "another person's public fact for a 'my …' question"),
        ("raw_ids_in_recall", "recall lines with raw host ids"),
        ("corrections_superseded", "corrections recalled, the old fact not"),
        ("junk_in_top3", "small talk or junk among the top 3 recalled"),
        ("dm_acks_answered", "acknowledgements answered in one-persona DMs"),
        ("gate_precision", "gate precision"),
        ("gate_recall", "gate recall"),
        ("gate_f1", "gate F1"),
        ("lever_rate", "lever rate (planners pulling a lever)"),
        ("disagreement_surfaced", "expected disagreement drew 2+ views"),
        ("replies_to_acknowledgements", "replies to ok/thanks/bye"),
    ]
    labels = [k for k in ("before", "after", "model") if k in results]
    lines = [
        "# bench/eval",
        "",
        "Memory: persona Maya (SmolLM2-135M), 5 people on slack and discord (2 linked across "
        "hosts, 2 named Sam), 29 facts told in ordinary words (4 corrected: in the first "
        "person, in the third person, by an explicit note), small talk, a reminder request, "
        "26 questions in a new process (5 cross-host, 5 leak probes), 3 acknowledgements in "
        "DMs. Judgement: 6 personas, 16 labelled room "
        "messages (4 need no answer, 2 expect disagreement). Fixtures: bench/eval/fixtures.py.",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for key, name in keys:
        cells = [str(results[label].get(key, "—")) for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", choices=["before", "after", "model"], default="after")
    parser.add_argument("--only", choices=["memory", "judgement"])
    parser.add_argument("--model", help="a chat GGUF instead of SmolLM2-135M (label: model)")
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    threads = os.cpu_count() or 2
    result: dict = {}
    if args.only != "judgement":
        result.update(anyio.run(memory_eval, threads))
        print({k: v for k, v in result.items() if k != "questions"}, flush=True)
    if args.only != "memory":
        result.update(anyio.run(judgement_eval, threads))
    path = RESULTS / "eval.json"
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything[args.label] = result
    flat = {k: v for k, v in result.items() if not isinstance(v, list | dict)}
    everything.update(flat if args.label == "after" else {})
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(everything, indent=2) + "\n")
    (RESULTS / "eval.md").write_text(markdown(everything))
    print(markdown(everything))


if __name__ == "__main__":
    main()
