"""What of a document enters a persona's prompt: the selection, a bounded window around
it and the file's outline — the volatile part of the turn. Nothing else of the file is
sent, so a warm editor request evaluates only this (the persona's identity and the
workspace's conventions are the stable prefix, reused)."""

from __future__ import annotations

import re
from pathlib import PurePath

from lsprotocol import types

_OUTLINE = re.compile(
    r"^\s*(?:export\s+|pub(?:\(\w+\))?\s+|async\s+|public\s+|private\s+|static\s+)*"
    r"(?:def|class|function|fn|func|struct|enum|trait|impl|interface|type|module|"
    r"const\s+\w+\s*=\s*(?:async\s*)?\(|let\s+\w+\s*=\s*(?:async\s*)?\()\b"
)
LANGS = {
    ".py": "python", ".ts": "typescript", ".tsx": "tsx", ".js": "javascript",
    ".rs": "rust", ".go": "go", ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp",
    ".rb": "ruby", ".md": "markdown", ".toml": "toml", ".json": "json", ".sh": "bash",
}  # fmt: skip


def language(uri: str) -> str:
    return LANGS.get(PurePath(uri).suffix.lower(), "")


def file_name(uri: str) -> str:
    return PurePath(uri.removeprefix("file://")).name or uri


def outline(lines: list[str], limit: int = 25) -> list[str]:
    """The file's definitions (line number and signature), at most ``limit``."""
    found = [f"{i + 1}: {ln.strip()[:100]}" for i, ln in enumerate(lines) if _OUTLINE.match(ln)]
    return found[:limit]


def selection_message(
    question: str,
    uri: str,
    lines: list[str],
    selection: types.Range | None,
    *,
    window: int,
    max_selection: int,
) -> str:
    """The person's question with the code it is about (the message and its context, as
    the persona reads them)."""
    context = selection_context(uri, lines, selection, window=window, max_selection=max_selection)
    return f"{question.strip()}\n\n{context}" if context else question.strip()


def selection_context(
    uri: str,
    lines: list[str],
    selection: types.Range | None,
    *,
    window: int,
    max_selection: int,
) -> str:
    """The code a question is about: the selection, a window around it, the outline —
    sent with the question for its turn only (Envelope.context), never kept in history."""
    name, lang = file_name(uri), language(uri)
    parts: list[str] = []
    if selection is not None and lines:
        first = max(0, min(selection.start.line, len(lines) - 1))
        last = max(first, min(selection.end.line, len(lines) - 1))
        if selection.end.character == 0 and last > first:
            last -= 1  # a selection ending at a line start does not include that line
        last = min(last, first + max_selection - 1)
        chosen = "\n".join(lines[first : last + 1])
        parts.append(f"Selected in {name}, lines {first + 1}-{last + 1}:\n```{lang}\n{chosen}\n```")
        lo, hi = max(0, first - window), min(len(lines), last + 1 + window)
        if window and (lo < first or hi > last + 1):
            around = "\n".join(f"{i + 1}| {lines[i]}" for i in range(lo, hi))
            parts.append(f"Around it (lines {lo + 1}-{hi}):\n```{lang}\n{around}\n```")
    elif lines:
        parts.append(f"(In {name}, {len(lines)} lines.)")
    shape = outline(lines)
    if shape:
        parts.append(f"Outline of {name}:\n" + "\n".join(shape))
    return "\n\n".join(parts)


def review_message(uri: str, lines: list[str], max_lines: int) -> tuple[str, str]:
    """(the request, the numbered file as its turn-only context)."""
    name, lang = file_name(uri), language(uri)
    shown = lines[:max_lines]
    numbered = "\n".join(f"{i + 1}| {ln}" for i, ln in enumerate(shown))
    more = f"\n(… {len(lines) - max_lines} more lines not shown)" if len(lines) > max_lines else ""
    request = (
        f"Review {name}: real bugs, risks and departures from this workspace's conventions "
        "only, each with its line numbers, a one-sentence message and, when you can, the "
        "replacement text for those lines. No findings is a fine answer."
    )
    return request, f"{name}:\n```{lang}\n{numbered}\n```{more}"
