"""What a persona's text must never do on a platform: ping a whole channel.

A model repeats what it reads, and people can type a mass mention for it to repeat (on
Slack even escaped, ``&lt;!channel&gt;``, which the host decodes to read it). So every
reply is neutralised for the host's dialect before it leaves: no ``<!channel>``,
``<!here>``, ``<!everyone>``, user-group or role ping, and no bare ``@everyone`` /
``@here`` / ``@channel``, whoever wrote it. The text still reads the same to a person.

The functions are character-local (a ``<`` becomes ``&lt;`` wherever it is), so a
streaming sink may apply them delta by delta, except :func:`break_mass_words`, which
needs whole words (apply it to text that is complete up to a word boundary).
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"  # invisible, and it breaks the token a platform matches on
_MASS_WORDS = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_DISCORD_PINGS = re.compile(r"<@([!&]?\d+)>")


def escape_slack(text: str) -> str:
    """Slack's own escaping for message text (``&``, ``<``, ``>``): no control sequence
    (``<!channel>``, ``<!subteam^…>``, ``<@U…>``) survives; Slack shows the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def break_mass_words(text: str) -> str:
    """``@everyone`` / ``@here`` / ``@channel`` with a word joiner after the ``@``."""
    return _MASS_WORDS.sub(lambda m: "@" + WORD_JOINER + m.group(1), text)


def neutralize(text: str, dialect: str) -> str:
    """A persona's text, safe to post in ``dialect`` (a :data:`~continuum.hosts.base.Markup`
    value): no mass mention, no role or user ping."""
    if dialect == "slack_mrkdwn":
        return break_mass_words(escape_slack(text))
    if dialect == "discord_markdown":
        text = _DISCORD_PINGS.sub(lambda m: "<@" + WORD_JOINER + m.group(1) + ">", text)
    return break_mass_words(text)


def partial_word_tail(text: str) -> int:
    """How many trailing characters of a growing text could still become a mass word
    (``@`` or ``@ever``): a streaming sink holds them back until the next delta."""
    at = text.rfind("@")
    if at < 0 or len(text) - at > len("@everyone"):
        return 0
    tail = text[at + 1 :].lower()
    if any(w.startswith(tail) for w in ("everyone", "here", "channel")):
        return len(text) - at
    return 0
