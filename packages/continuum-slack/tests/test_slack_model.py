"""End to end on the real embedded model: a message in a Slack channel, the persona whose
specialty fits answers in the thread, under its own name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from slack_peer import event_payload, post_event
from slack_testkit import serving, until

from continuum.errors import ModelNotInstalled
from continuum.persona_files import load_personas

pytestmark = [pytest.mark.anyio, pytest.mark.model, pytest.mark.usefixtures("slack_env")]
REPO = Path(__file__).resolve().parents[3]


async def test_the_right_persona_answers_in_the_thread_under_its_own_name(tmp_path, peer):
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
    from continuum.models import default_model_path

    try:
        model = default_model_path()
    except ModelNotInstalled as exc:
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)
    threads = int(os.environ.get("CONTINUUM_TEST_THREADS", "2"))
    backend = EmbeddedBackend(model, EmbeddedConfig(live_slots=6, slot_ctx=2048, n_threads=threads))
    personas = tuple(load_personas([REPO / "examples" / "personas"]))
    event = {
        "type": "message",
        "channel": "C1",
        "channel_type": "channel",
        "user": "U1",
        "text": "Our API latency doubled after we added a cache. How should I profile it?",
        "ts": "1700000000.000001",
    }
    async with serving(
        tmp_path,
        peer,
        backend,
        personas=personas,
        policy={"cognition": "shared", "reply_max_tokens": 32},
    ) as (probe, host):
        assert (
            await post_event(f"http://127.0.0.1:{host.port}/slack/events", event_payload(event))
            == 200
        )
        await until(lambda: probe.stats["answered"] + probe.stats["silent"] >= 1, timeout=240)
        first = peer.of("chat.startStream")[0].args
        assert first["username"] == "Maya"  # systems performance and profiling
        assert first.get("icon_url") is None or first["icon_url"]  # none by default
        assert first["thread_ts"] == "1700000000.000001"
        texts = [c.args.get("markdown_text") or "" for c in peer.calls if "Stream" in c.method]
        assert "".join(texts).strip()  # she said something
        assert all("<think>" not in t for t in texts)
    backend.close()
