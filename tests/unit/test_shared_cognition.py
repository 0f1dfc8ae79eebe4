"""Shared cognition orchestration with a scripted backend: phases, the gate, every lever's
effect, the cascade bound, lead ordering, think-block isolation, persona state. The model
behaviour of the same flow is tested in tests/model/test_shared_cognition_model.py."""

from __future__ import annotations

import json
import time

import pytest

from continuum.backends.base import CompletionRequest, Priority
from continuum.cognition.gate import RelevanceGate
from continuum.cognition.state import Inbox, InboxItem, PersonaState, PersonaStateStore
from continuum.envelope import (
    AudioPart,
    Envelope,
    Participant,
    ParticipantKind,
    ReplyTarget,
    TextPart,
)
from continuum.errors import BackendError, UnknownMessage
from continuum.events import (
    AnalysisPosted,
    LeverPulled,
    PersonaSilent,
    ReplyPosted,
    ReputationChanged,
    ThinkBlockEmitted,
    TurnStarted,
)
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from tests.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.anyio

JUNO = Persona(
    id="juno",
    name="Juno",
    identity="A security reviewer.",
    specialty="security",
    expertise=("security", "password", "attack"),
)
MAYA = Persona(
    id="maya",
    name="Maya",
    identity="A performance engineer.",
    specialty="performance",
    expertise=("latency", "cache", "profiling"),
)
OTTO = Persona(
    id="otto",
    name="Otto",
    identity="An archivist.",
    specialty="history",
    expertise=("history", "clock", "archive"),
)
ALL = [JUNO, MAYA, OTTO]
ANALYSIS = {
    "said": "A question.",
    "key_concepts": ["question"],
    "relevant_context": "",
    "suggested_angles": [],
    "specialists": [],
}


def envelope(text: str, author: Participant | None = None, **kw: object) -> Envelope:
    return Envelope(
        host="test",
        room_id="r",
        author=author or Participant(id="u", name="Uma"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="test", channel="r"),
        **kw,
    )


def kind(req: CompletionRequest) -> str:
    assert req.slot is not None
    if req.slot.persona_id.startswith("_analyst"):
        return "analysis"
    if req.json_schema is not None:
        return "plan"
    return "render"


class Script:
    """Answers analysis, plan and render requests; records them by kind."""

    def __init__(
        self,
        plans: dict[str, list[dict]] | None = None,
        renders: dict[str, str] | None = None,
    ) -> None:
        self.plans = plans or {}
        self.renders = renders or {}
        self.calls: list[tuple[str, str, CompletionRequest]] = []

    def __call__(self, req: CompletionRequest) -> str:
        k = kind(req)
        who = req.slot.persona_id if req.slot else ""
        self.calls.append((k, who, req))
        if k == "analysis":
            return json.dumps(ANALYSIS)
        if k == "plan":
            return json.dumps({"levers": self.plans.get(who, [])})
        return self.renders.get(who, f"{who} adds something.")

    def of(self, k: str, who: str | None = None) -> list[CompletionRequest]:
        return [r for kk, w, r in self.calls if kk == k and (who is None or w == who)]

    def order(self, k: str) -> list[str]:
        return [w for kk, w, _ in self.calls if kk == k]


def make_room(script: Script, personas=ALL, **policy: object) -> Room:
    policy.setdefault("lever_fit", 0.0)  # these tests are about what each lever does
    return Room(
        "r",
        personas,
        ScriptedBackend(script),
        policy=RoomPolicy(**policy),
        gate=RelevanceGate(None),  # expertise words only: deterministic for these tests
    )


def silent_reasons(room: Room) -> dict[str, str]:
    return {e.persona_id: e.reason for e in room.events.of_type(PersonaSilent)}


def levers(room: Room) -> list[tuple[str, str, str]]:
    return [(e.persona_id, e.lever, e.effect) for e in room.events.of_type(LeverPulled)]


async def test_phases_analysis_once_then_plans_then_renders():
    script = Script()
    room = make_room(script)
    replies = await room.handle(envelope("Is storing a password in plain text an attack risk?"))
    assert [r.persona_id for r in replies] == ["juno"]
    assert len(script.of("analysis")) == 1
    analysis_req = script.of("analysis")[0]
    assert analysis_req.priority == Priority.ANALYSIS and analysis_req.slot.adapters == ()
    phases = [(e.persona_id, e.phase) for e in room.events.of_type(TurnStarted)]
    assert phases == [("_analyst", "analyzing"), ("juno", "planning"), ("juno", "rendering")]
    assert len(room.events.of_type(AnalysisPosted)) == 1
    # the render reuses the plan's prompt up to the instruction (same slot, same prefix)
    plan, render = script.of("plan", "juno")[0], script.of("render", "juno")[0]
    cut = plan.prompt.index("Plan your contribution")
    assert render.prompt[:cut] == plan.prompt[:cut]
    assert "Shared analysis of the new message: A question." in render.prompt


async def test_irrelevant_personas_stay_silent_with_the_reason():
    script = Script()
    room = make_room(script)
    await room.handle(envelope("Our cache latency doubled."))
    reasons = silent_reasons(room)
    assert set(reasons) == {"juno", "otto"}
    assert all("below the relevance bar" in r for r in reasons.values())
    assert script.order("plan") == ["maya"] and script.order("render") == ["maya"]


async def test_quorum_gives_a_person_one_voice_and_zero_allows_silence():
    script = Script()
    room = make_room(script)
    replies = await room.handle(envelope("What should I cook tonight?"))
    assert len(replies) == 1
    assert any(lever == "quorum" for _, lever, _ in levers(room))
    assert replies[0].persona_id not in silent_reasons(room)
    assert len(silent_reasons(room)) == 2
    script2 = Script()
    room2 = make_room(script2, quorum=0)
    assert await room2.handle(envelope("What should I cook tonight?")) == []
    assert script2.order("render") == [] and len(script2.of("analysis")) == 1


async def test_withhold_contribution():
    script = Script(plans={"juno": [{"lever": "withholdContribution", "reason": "covered"}]})
    room = make_room(script)
    assert await room.handle(envelope("password attack?")) == []
    assert silent_reasons(room)["juno"] == "withheld: covered"
    assert levers(room) == [("juno", "withholdContribution", "silent this message")]


async def test_cede_floor_to_makes_the_target_answer_and_lead():
    script = Script(plans={"juno": [{"lever": "cedeFloorTo", "persona": "otto"}]})
    room = make_room(script)
    replies = await room.handle(envelope("password attack?"))
    assert [r.persona_id for r in replies] == ["otto"]
    assert silent_reasons(room)["juno"] == "ceded the floor to otto"
    (_, lever, effect), *_ = levers(room)
    assert lever == "cedeFloorTo" and "otto invited" in effect and "lead otto" in effect


async def test_claim_lead_reorders_renders_and_others_build_on_the_lead():
    script = Script(
        plans={"maya": [{"lever": "claimLead"}]},
        renders={"maya": "Profile first.", "juno": "Then check auth."},
    )
    room = make_room(script)
    # juno matches two expertise words and scores first; maya claims the lead anyway
    replies = await room.handle(envelope("password attack makes latency worse?"))
    assert [r.persona_id for r in replies] == ["maya", "juno"]
    juno_render = script.of("render", "juno")[0].prompt
    assert "Already said about it:\nMaya (persona): Profile first." in juno_render
    assert "Build on what was already said" in juno_render


async def test_second_claim_is_refused():
    script = Script(plans={"maya": [{"lever": "claimLead"}], "juno": [{"lever": "claimLead"}]})
    room = make_room(script)
    replies = await room.handle(envelope("password attack makes latency worse?"))
    assert replies[0].persona_id == "juno"  # planned first, claimed first
    assert any("refused" in effect for who, _, effect in levers(room) if who == "maya")


async def test_a_message_addressed_to_a_persona_is_answered_by_that_persona():
    """Before: addressing Otto still ran shared cognition, and Juno (whose expertise the
    words matched) answered too. Addressed personas answer; the rest stay silent."""
    script = Script()
    room = make_room(script)
    e = envelope("@otto password attack?", mentions=("otto",))
    replies = await room.handle(e)
    assert [r.persona_id for r in replies] == ["otto"]
    reasons = silent_reasons(room)
    assert all("not addressed" in reasons[p] for p in ("juno", "maya"))
    two = await room.handle(envelope("otto and maya: attack?", mentions=("otto", "maya")))
    assert sorted(r.persona_id for r in two) == ["maya", "otto"]


async def test_addressed_shared_lets_the_mentioned_persona_lead_the_room():
    script = Script()
    room = make_room(script, addressed="shared")
    e = envelope("@otto password attack?", mentions=("otto",))
    replies = await room.handle(e)
    assert [r.persona_id for r in replies] == ["otto", "juno"]


async def test_invite_specialist_and_seek_disagreement():
    script = Script(plans={"juno": [{"lever": "inviteSpecialist", "persona": "otto"}]})
    room = make_room(script)
    replies = await room.handle(envelope("password attack?"))
    assert [r.persona_id for r in replies] == ["juno", "otto"]
    assert levers(room)[0][2] == "otto invited"

    script = Script(plans={"juno": [{"lever": "seekDisagreement"}]})
    room = make_room(script)
    replies = await room.handle(envelope("password attack?"))
    assert len(replies) == 2 and replies[0].persona_id == "juno"
    contrarian = replies[1].persona_id
    assert "Give a contrasting view" in script.of("render", contrarian)[0].prompt


async def test_deeper_analysis_escalation_and_think_budget():
    script = Script(plans={"juno": [{"lever": "requestDeeperAnalysis", "angle": "hashing"}]})
    room = make_room(script)
    await room.handle(envelope("password attack?"))
    analyses = script.of("analysis")
    assert len(analyses) == 2 and "Look deeper at this angle only: hashing" in analyses[1].prompt
    assert [e.focus for e in room.events.of_type(AnalysisPosted)] == [None, "hashing"]
    assert "Deeper look: A question." in script.of("render", "juno")[0].prompt

    script = Script(plans={"juno": [{"lever": "escalateToOwnThinkPass"}]})
    room = make_room(script, reply_max_tokens=40, analysis_max_tokens=100)
    await room.handle(envelope("password attack?"))
    render = script.of("render", "juno")[0]
    assert "Shared analysis" not in render.prompt and "<think></think>" in render.prompt
    assert render.settings.max_tokens == 140

    script = Script(plans={"juno": [{"lever": "requestThinkBudget", "tokens": 5000}]})
    room = make_room(script, reply_max_tokens=40, max_think_budget=300)
    await room.handle(envelope("password attack?"))
    assert script.of("render", "juno")[0].settings.max_tokens == 340
    assert levers(room)[0][2] == "granted 300 think tokens"


async def test_cross_domain_adapter_pages_a_skill_in_for_the_render():
    from continuum.persona import AdapterRef

    maya = MAYA.model_copy(update={"adapters": (AdapterRef(id="perf", path="/x/perf.gguf"),)})
    script = Script(
        plans={
            "juno": [{"lever": "requestCrossDomainAdapter", "skill": "perf"}],
        }
    )
    room = make_room(script, personas=[JUNO, maya, OTTO])
    replies = await room.handle(envelope("password attack?"))
    assert [r.persona_id for r in replies] == ["juno"]
    (_, lever, effect), *_ = levers(room)
    assert lever == "requestCrossDomainAdapter" and effect == "paged in perf for this render"
    [plan] = script.of("plan", "juno")
    skills = next(
        v["properties"]["skill"]
        for v in plan.json_schema["properties"]["levers"]["items"]["anyOf"]
        if v["properties"]["lever"]["const"] == "requestCrossDomainAdapter"
    )
    assert skills["enum"] == ["perf"]  # the grammar only offers adapters that exist
    [render] = script.of("render", "juno")
    assert [u.id for u in render.adapters] == ["perf"] and render.slot.adapters == ("perf",)
    assert plan.slot.adapters == ()  # the plan ran on juno's own (base) slot
    script2 = Script(plans={"juno": [{"lever": "requestCrossDomainAdapter", "skill": "crypto"}]})
    room2 = make_room(script2)
    await room2.handle(envelope("password attack?"))
    (_, _, effect), *_ = levers(room2)
    assert effect == "no adapter for 'crypto' in this room's genome"


async def test_plan_naming_a_stranger_or_garbage_means_no_levers():
    script = Script(plans={"juno": [{"lever": "cedeFloorTo", "persona": "nobody"}]})
    room = make_room(script)
    assert [r.persona_id for r in await room.handle(envelope("password attack?"))] == ["juno"]
    assert levers(room) == []


async def test_cascade_bound_counts_invites_and_persona_messages_start_nothing():
    script = Script(
        plans={
            "juno": [
                {"lever": "inviteSpecialist", "persona": "otto"},
                {"lever": "inviteSpecialist", "persona": "maya"},
            ]
        }
    )
    room = make_room(script, max_persona_turns_per_message=2)
    replies = await room.handle(envelope("password attack?"))
    assert len(replies) == 2
    assert "turn bound" in levers(room)[1][2]
    before = len(script.calls)
    persona = Participant(id="juno", name="Juno", kind=ParticipantKind.PERSONA)
    bot = Participant(id="b", name="Bot", kind=ParticipantKind.BOT)
    for author in (persona, bot):
        assert await room.handle(envelope("password attack? @maya", author=author)) == []
    assert len(script.calls) == before  # no analysis, no plans, no renders


async def test_require_mention_and_cooldown():
    script = Script()
    room = make_room(script, require_mention=True)
    assert await room.handle(envelope("password attack?")) == []
    assert "requires a mention" in silent_reasons(room)["juno"]

    script = Script()
    room = make_room(script, cooldown_s=600)
    await room.handle(envelope("password attack?"))
    await room.handle(envelope("another password attack?"))
    assert script.order("render").count("juno") == 1  # the quorum voice is someone else
    assert "cooling down" in silent_reasons(room)["juno"]


async def test_think_blocks_never_reach_another_persona_or_the_analyst():
    script = Script(
        plans={"juno": [{"lever": "inviteSpecialist", "persona": "maya"}]},
        renders={"juno": "<think>secret plan 42</think>Rotate the keys."},
    )
    room = make_room(script)
    await room.handle(envelope("password attack?"))
    await room.handle(envelope("and the cache?"))
    thinks = room.events.of_type(ThinkBlockEmitted)
    assert [t.think.text for t in thinks] == ["secret plan 42"]
    for k, who, req in script.calls:
        if who != "juno":
            assert "secret plan" not in req.prompt, (k, who)
    maya = script.of("render", "maya")[0].prompt
    assert "Juno (persona): Rotate the keys." in maya


async def test_dead_backend_analysis_and_render_failures_keep_the_room_going():
    def reply(req: CompletionRequest) -> str:
        if kind(req) == "analysis":
            raise BackendError("connection refused")
        if kind(req) == "plan":
            return '{"levers": []}'
        raise BackendError("timed out")

    room = Room("r", ALL, ScriptedBackend(reply), gate=RelevanceGate(None))
    replies = await room.handle(envelope("password attack?"))
    assert len(replies) == 1 and replies[0].error
    assert "can't think right now" in replies[0].message.text
    assert "timed out" not in replies[0].message.text
    analysis = room.events.of_type(AnalysisPosted)[0].analysis
    assert not analysis.parsed and "password attack?" in analysis.said


async def test_energy_falls_with_work_persists_and_a_tired_persona_says_so(tmp_path):
    store = PersonaStateStore(tmp_path)
    script = Script()
    room = Room("r", ALL, ScriptedBackend(script), gate=RelevanceGate(None), state_store=store)
    await room.handle(envelope("password attack?"))
    juno = room.state("juno")
    assert juno.energy < 1.0 and juno.reputation.contributions == 1 and len(juno.inbox) == 0
    # exhausted, and the restart keeps it
    juno.energy = 0.05
    juno.updated_at = time.time()
    store.save(juno)
    script = Script()
    store.flush()  # what a runtime does at shutdown (writes are otherwise debounced)
    restarted = PersonaStateStore(tmp_path)  # a new process reads the files
    room2 = Room("r", ALL, ScriptedBackend(script), gate=RelevanceGate(None), state_store=restarted)
    assert room2.state("juno").energy == pytest.approx(0.05, abs=0.01)
    replies = await room2.handle(envelope("@juno password attack?", mentions=("juno",)))
    assert replies[0].persona_id == "juno"
    assert "running low on energy" in replies[0].message.text
    assert script.of("plan", "juno") == [] and script.of("render", "juno") == []
    assert "declined" in silent_reasons(room2)["juno"]


async def test_tiredness_raises_the_bar():
    gate = RelevanceGate(None)
    from continuum.cognition.analysis import SharedAnalysis

    rested = PersonaState(persona_id="juno")
    tired = PersonaState(persona_id="juno", energy=0.2)
    a = SharedAnalysis()
    fresh = gate.score([JUNO], "password", a, {"juno": rested})[0]
    worn = gate.score([JUNO], "password", a, {"juno": tired})[0]
    assert fresh.passes and not worn.passes and worn.bar > fresh.bar


async def test_reactions_build_reputation_that_the_gate_uses():
    script = Script()
    room = make_room(script)
    replies = await room.handle(envelope("password attack?"))
    message_id = replies[0].message.id
    for _ in range(3):
        room.react(message_id, positive=True)
    rep = room.state("juno").reputation
    assert rep.successful == 1 and rep.positive_reactions == 3 and rep.trust == 0.8
    assert rep.proficiency["question"] > 0.5  # the analysis topic of that reply
    assert len(room.events.of_type(ReputationChanged)) == 3
    from continuum.cognition.analysis import SharedAnalysis

    a = SharedAnalysis(key_concepts=("question",))
    before = room.gate.score([JUNO], "x", a, {"juno": PersonaState(persona_id="juno")})[0]
    after = room.gate.score([JUNO], "x", a, {"juno": room.state("juno")})[0]
    assert after.score > before.score
    with pytest.raises(UnknownMessage):
        room.react("nope", positive=True)


def test_inbox_priority_aging_and_voice_never_dropped():
    now = 1000.0

    def item(i: str, **kw: object) -> InboxItem:
        base = {"room_id": "r", "sender_kind": ParticipantKind.PERSON, "received_at": now}
        return InboxItem(message_id=i, **{**base, **kw})

    inbox = Inbox(capacity=2)
    assert inbox.push(item("voice", modality="voice"), now) is None
    assert inbox.push(item("bot", sender_kind=ParticipantKind.BOT), now) is None
    dropped = inbox.push(item("mention", mentioned=True), now)
    assert dropped is not None and dropped.message_id == "bot"
    assert [i.message_id for i in inbox.ordered(now)] == ["voice", "mention"]
    # a full inbox of voice items grows rather than drop one
    voices = Inbox(capacity=1)
    voices.push(item("v1", modality="voice"), now)
    assert voices.push(item("v2", modality="voice"), now) is None and len(voices) == 2
    # an old persona item ages above a fresh bot item
    old = item("old", sender_kind=ParticipantKind.PERSONA, received_at=now - 600)
    fresh = item("fresh", sender_kind=ParticipantKind.BOT)
    assert old.priority(now) > fresh.priority(now)


async def test_voice_messages_enter_the_inbox_as_voice():
    room = make_room(Script())
    e = Envelope(
        host="test",
        room_id="r",
        author=Participant(id="u", name="Uma"),
        parts=(AudioPart(data=b"RIFF"), TextPart(text="password attack?")),
        reply_to=ReplyTarget(host="test", channel="r"),
    )
    room.receive(e)
    room.enqueue(JUNO, e)
    assert room.state("juno").inbox.items[0].modality == "voice"


def test_broken_state_file_is_kept_aside_and_state_starts_fresh(tmp_path):
    store = PersonaStateStore(tmp_path)
    store.path("juno").write_text("{not json")
    assert store.load("juno").energy == 1.0
    assert (tmp_path / "juno.json.bad").exists()


async def test_every_reply_is_posted_once_on_the_stream():
    script = Script(plans={"juno": [{"lever": "inviteSpecialist", "persona": "maya"}]})
    room = make_room(script)
    replies = await room.handle(envelope("password attack?"))
    posted = [e.persona_id for e in room.events.of_type(ReplyPosted)]
    assert posted == [r.persona_id for r in replies] == ["juno", "maya"]


class StreamingParallel(ScriptedBackend):
    """A backend whose slots run in parallel and whose renders stream word by word."""

    parallel = True

    async def complete(self, request, on_token=None):  # type: ignore[override]
        import anyio

        if kind(request) != "render":
            return await super().complete(request, on_token)
        text = self.reply(request)
        self.requests.append(request)
        for word in text.split(" "):
            await anyio.sleep(0.005)
            if on_token:
                on_token(word + " ")
        return await super().complete(request.model_copy(), None)


async def test_others_build_on_the_lead_while_it_is_still_streaming():
    lead_text = " ".join(f"w{i}" for i in range(40))
    script = Script(
        plans={"juno": [{"lever": "inviteSpecialist", "persona": "maya"}]},
        renders={"juno": lead_text, "maya": "Building on that."},
    )
    room = Room(
        "r",
        ALL,
        StreamingParallel(script),
        policy=RoomPolicy(build_on_after_tokens=10, lever_fit=0.0),
        gate=RelevanceGate(None),
    )
    replies = await room.handle(envelope("password attack?"))
    assert {r.persona_id for r in replies} == {"juno", "maya"}
    maya_prompt = script.of("render", "maya")[0].prompt
    assert "Juno (persona): w0 w1 w2" in maya_prompt and "(still speaking)" in maya_prompt
    assert "w39" not in maya_prompt  # it started before the lead finished
    assert replies[0].persona_id == "maya"  # the short reply finished first


class Slow(ScriptedBackend):
    async def complete(self, request, on_token=None):  # type: ignore[override]
        import anyio

        await anyio.sleep(0.01)
        return await super().complete(request, on_token)


async def test_concurrent_messages_take_the_floor_in_priority_order():
    import anyio

    script = Script()
    policy = RoomPolicy(quorum=1, addressed="shared")  # the order of the floor, not addressing
    room = Room("r", ALL, Slow(script), gate=RelevanceGate(None), policy=policy)
    order: list[str] = []

    async def send(e: Envelope) -> None:
        await room.handle(e, on_reply=lambda r: _record(order, e.id))

    first = envelope("password attack?").model_copy(update={"id": "first"})
    plain = envelope("cache latency?").model_copy(update={"id": "plain"})
    mention = envelope("@otto archive?", mentions=("otto",)).model_copy(update={"id": "mention"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(send, first)
        await anyio.sleep(0.005)  # first has the floor; the other two queue
        tg.start_soon(send, plain)
        await anyio.sleep(0.001)
        tg.start_soon(send, mention)
        await anyio.sleep(0.001)
        assert len(room.state("otto").inbox) >= 1  # queued work shows in the inbox
    assert [o for i, o in enumerate(order) if o not in order[:i]] == ["first", "mention", "plain"]
    # replies follow their own message in the history; nobody built on a later message
    ids = [m.id for m in room.history if m.author.kind == ParticipantKind.PERSON]
    assert ids == ["first", "mention", "plain"]
    starts = [i for i, (k, _, _) in enumerate(script.calls) if k == "analysis"]
    for _, _, req in script.calls[starts[0] : starts[1]]:  # everything for "first"
        assert "archive?" not in req.prompt and "cache latency?" not in req.prompt


async def _record(order: list[str], message_id: str) -> None:
    order.append(message_id)


async def test_stale_unmentioned_messages_are_let_go():
    import anyio

    room = Room(
        "r", ALL, Slow(Script()), gate=RelevanceGate(None), policy=RoomPolicy(stale_after_s=0.001)
    )

    async with anyio.create_task_group() as tg:
        tg.start_soon(room.handle, envelope("password attack?"))
        await anyio.sleep(0)
        tg.start_soon(room.handle, envelope("another password attack?"))
    reasons = [e.reason for e in room.events.of_type(PersonaSilent)]
    assert any(r.startswith("let go: the message waited") for r in reasons)


async def test_rooms_sharing_a_store_share_one_persona_state(tmp_path):
    store = PersonaStateStore(tmp_path)
    rooms = [
        Room(f"r{i}", ALL, ScriptedBackend(Script()), gate=RelevanceGate(None), state_store=store)
        for i in range(2)
    ]
    await rooms[0].handle(envelope("password attack?"))
    await rooms[1].handle(envelope("password attack?"))
    assert rooms[0].state("juno") is rooms[1].state("juno")
    assert rooms[1].state("juno").reputation.contributions == 2
    store.flush()
    assert PersonaStateStore(tmp_path).load("juno").reputation.contributions == 2


async def test_a_lone_render_in_a_gate_room_is_the_personas_own_turn():
    """The gate alone decided (a voice room): no analysis repeats the message, no
    instruction follows it, so the render's prompt is the persona's own turn — what its
    warm slot was kept up to date for, all but the message itself."""
    script = Script()
    room = make_room(script, deliberation="gate")
    replies = await room.handle(envelope("password attack?"))
    assert [r.persona_id for r in replies] == ["juno"] and not script.of("analysis")
    (render,) = script.of("render", "juno")
    assert "Shared analysis" not in render.prompt and "Now reply as" not in render.prompt
    upto = next(i for i, m in enumerate(room.history) if m.text == "password attack?")
    assert render.prompt == room.compose(JUNO, upto, room.turn_recipe).prompt
