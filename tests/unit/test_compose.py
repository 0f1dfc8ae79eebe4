import random

import pytest

from continuum.compose import ChatMessage, Section, compose_prompt, order_sections
from continuum.tiers import Tier


def sections():
    return [
        Section(
            name="new",
            tier=Tier.VOLATILE,
            order=30,
            messages=(ChatMessage(role="user", content="Ann: hi"),),
        ),
        Section(name="identity", tier=Tier.INVARIANT, order=0, text="You are Maya."),
        Section(name="profile", tier=Tier.SEMI_STABLE, order=0, text="Likes tea."),
        Section(name="retrieval", tier=Tier.VOLATILE, order=10, text="Ann has a cat."),
        Section(name="rules", tier=Tier.INVARIANT, order=10, text="Be brief."),
        Section(
            name="history",
            tier=Tier.SEMI_STABLE,
            order=20,
            messages=(ChatMessage(role="user", content="Ann: earlier"),),
        ),
    ]


def test_tiers_render_in_fixed_order_whatever_the_input_order():
    expected = compose_prompt(sections())
    for seed in range(5):
        shuffled = sections()
        random.Random(seed).shuffle(shuffled)
        assert compose_prompt(shuffled) == expected
    names = [s.name for s in order_sections(sections())]
    assert names == ["identity", "rules", "profile", "history", "retrieval", "new"]


def test_boundaries_and_hash():
    c = compose_prompt(sections())
    assert c.prompt[: c.invariant_len].endswith("Be brief.")
    assert "Likes tea." not in c.prompt[: c.invariant_len]
    assert c.prompt[: c.stable_len].endswith("Ann: earlier<|im_end|>\n")
    assert "Ann has a cat." in c.volatile_text and "Ann: hi" in c.volatile_text
    assert c.prompt.endswith("<|im_start|>assistant\n")
    # a change in a stable-later tier does not move the invariant prefix or its hash
    changed = [
        s if s.name != "profile" else s.model_copy(update={"text": "Likes coffee."})
        for s in sections()
    ]
    c2 = compose_prompt(changed)
    assert c2.invariant_sha256 == c.invariant_sha256
    assert c2.prompt[: c2.invariant_len] == c.prompt[: c.invariant_len]


def test_text_budget_truncates_to_the_budget():
    long = Section(name="identity", tier=Tier.INVARIANT, text="word " * 400, max_tokens=50)
    c = compose_prompt([long])
    report = c.sections[0]
    assert report.truncated and report.tokens <= 50
    assert len(c.prompt) < 400


def test_message_budget_keeps_newest_messages():
    msgs = tuple(ChatMessage(role="user", content=f"m{i} " + "x" * 40) for i in range(10))
    c = compose_prompt([Section(name="h", tier=Tier.SEMI_STABLE, messages=msgs, max_tokens=40)])
    assert "m9" in c.prompt and "m0" not in c.prompt
    assert c.sections[0].truncated


def test_duplicate_section_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        compose_prompt(
            [
                Section(name="a", tier=Tier.INVARIANT, text="x"),
                Section(name="a", tier=Tier.VOLATILE, text="y"),
            ]
        )
