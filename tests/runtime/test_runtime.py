"""The runtime and the two-way host contract, with recording hosts speaking the real
contract and a scripted backend (no model behaviour is asserted here)."""

from __future__ import annotations

from typing import ClassVar

import anyio
import pytest

from continuum.config import ContinuumConfig, parse_config
from continuum.errors import ConfigError, MalformedEvent, UnknownPlugin
from continuum.hosts.base import CommandEvent, ReactionEvent
from continuum.persona import Persona
from continuum.runtime import Runtime
from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

pytestmark = pytest.mark.anyio

MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.", specialty="speed")
OTTO = Persona(id="otto", name="Otto", identity="An archivist.", specialty="history")


class Alpha(RecordingHost):
    name = "alpha"


class Beta(RecordingHost):
    name = "beta"


HOSTS = {"alpha": Alpha, "beta": Beta}


def config(tmp_path, **extra) -> ContinuumConfig:
    data = {
        "memory": {"data_dir": str(tmp_path)},
        "policy": {"cognition": "direct"},
        "hosts": {"alpha": {}, "beta": {}},
        **extra,
    }
    return parse_config(data, tmp_path / "continuum.toml")


def runtime(tmp_path, backend, personas=(MAYA,), **extra) -> Runtime:
    return Runtime(
        config(tmp_path, **extra), personas=list(personas), backend=backend, host_classes=HOSTS
    )


async def test_replies_stream_visible_text_only_and_finish_with_the_host_id(tmp_path):
    backend = ScriptedBackend(
        lambda req: "<think>secret plan 42</think>Hello there, Sam. Profile first.",
        token_delay_s=0.001,
    )
    async with runtime(tmp_path, backend) as rt:
        turn = await rt.deliver("alpha", text_envelope("hi", host="alpha", host_message_id="m1"))
        [reply] = await turn.wait()
        [recorded] = rt.host("alpha").replies
    assert turn.outcome == "answered"
    assert len(recorded.deltas) > 3  # streamed, not posted at once
    assert recorded.text == "Hello there, Sam. Profile first." == reply.message.text
    assert all("think" not in d and "secret" not in d for d in recorded.deltas)
    assert reply.host_message_id == recorded.host_message_id == "alpha-1"
    assert reply.message.raw_text.startswith("<think>secret plan 42</think>")
    assert recorded.start.persona_name == "Maya" and recorded.start.in_reply_to == turn.message_id


async def test_a_reaction_finds_its_reply_also_after_a_restart(tmp_path):
    backend = ScriptedBackend(lambda req: "Measure before you optimise.")
    async with runtime(tmp_path, backend) as rt:
        [reply] = await (await rt.deliver("alpha", text_envelope("slow app?", host="alpha"))).wait()
        host_id = reply.host_message_id
        up = ReactionEvent(
            host="alpha",
            room_id="room",
            host_message_id=host_id,
            reaction="+1",
            positive=True,
            author=text_envelope("x").author,
        )
        await rt.host("alpha").services.submit(up)
        assert rt.router.room("alpha:room").state("maya").reputation.positive_reactions == 1
    # a new process on the same data dir: the message map and the state are on disk
    async with runtime(tmp_path, backend) as rt2:
        await rt2.host("alpha").services.submit(up)
        rep = rt2.router.room("alpha:room").state("maya").reputation
        assert rep.positive_reactions == 2 and rep.trust == pytest.approx(0.75)
        down = up.model_copy(update={"positive": False})
        await rt2.host("alpha").services.submit(down)
        assert rt2.router.room("alpha:room").state("maya").reputation.negative_reactions == 1


async def test_one_person_across_hosts_is_recalled_across_hosts(tmp_path):
    backend = ScriptedBackend(lambda req: "Noted.")
    people = [{"id": "sam", "name": "Sam", "host_ids": ["alpha:u1", "beta:u9"]}]
    async with runtime(tmp_path, backend, people=people) as rt:
        told = text_envelope(
            "Please remember that my sister Ada lives in Lisbon.", host="alpha", author="u1"
        )
        await (await rt.deliver("alpha", told)).wait()
        asked = text_envelope("Where does my sister Ada live?", host="beta", author="u9")
        turn = await rt.deliver("beta", asked)
        await turn.wait()
        assert turn.envelope.author.id == "sam" and turn.envelope.author.name == "Sam"
        room = rt.router.room("beta:room")
        [posted] = [e for e in room.events.recent if e.type == "reply_posted"]
        assert any("Ada lives in Lisbon" in line for line in posted.recalled)
        assert "Ada lives in Lisbon" in backend.requests[-1].prompt
        # an unlinked stranger on beta is someone else
        other = await rt.deliver("beta", text_envelope("hello", host="beta", author="u5"))
        assert other.envelope.author.id == "beta:u5"


async def test_rooms_have_their_own_slots_and_typing_shows(tmp_path):
    backend = ScriptedBackend(lambda req: "ok")
    async with runtime(tmp_path, backend) as rt:
        for room in ("general", "random"):
            e = text_envelope("hi", host="alpha", room_id=room)
            await (await rt.deliver("alpha", e)).wait()
        await anyio.sleep(0.01)
        typing = rt.host("alpha").typing_calls
    slots = {r.slot.room for r in backend.requests}
    assert slots == {"alpha:general", "alpha:random"}
    assert ("general", "maya") in typing and ("random", "maya") in typing


async def test_shutdown_cancels_replies_in_flight_cleanly(tmp_path):
    backend = ScriptedBackend(lambda req: "word " * 400, token_delay_s=0.01)
    rt = runtime(tmp_path, backend, runtime={"shutdown_grace_s": 0.05})
    async with rt:
        turn = await rt.deliver("alpha", text_envelope("tell me a long story", host="alpha"))
        with anyio.fail_after(5):
            while not rt.host("alpha").replies or not rt.host("alpha").replies[0].deltas:
                await anyio.sleep(0.01)
    assert turn.outcome == "cancelled"
    [recorded] = rt.host("alpha").replies
    assert recorded.aborted == "cancelled"
    # nothing is left pending on disk: a restart does not answer it again
    async with runtime(tmp_path, backend) as rt2:
        assert rt2.router.messages.pending() == []
        assert rt2.host("alpha").replies == []


async def test_a_message_delivered_before_a_crash_is_answered_after_the_restart(tmp_path):
    from continuum.router import MessageMap

    backend = ScriptedBackend(lambda req: "Back again.")
    messages = MessageMap(tmp_path / "messages.sqlite3")
    import time

    lost = text_envelope("are you there?", host="alpha")
    messages.add_pending(lost, time.time())
    stale = text_envelope("old question", host="alpha")
    messages.add_pending(stale, time.time() - 3600)
    messages.close()
    outcomes = {}
    rt = runtime(tmp_path, backend)
    rt.on_outcome.append(lambda t: outcomes.__setitem__(t.message_id, (t.outcome, t.reason)))
    async with rt:
        turn = rt.turns[lost.id]
        await turn.wait()
        assert [r.text for r in rt.host("alpha").replies] == ["Back again."]
    assert outcomes[lost.id][0] == "answered"
    assert outcomes[stale.id][0] == "shed" and "restarted" in outcomes[stale.id][1]


async def test_events_of_another_host_are_rejected(tmp_path):
    backend = ScriptedBackend(lambda req: "ok")
    async with runtime(tmp_path, backend) as rt:
        with pytest.raises(MalformedEvent):
            await rt.host("alpha").services.deliver(text_envelope("x", host="beta"))


async def test_identity_links_need_both_sides(tmp_path):
    backend = ScriptedBackend(lambda req: "ok")
    async with runtime(tmp_path, backend) as rt:
        a, b = rt.host("alpha").services, rt.host("beta").services
        sam_a = text_envelope("x", author="u1").author
        sam_b = text_envelope("x", author="u9").author
        start = await a.submit(CommandEvent(host="alpha", room_id="r", name="link", author=sam_a))
        code = start.data["code"]
        bad = await b.submit(
            CommandEvent(host="beta", room_id="r", name="link", args=("nope-nope",), author=sam_b)
        )
        assert not bad.ok
        done = await b.submit(
            CommandEvent(host="beta", room_id="r", name="link", args=(code,), author=sam_b)
        )
        assert done.ok
        assert rt.people.resolve("alpha", "u1") == rt.people.resolve("beta", "u9")
        again = await b.submit(
            CommandEvent(host="beta", room_id="r", name="link", args=(code,), author=sam_b)
        )
        assert not again.ok  # one use


async def test_commands_list_personas_and_remove_one_from_a_room(tmp_path):
    backend = ScriptedBackend(lambda req: req.slot.persona_id)
    async with runtime(tmp_path, backend, personas=(MAYA, OTTO)) as rt:
        s = rt.host("alpha").services
        who = text_envelope("x").author
        listed = await s.submit(
            CommandEvent(host="alpha", room_id="room", name="personas", author=who)
        )
        assert listed.data["personas"] == ["maya", "otto"]
        removed = await s.submit(
            CommandEvent(host="alpha", room_id="room", name="remove", args=("otto",), author=who)
        )
        assert removed.ok
        replies = await (await rt.deliver("alpha", text_envelope("hi", host="alpha"))).wait()
        assert [r.persona_id for r in replies] == ["maya"]
    async with runtime(tmp_path, backend, personas=(MAYA, OTTO)) as rt2:  # persisted
        replies = await (await rt2.deliver("alpha", text_envelope("hi", host="alpha"))).wait()
        assert [r.persona_id for r in replies] == ["maya"]


def test_config_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "continuum.toml"
    path.write_text('[backend]\nkind = "gpu"\n')
    from continuum.config import load_config

    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: field 'backend.kind'" in str(err.value)
    path.write_text('[hosts.slack]\nbot_token = "xoxb-123"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "hosts.slack.bot_token" in str(err.value) and "bot_token_env" in str(err.value)
    path.write_text("[backend]\nadapter_budget_mb = 0\n")
    with pytest.raises(ConfigError, match=r"backend\.adapter_budget_mb"):
        load_config(path)
    path.write_text("[memory\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="continuum init"):
        load_config(tmp_path / "missing.toml")
    path.write_text('[plugins]\nhub = "yes"\n')
    with pytest.raises(ConfigError, match=r"plugins\.hub"):
        load_config(path)


def test_a_model_from_a_source_no_plugin_provides_is_a_clear_error(tmp_path):
    from continuum.runtime import local_model

    path = tmp_path / "continuum.toml"
    path.write_text('[backend]\nmodel = "zoo:big/model.gguf"\n')
    from continuum.config import load_config

    with pytest.raises(ConfigError) as err:
        local_model(load_config(path))
    assert "backend.model" in str(err.value) and "no model source 'zoo'" in str(err.value)
    # a plain path stays a path, relative to the file (a drive-like prefix is not a scheme)
    path.write_text('[backend]\nmodel = "models/x.gguf"\n')
    assert local_model(load_config(path)) == str(tmp_path / "models" / "x.gguf")


async def test_unknown_hosts_and_bad_host_tables_are_clear_errors(tmp_path):
    backend = ScriptedBackend(lambda req: "ok")
    cfg = parse_config({"memory": {"enabled": False}, "hosts": {"nosuch": {}}})
    with pytest.raises(UnknownPlugin, match="pip install continuum-nosuch"):
        async with Runtime(cfg, personas=[MAYA], backend=backend):
            pass
    cfg = parse_config({"memory": {"enabled": False}, "hosts": {"alpha": {"colour": "red"}}})
    with pytest.raises(ConfigError, match=r"hosts\.alpha\.colour"):
        async with Runtime(cfg, personas=[MAYA], backend=backend, host_classes=HOSTS):
            pass


async def test_policy_per_host_and_per_room(tmp_path):
    """[policy] for every room, a host's own defaults, [policies.<host>] and
    [policies."<host>:<room>"] on top, in that order."""

    class Quiet(RecordingHost):  # a host whose rooms answer only when addressed
        name = "quiet"
        default_policy: ClassVar[dict] = {"require_mention": True}

    backend = ScriptedBackend(lambda req: "hi")
    cfg = config(
        tmp_path,
        hosts={"alpha": {}, "beta": {}, "quiet": {}},
        policies={"beta": {"require_mention": True}, "alpha:calm": {"require_mention": True}},
    )
    hosts = {**HOSTS, "quiet": Quiet}
    async with Runtime(cfg, personas=[MAYA], backend=backend, host_classes=hosts) as rt:

        async def replies(host: str, room: str) -> int:
            turn = await rt.deliver(host, text_envelope("hello", host=host, room_id=room))
            await turn.wait()
            return len(turn.replies)

        assert await replies("alpha", "room") == 1  # [policy]: direct, no mention needed
        assert await replies("alpha", "calm") == 0  # that one room only
        assert await replies("beta", "room") == 0  # the whole host
        assert await replies("quiet", "room") == 0  # the host's default
        assert rt.policy_for("alpha:room").cognition == "direct"  # [policy] still applies
    override = {"quiet": {"require_mention": False}}
    cfg = config(tmp_path / "2", hosts={"quiet": {}}, policies=override)
    async with Runtime(cfg, personas=[MAYA], backend=backend, host_classes=hosts) as rt:
        turn = await rt.deliver("quiet", text_envelope("hello", host="quiet"))
        await turn.wait()
        assert len(turn.replies) == 1  # [policies.quiet] overrides the host's default


def test_a_bad_room_policy_names_its_field(tmp_path):
    with pytest.raises(ConfigError, match=r"policies\.beta\.cognition"):
        config(tmp_path, policies={"beta": {"cognition": "loud"}})


async def test_a_redelivery_after_a_restart_is_answered_once_and_echoes_are_ours(tmp_path):
    """The platform delivers the same message again (its retry after our restart): the
    message map knows (host, host message id), so it is a duplicate, not a second turn.
    A persona's own post coming back as an event is recognised as ours."""
    backend = ScriptedBackend(lambda req: "hi")
    first = text_envelope("hello", host="alpha", author="u1", host_message_id="h-1")
    async with runtime(tmp_path, backend) as rt:
        turn = await rt.deliver("alpha", first)
        assert len(await turn.wait()) == 1
        posted = rt.host("alpha").replies[0].host_message_id
        again = await rt.deliver("alpha", first.model_copy(update={"id": "another-id"}))
        assert again.outcome == "duplicate" and "already delivered" in again.reason
        echo = text_envelope("hi", host="alpha", author="u2", host_message_id=posted)
        echoed = await rt.deliver("alpha", echo)
        assert echoed.outcome == "duplicate" and "our own posts" in echoed.reason
    async with runtime(tmp_path, backend) as rt:  # a new process, the same data dir
        retry = await rt.deliver("alpha", first.model_copy(update={"id": "third-id"}))
        assert retry.outcome == "duplicate"
        assert rt.host("alpha").replies == []
    assert len(backend.requests) == 1


async def test_a_turn_handle_says_how_the_message_ended(tmp_path):
    """A host that answers requests gets an outcome and a reason, never a hang."""
    from continuum.hosts.base import TurnHandle

    backend = ScriptedBackend(lambda req: "hi")
    async with runtime(tmp_path, backend, personas=(MAYA, OTTO), policy={"cognition": "direct",
                       "require_mention": True}) as rt:  # fmt: skip
        turn = await rt.deliver("alpha", text_envelope("hello", host="alpha", mentions=("maya",)))
        await turn.wait()
        assert isinstance(turn, TurnHandle)
        assert (turn.outcome, turn.reason) == ("answered", "")
        quiet = await rt.deliver("alpha", text_envelope("hello again", host="alpha"))
        await quiet.wait()
        assert quiet.outcome == "silent" and "not mentioned" in quiet.reason


def test_the_starter_config_loads(tmp_path):
    """What `continuum init` writes, `continuum serve` reads (before: an escaped newline in
    a comment became a real one, and the file did not parse)."""
    import subprocess
    import sys

    from continuum.config import STARTER_CONFIG, load_config

    path = tmp_path / "continuum.toml"
    subprocess.run([sys.executable, "-m", "continuum", "init", "--config", str(path)], check=True)
    assert path.read_text() == STARTER_CONFIG
    config = load_config(path)
    assert config.host_names()


async def test_stopped_while_thinking_the_message_is_answered_after_the_restart(tmp_path):
    """SIGTERM while the room still thinks (nothing posted yet): the message stays
    pending and the next start answers it (before: it was marked done, never answered)."""
    gate = anyio.Event()  # never set: the model is still thinking at the stop

    class Thinking(ScriptedBackend):
        async def complete(self, request, on_token=None):
            await gate.wait()
            return await super().complete(request, on_token)

    rt = runtime(tmp_path, Thinking(lambda req: "late"), runtime={"shutdown_grace_s": 0.05})
    async with rt:
        turn = await rt.deliver("alpha", text_envelope("are you there?", host="alpha"))
        await anyio.sleep(0.1)
    assert turn.outcome == "cancelled" and "after the restart" in turn.reason
    async with runtime(tmp_path, ScriptedBackend(lambda req: "Here now.")) as rt2:
        await rt2.turns[turn.message_id].wait()
        assert [r.text for r in rt2.host("alpha").replies] == ["Here now."]


async def test_addressing_by_thread_and_by_reply_survives_a_restart(tmp_path):
    """A thread Maya started addresses Maya, and so does a reply to one of her messages,
    from the persisted message map (before: Slack kept thread owners in memory)."""
    from continuum.envelope import ReplyTarget

    backend = ScriptedBackend(lambda req: "hi")
    asked = text_envelope("Maya, hello", host="alpha", mentions=("maya",)).model_copy(
        update={"reply_to": ReplyTarget(host="alpha", channel="c1", thread="t-9")}
    )
    async with runtime(tmp_path, backend, personas=(MAYA, OTTO)) as rt:
        await (await rt.deliver("alpha", asked)).wait()
        posted = rt.host("alpha").replies[0].host_message_id
    async with runtime(tmp_path, backend, personas=(MAYA, OTTO)) as rt:
        services = rt.host("alpha").services
        assert services.addressed("and then?", channel="c1", thread="t-9") == ("maya",)
        assert services.addressed("and then?", channel="c2", thread="t-9") == ()
        assert services.addressed("really?", replying_to=posted) == ("maya",)
        assert services.addressed("Otto, really?", replying_to=posted) == ("otto",)


async def test_a_sealed_room_is_recalled_only_in_that_room(tmp_path):
    """An editor workspace is sealed: what Sam said about repo A comes back in repo A, and
    nowhere else, not even for Sam (before: the asker's own words were recalled anywhere)."""
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted.")
    async with runtime(tmp_path, backend, policy={"cognition": "direct", "recall_k": 5}) as rt:

        async def say(text: str, room: str, visibility: str = "sealed") -> str:
            e = text_envelope(text, host="alpha", author="u1", room_id=room)
            e = e.model_copy(update={"visibility": visibility})
            await (await rt.deliver("alpha", e)).wait()
            await rt.hippocampus.drain()
            _, found, recalled = seen[-1].partition("Things you remember")
            return recalled if found else ""

        await say("Please remember that this repo indents with tabs, never spaces.", "repo-a")
        assert "tabs" in await say("How does this repo indent?", "repo-a")
        assert "tabs" not in await say("How does this repo indent?", "repo-b")
        assert "tabs" not in await say("How do we indent?", "general", visibility="public")


async def test_the_core_honours_a_host_instances_capabilities(tmp_path):
    """Capabilities are read from the host instance (an LSP client negotiates them): no
    streaming → one write, then finish; no typing → no typing calls."""
    from continuum.hosts.base import HostCapabilities

    class Plain(RecordingHost):
        name = "alpha"

        def __init__(self, services, config=None):
            super().__init__(services, config)
            self.capabilities = HostCapabilities(streaming=False, typing=False)
            self.typing_calls = 0

        async def typing(self, reply_to, persona_id):
            self.typing_calls += 1

    backend = ScriptedBackend(lambda req: "one two three four five", token_delay_s=0.001)
    rt = Runtime(config(tmp_path), personas=[MAYA], backend=backend,
                 host_classes={"alpha": Plain, "beta": Beta})  # fmt: skip
    async with rt:
        await (await rt.deliver("alpha", text_envelope("hi", host="alpha"))).wait()
        [reply] = rt.host("alpha").replies
        assert reply.deltas == ["one two three four five"] and reply.finished
        assert rt.host("alpha").typing_calls == 0


async def test_a_buffered_sink_splits_at_the_hosts_limit_and_reports_every_post():
    from continuum.hosts.base import BufferedReplySink

    posts: list[str] = []

    async def post(text: str) -> str:
        posts.append(text)
        return f"p{len(posts)}"

    sink = BufferedReplySink(post, max_chars=40)
    reported: list[str] = []
    sink.watch_posts(reported.append)
    words = " ".join(f"word{i}" for i in range(30))
    await sink.write(words)
    assert await sink.finish() == "p1"
    assert len(posts) > 1 and all(len(p) <= 40 for p in posts)
    assert " ".join(posts).split() == words.split()
    assert reported == [f"p{i + 1}" for i in range(len(posts))]


async def test_after_a_link_what_was_said_before_it_is_recalled_and_unlink_undoes_it(
    tmp_path,
):
    """Sam tells Maya something in a DM on alpha, then links alpha and beta: on beta,
    Maya recalls it for Sam (before: the memory kept the old teller id, and only the
    new person id was searched); unlinking takes it away again."""
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "Noted.")
    policy = {"cognition": "direct", "recall_k": 5}
    async with runtime(tmp_path, backend, policy=policy) as rt:

        async def say(host: str, user: str, text: str) -> str:
            e = text_envelope(text, host=host, author=user, room_id=f"dm-{user}")
            await (await rt.deliver(host, e.model_copy(update={"visibility": "dm"}))).wait()
            await rt.hippocampus.drain()
            return seen[-1].partition("Things you remember")[2]

        await say("alpha", "u1", "Please remember that my sister Ada lives in Lisbon.")
        assert "Lisbon" not in await say("beta", "u9", "Where does my sister Ada live?")
        sam_a = text_envelope("x", host="alpha", author="u1").author
        sam_b = text_envelope("x", host="beta", author="u9").author
        code = (await rt.host("alpha").services.submit(
            CommandEvent(host="alpha", room_id="r", name="link", author=sam_a)
        )).data["code"]  # fmt: skip
        linked = await rt.host("beta").services.submit(
            CommandEvent(host="beta", room_id="r", name="link", args=(code,), author=sam_b)
        )
        assert linked.ok
        assert "Lisbon" in await say("beta", "u9", "Where does my sister Ada live now?")
        rt.people.unlink("alpha:u1")
        assert "Lisbon" not in await say("beta", "u9", "And where does my sister Ada live?")
