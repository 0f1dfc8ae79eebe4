"""The ``[hosts.lsp]`` table (the language server reads it from continuum.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from continuum.hosts.base import HostConfig


class LspConfig(HostConfig):
    # one room per workspace (what the reviewer learns of this repository's conventions
    # is recalled here and nowhere else), or one per file
    room: Literal["workspace", "file"] = "workspace"
    persona: str | None = None  # who answers when a request names nobody (default: first)
    reviewer: str | None = None  # whose review becomes diagnostics (default: `persona`)
    # the person at the keyboard: linkable to their Slack / Discord identity in [[people]]
    # with host id "lsp:<user_id>" (default: the OS user)
    user_id: str | None = None
    user_name: str | None = None
    hover: bool = False  # a persona's short explanation on hover (costs a model call)
    window_lines: int = Field(default=12, ge=0, le=400)  # around a selection
    max_selection_lines: int = Field(default=120, ge=1, le=2000)
    max_review_lines: int = Field(default=150, ge=10, le=3000)
    review_max_tokens: int = Field(default=512, ge=64, le=8192)
    # files whose text is the workspace's conventions (the stable part of every prompt)
    conventions: tuple[str, ...] = (".continuum/conventions.md", "CONVENTIONS.md")
