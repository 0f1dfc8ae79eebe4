"""The model writes Markdown; each host gets its dialect, and no dialect lets a persona
ping a room (continuum.markup)."""

from __future__ import annotations

import pytest

from continuum.markup import neutralize, partial_word_tail, render

REPLY = (
    "# Plan\nUse **bold**, *italic* and ~~old~~; see [docs](https://x.org/a).\n"
    "- one `a*b*c`\n- two\n```python\nx = a**b  # *not italic*\n```\n"
)
PINGS = "@everyone @here <!channel> <!here> <!subteam^S1|@ops> <@&123> <@456>"


def test_slack_mrkdwn():
    out = render(REPLY, "slack_mrkdwn")
    assert "*Plan*" in out and "*bold*" in out and "_italic_" in out and "~old~" in out
    assert "<https://x.org/a|docs>" in out and "• one `a*b*c`" in out
    assert "```\nx = a**b  # *not italic*\n```" in out  # code is never converted


def test_plain_and_html():
    plain = render(REPLY, "plain")
    assert "Use bold, italic and old; see docs (https://x.org/a)." in plain
    assert "a*b*c" in plain and "x = a**b  # *not italic*" in plain and "**" not in plain[:60]
    html = render(REPLY + "<script>alert(1)</script>", "html")
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html
    assert '<a href="https://x.org/a">docs</a>' in html and "<code>a*b*c</code>" in html
    assert '<pre><code class="language-python">x = a**b' in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_markdown_dialects_keep_the_markdown():
    assert render(REPLY, "discord_markdown") == REPLY
    assert render(REPLY, "markdown") == REPLY


DIALECTS = ["slack_mrkdwn", "plain", "html", "markdown", "discord_markdown"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_dialect_pings_a_room(dialect):
    out = render(PINGS, dialect)
    assert "@everyone" not in out and "@here" not in out
    if dialect in ("slack_mrkdwn", "html"):
        assert "<!" not in out
    if dialect == "discord_markdown":
        assert "<@&123>" not in out and "<@456>" not in out


def test_a_growing_text_holds_back_what_could_become_a_mass_word():
    assert partial_word_tail("hello @ever") == len("@ever")
    assert partial_word_tail("hello @everyone") == len("@everyone")
    assert partial_word_tail("mail me@example") == 0
    assert neutralize("hi @channel", "slack_mrkdwn") == "hi @\u2060channel"
