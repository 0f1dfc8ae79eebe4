"""continuum-lsp on the real embedded model (SmolLM2-135M), as an editor starts it: an
answer about a selection streams, and a warm request evaluates no more than its
prompt's volatile tier (the persona, the conventions and earlier requests are reused)."""

from __future__ import annotations

import sys

import pytest
from lsp_testkit import editor, span

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_a_real_answer_streams_and_a_warm_request_reuses_the_prefix(tmp_path):
    command = [sys.executable, "-m", "continuum_lsp", "--config", str(tmp_path / "continuum.toml")]
    async with editor(tmp_path, lsp={"persona": "maya"}, command=command,
                      extra="[policy]\nreply_max_tokens = 24") as ed:  # fmt: skip
        uri = ed.open()
        token = "model-1"
        ed.client.progress_reports[token] = []
        first = await ed.chat("What does this function do?", uri, span(0, 0, 4, 0),
                              workDoneToken=token)  # fmt: skip
        assert first["text"].strip() and first["persona"] == "Maya"
        streamed = "".join(r.message or "" for r in ed.client.progress_reports[token]
                           if r.kind == "report")  # fmt: skip
        assert streamed.strip() == first["text"].strip()
        assert first["metrics"]["generated_tokens"] > 0
        second = await ed.chat("How would you test it?", uri, span(6, 0, 9, 0))
        m = second["metrics"]
        assert m["reused_tokens"] > 0
        assert m["evaluated_tokens"] <= m["volatile_tokens"] + 16, m
