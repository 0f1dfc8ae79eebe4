from datetime import UTC, datetime, timedelta

import pytest

from continuum.memory.engine import MemoryEngine
from continuum.memory.index import RecallFilters
from continuum.memory.journal import JournalEntry, entry_from_markdown, entry_to_markdown


def entry(text, **kw):
    return JournalEntry(persona=kw.pop("persona", "maya"), text=text, **kw)


def test_markdown_round_trip_is_human_readable(tmp_path):
    e = entry(
        "Sam's cat is called Miso.",
        partners=("sam",),
        topics=("Pets",),
        emotions=("joy",),
        salience=0.9,
        commitments=("ask about Miso",),
        summary="Sam talked about home.",
    )
    md = entry_to_markdown(e)
    assert md.startswith("---\n") and "## Entry\n\nSam's cat is called Miso." in md
    assert "topics:\n- pets" in md or "topics: [pets]" in md
    assert entry_from_markdown(md, tmp_path / "x.md") == e


def test_semantic_and_keyword_recall(engine):
    engine.remember(entry("Sam's cat is called Miso and loves cardboard boxes.", partners=("sam",)))
    engine.remember(entry("The quarterly latency report is due on Friday.", topics=("work",)))
    engine.remember(entry("Lisbon was sunny during the conference trip.", topics=("travel",)))
    top = engine.recall("maya", "what is the name of my pet?", k=1)
    assert top and "Miso" in top[0].text  # no shared keyword: found by embedding
    top = engine.recall("maya", "latency report", k=1)
    assert "quarterly" in top[0].text
    assert engine.recall("otto", "Miso") == []  # memories do not leak between personas


def test_filters(engine):
    old = datetime.now(UTC) - timedelta(days=40)
    engine.remember(
        entry(
            "Ana likes jazz.",
            partners=("ana",),
            topics=("music",),
            emotions=("joy",),
            timestamp=old,
        )
    )
    engine.remember(
        entry("Ben likes jazz too.", partners=("ben",), topics=("music",), emotions=("calm",))
    )

    def texts(**f):
        return [r.text for r in engine.recall("maya", "jazz", k=5, filters=RecallFilters(**f))]

    assert texts(partner="ana") == ["Ana likes jazz."]
    assert texts(emotion="calm") == ["Ben likes jazz too."]
    assert texts(since=datetime.now(UTC) - timedelta(days=7)) == ["Ben likes jazz too."]
    assert texts(until=datetime.now(UTC) - timedelta(days=7)) == ["Ana likes jazz."]
    assert sorted(texts(topic="music")) == ["Ana likes jazz.", "Ben likes jazz too."]
    assert texts(partner="nobody") == []


def test_recency_decay_prefers_newer_of_equal_matches(engine):
    engine.remember(
        entry("We planned the garden.", timestamp=datetime.now(UTC) - timedelta(days=120))
    )
    engine.remember(entry("We planned the garden."))
    results = engine.recall("maya", "garden plan", k=2)
    assert results[0].timestamp > results[1].timestamp


def test_recall_across_restart(tmp_path, embedder):
    first = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    first.remember(entry("Sam is allergic to peanuts.", partners=("sam",)))
    first.close()
    second = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    assert "peanuts" in second.recall("maya", "food allergy", k=1)[0].text


def test_hand_edits_are_picked_up_and_bad_edits_reported(engine):
    e = engine.remember(entry("The meeting is on Tuesday."))
    path = engine.journal("maya").path_for(e.id)
    path.write_text(path.read_text().replace("Tuesday", "Thursday"))
    report = engine.sync()
    assert report.updated == 1
    assert "Thursday" in engine.recall("maya", "meeting day", k=1)[0].text
    path.write_text(path.read_text().replace("salience: 0.5", "salience: lots"))
    report = engine.sync()
    assert len(report.broken) == 1 and "field 'salience'" in report.broken[0]
    assert str(path) in report.broken[0]


def test_versions_are_kept_and_forget_really_forgets(engine):
    e = engine.remember(entry("Draft one."))
    engine.remember(e.model_copy(update={"text": "Draft two."}))
    store = engine.journal("maya")
    assert [v.text for v in store.versions(e.id)] == ["Draft one.", "Draft two."]
    assert engine.forget("maya", e.id)
    assert not store.path_for(e.id).exists()
    assert store.versions(e.id) == []
    assert not (store.history_root / e.id).exists()
    assert engine.index.count("maya") == 0 and engine.recall("maya", "draft") == []
    assert engine.sync().added == 0  # nothing comes back from disk


def test_write_policy_threshold_rate_limit_and_explicit(tmp_path, embedder):
    from continuum.memory.engine import WritePolicy

    eng = MemoryEngine(
        tmp_path,
        embedder=embedder,
        cipher=False,
        policy=WritePolicy(min_salience=0.6, max_per_hour=2),
    )
    assert eng.consider(entry("trivial", salience=0.2)) is None
    assert eng.consider(entry("important one", salience=0.9))
    assert eng.consider(entry("important two", salience=0.9))
    assert eng.consider(entry("important three", salience=0.9)) is None  # rate limited
    assert eng.consider(entry("remember this", salience=0.1), explicit=True)  # always
    assert eng.index.count("maya") == 3


@pytest.mark.parametrize("bad", ["persona: otto\n", "salience: 3\n"])
def test_entries_for_the_wrong_persona_or_invalid_are_rejected(engine, bad):
    e = engine.remember(entry("x"))
    path = engine.journal("maya").path_for(e.id)
    text = path.read_text()
    field = bad.split(":")[0]
    lines = [bad.strip() if line.startswith(f"{field}:") else line for line in text.split("\n")]
    path.write_text("\n".join(lines))
    assert engine.sync().broken


def test_snapshot_carries_commitments_and_changes_only_when_they_do(engine):
    engine.apply_profile_update("maya", {"add_hobbies": ["climbing"]})
    first = engine.snapshot("maya")
    assert first == "Hobbies: climbing"
    engine.remember(entry("Small talk about the weather.", salience=0.9))
    assert engine.snapshot("maya") is first  # nothing meaningful changed: not regenerated
    # a promise made in a DM (or someone else's) never enters every prompt
    engine.remember(
        entry("Promised Leo help.", salience=0.9, commitments=("help Leo",), visibility="dm")
    )
    engine.remember(
        entry(
            "Mei will send slides.",
            salience=0.9,
            commitments=("slides by Monday",),
            told_by="mei",
            visibility="public",
        )
    )
    assert "Commitments" not in engine.snapshot("maya")
    engine.remember(
        entry(
            "Agreed to review Sam's slides.",
            salience=0.9,
            commitments=("review Sam's slides by Friday",),
            visibility="public",
        )
    )
    assert engine.snapshot("maya").endswith("Commitments you made: review Sam's slides by Friday")
