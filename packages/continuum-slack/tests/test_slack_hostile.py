"""continuum-slack as a hostile or unlucky user meets it: privacy of slash commands and
thread context, mass mentions in replies (hardening, second pass)."""

from __future__ import annotations

import pytest
from slack_peer import event_payload, post_command, post_event
from slack_testkit import serving, until

from continuum.testing import ScriptedBackend

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("slack_env")]


def url(host) -> str:
    return f"http://127.0.0.1:{host.port}/slack/events"


def message(text: str, ts: str, channel: str = "C1", user: str = "U1", **extra: object) -> dict:
    return {
        "type": "message",
        "channel": channel,
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        **extra,
    }


def remembered(prompt: str) -> str:
    return prompt.split("Things you remember")[-1].split("<|im_end|>")[0]


@pytest.mark.parametrize(
    ("channel", "info"),
    [
        ("C9PRIV", {"is_channel": True, "is_private": True}),  # a private channel, id C...
        ("G7MPIM", {"is_mpim": True, "is_private": True}),  # a group DM
        ("C8GONE", None),  # conversations.info fails: unknown is private
    ],
)
async def test_ask_in_a_private_conversation_is_stored_as_private(tmp_path, peer, channel, info):
    """`/continuum ask` carries no channel type: Slack's conversations.info says how
    private the channel is (before: guessed from the id, so C... was public)."""
    if info is None:
        peer.fail["conversations.info"] = ["channel_not_found"]
    else:
        peer.channels[channel] = info
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted.")
    async with serving(tmp_path, peer, backend, policy={"recall_k": 5}) as (probe, host):
        secret = "maya remember that my salary at Initech is 94000 dollars"
        await post_command(url(host), peer, f"ask {secret}", channel=channel)
        await until(lambda: probe.stats["answered"] >= 1)
        await probe.settle()
        for i in range(3):
            priya = message(
                f"Maya, what is Sam's salary at Initech? ({i})", f"17000001{i}.1", user="U2"
            )
            await post_event(url(host), event_payload(priya))
            await until(lambda n=i: probe.stats["answered"] >= 2 + n)
            assert "94000" not in remembered(seen[-1])
        # Sam, in that same private conversation, still gets it back
        await post_command(url(host), peer, "ask maya what is my salary?", channel=channel)
        await until(lambda: probe.stats["answered"] >= 5)
        assert "94000" in seen[-1]


async def test_thread_context_in_a_private_channel_is_private(tmp_path, peer):
    """Thread context fetched for a new thread room takes the channel's visibility."""
    peer.channels["C9PRIV"] = {"is_channel": True, "is_private": True}
    peer.threads[("C9PRIV", "1700000500.1")] = [
        {"ts": "1700000500.1", "user": "U1", "text": "My bank PIN is 4417, keep it safe."},
    ]
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted.")
    async with serving(tmp_path, peer, backend, policy={"recall_k": 5}) as (probe, host):
        reply = message(
            "Maya, did you get that?",
            "1700000500.2",
            channel="C9PRIV",
            channel_type=None,
            thread_ts="1700000500.1",
        )
        await post_event(url(host), event_payload(reply))
        await until(lambda: probe.stats["answered"] >= 1)
        await probe.settle()
        assert "4417" in seen[-1]  # the thread's own context
        await post_event(
            url(host), event_payload(message("Maya, what's Sam's PIN?", "1.7", user="U2"))
        )
        await until(lambda: probe.stats["answered"] >= 2)
        assert "4417" not in remembered(seen[-1])


@pytest.mark.parametrize(
    "said",
    [
        "Sure! <!channel> <!everyone> <!here> heads up.",
        "Sure! <!subteam^S123|@oncall> and <!here|here> heads up.",
        "Sure! @everyone @here @channel heads up.",
    ],
)
async def test_a_reply_never_pings_a_channel(tmp_path, peer, said):
    async with serving(tmp_path, peer, ScriptedBackend(lambda req: said), stream="off") as (
        probe,
        host,
    ):
        await post_event(url(host), event_payload(message("Maya, announce it", "1700000600.1")))
        await until(lambda: probe.stats["answered"] >= 1)
        [post] = peer.of("chat.postMessage")
        sent = post.args.get("text", "") + post.args.get("markdown_text", "")
        for ping in ("<!channel", "<!everyone", "<!here", "<!subteam", "@everyone", "@here"):
            assert ping not in sent
        assert "heads up" in sent


async def test_a_typed_escaped_mass_mention_is_not_revived(tmp_path, peer):
    """A person types `&lt;!channel&gt;` (Slack sends it escaped); the persona repeats it:
    it must go back out as text, not as a real <!channel>."""
    backend = ScriptedBackend(lambda req: "You said: " + req.prompt.split("Sam: ")[-1][:40])
    async with serving(tmp_path, peer, backend, stream="off") as (probe, host):
        typed = message("Maya repeat &lt;!channel&gt; please", "1700000700.1")
        await post_event(url(host), event_payload(typed))
        await until(lambda: probe.stats["answered"] >= 1)
        sent = peer.of("chat.postMessage")[0].args.get("markdown_text", "")
        assert "<!channel>" not in sent and "channel" in sent


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "event_callback", "event": "x"}',
        b'{"type": "event_callback", "event": {"type": "message", "channel": 5, "ts": [1]}}',
        b'{"type": "event_callback", "event": {"type": "reaction_added", "item": "x"}}',
        b'{"type": "event_callback", "event": {"type": "message", "channel": "C1", '
        b'"ts": "1.0", "user": "U1", "text": "hi", "files": "x"}}',
        b"[" * 50_000 + b"]" * 50_000,
    ],
)
async def test_a_signed_but_malformed_event_gets_400_not_500(tmp_path, peer, body):
    import aiohttp
    from slack_peer import signed

    async with serving(tmp_path, peer) as (probe, host):
        headers = {"Content-Type": "application/json", **signed(body)}
        async with aiohttp.ClientSession() as s, s.post(url(host), data=body, headers=headers) as r:
            assert r.status == 400
        good = message("Maya, is the cache warm?", "1700000800.1")
        assert await post_event(url(host), event_payload(good)) == 200
        await until(lambda: probe.stats["answered"] >= 1)


@pytest.mark.parametrize("stream", ["auto", "update", "off"])
async def test_a_reaction_on_any_chunk_of_a_long_reply_credits_the_persona(tmp_path, peer, stream):
    """A reply over the limit posts several messages; every one is mapped to the reply
    (before: only the first, so a 👍 on the second credited nobody)."""
    long = " ".join(f"w{i}" for i in range(500))
    backend = ScriptedBackend(lambda req: long, token_delay_s=0.0005)
    async with serving(tmp_path, peer, backend, stream=stream, max_message_chars=1000) as (
        probe,
        host,
    ):
        await post_event(url(host), event_payload(message("Maya, tell me all", "1700000900.1")))
        await until(lambda: probe.stats["answered"] >= 1)
        posts = peer.of("chat.startStream") + peer.of("chat.postMessage")
        chunks = [p.result["ts"] for p in posts if p.args.get("username") == "Maya"]
        assert len(chunks) >= 2
        state = probe.state("C1", "maya")
        for i, ts in enumerate(chunks[1:], 1):
            react = {
                "type": "reaction_added", "user": f"U{i + 1}", "reaction": "+1",
                "item": {"type": "message", "channel": "C1", "ts": ts}, "event_ts": "1.1",
            }  # fmt: skip
            await post_event(url(host), event_payload(react))
            await until(lambda n=i: state.reputation.positive_reactions == n)


async def test_a_reaction_on_a_reply_counts_after_the_thread_goes_on(tmp_path, peer):
    """Maya answers in a thread; Sam replies in it (the thread becomes a room, its context
    fetched from Slack, Maya's own post included); then a 👍 on Maya's reply still credits
    her (before: the context copy remapped her post as a person's, "not a persona id")."""
    async with serving(tmp_path, peer) as (probe, host):
        parent = "1700001000.1"
        await post_event(url(host), event_payload(message("Maya, how do I profile?", parent)))
        await until(lambda: probe.stats["answered"] >= 1)
        reply_ts = peer.of("chat.startStream")[0].result["ts"]
        peer.threads[("C1", parent)].insert(
            0, {"ts": parent, "user": "U1", "text": "Maya, how do I profile?"}
        )
        follow = message("thanks, and then?", "1700001000.9", thread_ts=parent)
        await post_event(url(host), event_payload(follow))
        await until(lambda: probe.stats["answered"] >= 2)
        react = {
            "type": "reaction_added", "user": "U2", "reaction": "+1",
            "item": {"type": "message", "channel": "C1", "ts": reply_ts}, "event_ts": "1.2",
        }  # fmt: skip
        await post_event(url(host), event_payload(react))
        state = probe.state("C1", "maya")
        await until(lambda: state.reputation.positive_reactions == 1)


async def test_ask_names_the_person_and_takes_its_eyes_off(tmp_path, peer):
    peer.users["U1"] = "Sam Rivera"
    async with serving(tmp_path, peer, thinking_reaction="eyes") as (probe, host):
        await post_command(url(host), peer, "ask maya how do I profile?")
        await until(lambda: probe.stats["answered"] >= 1)
        [asked] = [c for c in peer.of("chat.postMessage") if "asked" in c.args.get("text", "")]
        assert asked.args["text"].startswith("Sam Rivera asked Maya")  # not the handle
        ts = asked.result["ts"]
        await until(lambda: any(c.args.get("timestamp") == ts for c in peer.of("reactions.remove")))


def final_messages(peer) -> list[str]:
    """Each persona message as Slack finally shows it, in posting order."""
    shown: dict[str, str] = {}
    order: list[str] = []
    for c in peer.calls:
        ts = c.result.get("ts") if c.method in ("chat.startStream", "chat.postMessage") else None
        if ts and c.args.get("username") == "Maya":
            order.append(ts)
            shown[ts] = c.args.get("markdown_text") or ""
        elif c.method == "chat.appendStream" or (c.method == "chat.stopStream"):
            shown[c.args["ts"]] = shown.get(c.args["ts"], "") + (c.args.get("markdown_text") or "")
        elif c.method == "chat.update":
            shown[c.args["ts"]] = c.args.get("markdown_text") or ""
    return [shown[ts] for ts in order]


@pytest.mark.parametrize("stream", ["auto", "update", "off"])
async def test_a_long_reply_split_inside_a_code_fence_renders_in_each_part(tmp_path, peer, stream):
    code = "\n".join(f"    value_{i} = compute({i})  # step {i}" for i in range(80))
    reply = f"Here is the script:\n```python\n{code}\n```\nRun it twice."
    backend = ScriptedBackend(lambda req: reply, token_delay_s=0.0005)
    async with serving(tmp_path, peer, backend, stream=stream, max_message_chars=1000) as (
        probe,
        host,
    ):
        await post_event(url(host), event_payload(message("Maya, the script?", "1700001100.1")))
        await until(lambda: probe.stats["answered"] >= 1)
    parts = final_messages(peer)
    assert len(parts) >= 3
    for part in parts:
        assert len(part) <= 1000
        fences = [ln for ln in part.splitlines() if ln.strip().startswith("```")]
        assert len(fences) % 2 == 0, part  # every part opens and closes its own fence
    shown = "".join(parts)
    for i in range(80):
        assert f"    value_{i} = compute({i})  # step {i}" in shown  # code kept, indented


async def test_a_redelivered_event_after_a_restart_is_answered_once(tmp_path, peer):
    """Slack retries an event the old process acked late; the new process has no memory of
    it in RAM, but the message map on disk does (before: answered twice)."""
    event = message("Maya, how do I profile?", "1700001200.1")
    async with serving(tmp_path, peer) as (probe, host):
        await post_event(url(host), event_payload(event, event_id="Ev-retry"))
        await until(lambda: probe.stats["answered"] >= 1)
    async with serving(tmp_path, peer) as (probe, host):  # a restart: same data dir
        await post_event(url(host), event_payload(event, event_id="Ev-retry"))
        await until(lambda: probe.stats["duplicate"] >= 1)
        assert probe.stats["answered"] == 0
    assert len(peer.of("chat.startStream")) == 1
