"""Who a message speaks to: named at the start or end of a sentence, or @-mentioned —
not merely named in passing (one rule for every host: continuum.addressing)."""

from __future__ import annotations

import pytest

from continuum.addressing import addressed
from continuum.persona import Persona

PERSONAS = [
    Persona(id="maya", name="Maya", identity="x"),
    Persona(id="otto", name="Otto", identity="x"),
    Persona(id="juno", name="Juno", identity="x"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Maya, how do I profile?", ("maya",)),
        ("maya: check this", ("maya",)),
        ("Maya and Otto: thoughts?", ("maya", "otto")),
        ("Maya and Otto please check the database link", ("maya", "otto")),  # as STT writes
        ("okay Juno or Maya can one of you look at the logs", ("juno", "maya")),
        ("Maya and the team should look at the logs", ("maya",)),
        ("Hey Maya what's up with the cache", ("maya",)),
        ("thanks Maya", ("maya",)),
        ("What do you think, Maya?", ("maya",)),
        ("Our API latency doubled. Maya, how should I profile it?", ("maya",)),
        ("@otto archive?", ("otto",)),
        ("can you look, @juno", ("juno",)),
        ("I told Maya yesterday that caches are hard.", ()),
        ("Otto's archive is great but what would Maya say about it overall", ()),
        ("How do I profile a slow API?", ()),
        ("ok thanks", ()),
        ("email me at sam@maya.example", ()),
    ],
)
def test_addressed(text, expected):
    assert addressed(text, PERSONAS) == expected
