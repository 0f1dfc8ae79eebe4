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

import html
import re
from collections.abc import Callable

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
    if dialect in ("slack_mrkdwn", "slack_markdown"):
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


# --- the model writes Markdown; each host gets its dialect ---------------------------------

_FENCED = re.compile(r"^([ \t]*)(```|~~~)([^\n]*)\n(.*?)^[ \t]*\2[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"
)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+", re.MULTILINE)


def _tick(code: str) -> str:
    return f"`{code}`"


def _outside_code(
    text: str,
    convert: Callable[[str], str],
    block: Callable[[str, str], str],
    span: Callable[[str], str] = _tick,
) -> str:
    """``convert`` the prose, ``block(language, code)`` each fenced block and ``span``
    each inline code span (never converted as prose)."""
    out: list[str] = []
    pos = 0
    for m in _FENCED.finditer(text):
        out.append(_prose(text[pos : m.start()], convert, span))
        out.append(block(m.group(3).strip(), m.group(4)))
        pos = m.end()
    out.append(_prose(text[pos:], convert, span))
    return "".join(out)


def _prose(text: str, convert: Callable[[str], str], span: Callable[[str], str]) -> str:
    spans: list[str] = []

    def keep(m: re.Match[str]) -> str:
        spans.append(m.group(1))
        return f"\x00{len(spans) - 1}\x00"

    converted = convert(_INLINE_CODE.sub(keep, text))
    return re.sub(r"\x00(\d+)\x00", lambda m: span(spans[int(m.group(1))]), converted)


def render(text: str, dialect: str) -> str:
    """A persona's Markdown in the host's dialect, neutralised (:func:`neutralize`):
    ``markdown`` / ``discord_markdown`` as written; ``slack_mrkdwn`` (``*bold*``,
    ``_italic_``, ``~strike~``, ``<url|text>``, headings bold, bullets •); ``html``
    (escaped, then ``<strong>``, ``<em>``, ``<code>``, ``<pre>``, ``<a>``); ``plain``
    (the markers dropped, links as "text (url)"). Pure and whole-text: a host that
    streams by editing renders the whole reply so far at each edit, so what it shows while
    streaming and at the end is rendered the same way."""
    if dialect == "slack_markdown":  # Slack's markdown_text: Markdown as written, escaped
        return neutralize(text, dialect)
    if dialect == "slack_mrkdwn":  # escaped first: only the links it makes are markup
        mrkdwn = _outside_code(
            text,
            lambda prose: _to_mrkdwn(escape_slack(prose)),
            lambda lang, code: f"```\n{escape_slack(code)}```",
            lambda code: f"`{escape_slack(code)}`",
        )
        return break_mass_words(mrkdwn)
    if dialect == "plain":
        return break_mass_words(_outside_code(text, _to_plain, lambda lang, code: code, str))
    if dialect == "html":
        return break_mass_words(_to_html(text))
    return neutralize(text, dialect)


def _to_mrkdwn(text: str) -> str:
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1) or m.group(2)}_", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    text = _HEADING.sub(lambda m: f"*{m.group(1)}*", text)
    return _BULLET.sub(lambda m: f"{m.group(1)}• ", text)


def _to_plain(text: str) -> str:
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = _HEADING.sub(lambda m: m.group(1), text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    text = _ITALIC.sub(lambda m: m.group(1) or m.group(2), text)
    return _STRIKE.sub(lambda m: m.group(1), text)


def _to_html(text: str) -> str:
    blocks: list[str] = []

    def block(lang: str, code: str) -> str:
        cls = f' class="language-{html.escape(lang)}"' if lang else ""
        blocks.append(f"<pre><code{cls}>{html.escape(code)}</code></pre>")
        return f"\x01{len(blocks) - 1}\x01"

    def prose(part: str) -> str:
        part = html.escape(part, quote=False)
        part = _LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', part)
        part = _HEADING.sub(lambda m: f"<strong>{m.group(1)}</strong>", part)
        part = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", part)
        part = _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", part)
        part = _STRIKE.sub(lambda m: f"<s>{m.group(1)}</s>", part)
        return part.replace("\n", "<br>\n")

    out = _outside_code(text, prose, block, lambda code: f"<code>{html.escape(code)}</code>")
    return re.sub(r"\x01(\d+)\x01", lambda m: blocks[int(m.group(1))], out)
