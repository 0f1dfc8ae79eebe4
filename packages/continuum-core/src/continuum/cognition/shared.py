"""Shared cognition for one room message: analyse once, gate, plan (levers), render.

Phases on the coordination stream: analyzing (one base-model pass) → planning (each
persona that passed the relevance gate writes its lever calls) → rendering (the lead
first, streamed; the others see what was already said and build on it, disagree, or
withhold) → posted.

The flow sees its room only through :class:`CognitionRoom` (what it reads and the few
calls it makes), so this module does not import the room.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from continuum.backends.base import (
    AdapterUse,
    Backend,
    CompletionRequest,
    GenerationSettings,
    Priority,
    SlotKey,
)
from continuum.cognition.analysis import SharedAnalysis, analyze
from continuum.cognition.gate import GateScore, RelevanceGate, needs_answer
from continuum.cognition.levers import (
    CedeFloorTo,
    ClaimLead,
    EscalateToOwnThinkPass,
    InviteSpecialist,
    Plan,
    RequestCrossDomainAdapter,
    RequestDeeperAnalysis,
    RequestThinkBudget,
    SeekDisagreement,
    WithholdContribution,
    parse_plan,
    plan_schema,
)
from continuum.cognition.state import PersonaState
from continuum.compose import ComposedPrompt
from continuum.envelope import Envelope, Participant, PersonaReply, RoomMessage
from continuum.errors import ContinuumError
from continuum.events import (
    AnalysisPosted,
    EventLog,
    LeverPulled,
    PersonaSilent,
    ReplyDelta,
    TurnFailed,
    TurnStarted,
)
from continuum.hosts.base import ReplySink, ReplyStart
from continuum.media.placeholder import media_of
from continuum.persona import Persona
from continuum.prompt_sources import Recipe
from continuum.thinking import split_think

log = logging.getLogger("continuum.cognition")

ReplyCallback = Callable[[PersonaReply], Awaitable[None]]
ReplyOpener = Callable[[ReplyStart], Awaitable[ReplySink]]


class CognitionRoom(Protocol):
    """What shared cognition reads of a room and the calls it makes."""

    id: str
    backend: Backend
    events: EventLog
    gate: RelevanceGate
    shared_recipe: Recipe
    history: list[RoomMessage]
    personas: Mapping[str, Persona]
    participants: Mapping[str, Participant]

    @property
    def policy(self) -> Any: ...  # RoomPolicy

    def state(self, persona_id: str) -> PersonaState: ...

    def finish_item(self, persona_id: str, message_id: str, outcome: str) -> None: ...

    def slot_for(self, persona: Persona, extra: Sequence[AdapterUse] = ()) -> SlotKey: ...

    def adapters_for(
        self, persona: Persona, extra: Sequence[AdapterUse] = ()
    ) -> tuple[AdapterUse, ...]: ...

    def library(self) -> dict[str, AdapterUse]: ...

    def compose(
        self,
        persona: Persona,
        upto: int | None = None,
        recipe: Recipe | None = None,
        **extra: Any,
    ) -> ComposedPrompt: ...

    async def render_turn(
        self,
        persona: Persona,
        envelope: Envelope,
        composed: ComposedPrompt,
        *,
        max_tokens: int,
        topics: list[str],
        min_tokens: int = 0,
        raw_prefix: str = "",
        replies: ReplyOpener | None = None,
        extra_adapters: Sequence[AdapterUse] = (),
    ) -> PersonaReply: ...

    async def post_status(
        self,
        persona: Persona,
        envelope: Envelope,
        text: str,
        replies: ReplyOpener | None = None,
    ) -> PersonaReply: ...


PLAN_INSTRUCTION = (
    'Plan your contribution as JSON. If you will simply reply, answer {"levers": []}.'
)
CONTESTED_INSTRUCTION = (
    "Several specialists can answer this and it invites different views. Plan your "
    "contribution as JSON with exactly one lever: claimLead if your view should come first, "
    "seekDisagreement to ask for a contrasting view, cedeFloorTo if another specialist "
    "should answer instead, withholdContribution if you have nothing to add."
)
CONTESTED_LEVERS = ("claimLead", "seekDisagreement", "cedeFloorTo", "withholdContribution")
# a question that asks for a decision or a judgement: where specialists can disagree
_DECISION = re.compile(
    r"\b(should (we|i)\b[^?]*\bor\b|is it (worth|safe|better|wise)|worth it|\bvs\.?\b|"
    r"versus|better than|trade-?offs?|pros and cons|or (is|should|would) (it|that|we)|risk)",
    re.IGNORECASE,
)


def find_adapter(library: Mapping[str, AdapterUse], skill: str) -> AdapterUse | None:
    """The library adapter a requested skill names: its id, or an id containing it."""
    wanted = skill.strip().lower()
    if not wanted:
        return None
    exact = {k.lower(): v for k, v in library.items()}
    if wanted in exact:
        return exact[wanted]
    return next((v for k, v in sorted(exact.items()) if wanted in k or k in wanted), None)


def contested(text: str, analysis: SharedAnalysis, passing: int) -> bool:
    """Several personas passed the gate on a question of judgement: a disagreement is
    likely worth surfacing."""
    return passing >= 2 and (bool(_DECISION.search(text)) or len(analysis.suggested_angles) >= 2)


THINK_INSTRUCTION = (
    "First think the message through inside <think></think> (what was said, the key "
    "concepts, the angles), then reply as {name} in one or two sentences."
)


def render_instruction(persona: Persona, building_on: bool, disagree: bool) -> str:
    specialty = f" ({persona.specialty})" if persona.specialty else ""
    text = (
        f"Now reply as {persona.name} in one or two sentences. Add only what your "
        f"specialty{specialty} adds; do not repeat the analysis."
    )
    if disagree:
        text += " Give a contrasting view to what was said."
    elif building_on:
        text += " Build on what was already said, or disagree with it."
    return text


@dataclass
class Directive:
    """How one persona renders this message (defaults, changed by levers)."""

    persona: Persona
    score: GateScore | None = None
    invited_by: str | None = None
    disagree: bool = False
    escalate: bool = False  # own full think pass instead of rendering from the analysis
    think_budget: int = 0
    levers: list[str] = field(default_factory=list)
    extra_adapters: list[AdapterUse] = field(default_factory=list)  # cross-domain skills


class SharedCognition:
    """Runs one message through a room's personas. Stateless apart from the room."""

    def __init__(self, room: CognitionRoom) -> None:
        self.room = room

    # --- helpers -------------------------------------------------------------------------

    def _silent(self, persona_id: str, reason: str) -> None:
        self.room.events.emit(
            PersonaSilent(room_id=self.room.id, persona_id=persona_id, reason=reason)
        )

    def _lever(self, persona_id: str, message_id: str, call: object, effect: str) -> None:
        args = {k: v for k, v in call.model_dump().items() if k != "lever"}  # type: ignore[attr-defined]
        self.room.events.emit(
            LeverPulled(
                room_id=self.room.id,
                persona_id=persona_id,
                message_id=message_id,
                lever=call.lever,  # type: ignore[attr-defined]
                args=args,
                effect=effect,
            )
        )

    # --- the flow ------------------------------------------------------------------------

    async def respond(
        self,
        envelope: Envelope,
        message: RoomMessage,
        candidates: Sequence[Persona],
        on_reply: ReplyCallback | None,
        replies: ReplyOpener | None = None,
    ) -> list[PersonaReply]:
        room, policy = self.room, self.room.policy
        upto = room.history.index(message)
        fast = policy.deliberation == "gate"
        async with anyio.create_task_group() as tg:  # embeddings while the analyst runs
            tg.start_soon(room.gate.prepare, candidates, message.text)
            if fast:  # the gate alone decides; personas render from the message
                analysis = SharedAnalysis(said=f"{message.author.name}: {message.text}")
            else:
                analysis = await self._analyze(message, upto)
        now = time.time()
        states = {p.id: room.state(p.id) for p in candidates}
        for state in states.values():
            state.rest_until(now)
        scores = room.gate.score(candidates, message.text, analysis, states, envelope.mentions)

        out: list[PersonaReply] = []
        directives: list[Directive] = []
        below: list[GateScore] = []
        for s in scores:
            persona, state = room.personas[s.persona_id], states[s.persona_id]
            if state.energy < policy.exhausted_below:
                if s.mentioned:  # asked directly: say why, without spending a model call
                    out.append(
                        await room.post_status(persona, envelope, state.how_i_feel(), replies)
                    )
                    if on_reply is not None:
                        await on_reply(out[-1])
                self._silent(persona.id, f"declined: {state.how_i_feel()}")
                room.finish_item(persona.id, message.id, "declined: exhausted")
            elif s.passes:
                directives.append(Directive(persona=persona, score=s))
            else:
                below.append(s)
        # quorum: a person's message gets at least this many voices (best scores first) —
        # unless it needs no answer ("ok", "thanks, that's all") and names nobody: then none
        heard = needs_answer(message.text) if message.text.strip() else bool(message.parts)
        answer_needed = heard or any(s.mentioned for s in scores)
        quorum = policy.quorum if answer_needed else 0
        if not answer_needed:  # "ok", "cool", "bye all" to a room: nobody is owed a reply
            for d in directives:
                self._silent(d.persona.id, "no reply needed (an acknowledgement)")
                room.finish_item(d.persona.id, message.id, "silent: acknowledgement")
            directives = []
        while below and len(directives) < quorum and room.gate.best_fit_ok(scores, below[0]):
            s = below.pop(0)
            directives.append(Directive(persona=room.personas[s.persona_id], score=s))
            room.events.emit(
                LeverPulled(
                    room_id=room.id,
                    persona_id=s.persona_id,
                    message_id=message.id,
                    lever="quorum",
                    effect=f"room policy (quorum): best match answers; {s.reason()}",
                )
            )
        for s in below:
            why = "" if answer_needed else "no reply needed (an acknowledgement); "
            self._silent(s.persona_id, f"{why}below the relevance bar: {s.reason()}")
            room.finish_item(s.persona_id, message.id, "silent: not relevant")
        directives = self._bound(directives, message.id)

        plans: dict[str, Plan] = {}
        disputed = contested(message.text, analysis, len(directives))
        for d in list(directives):
            if fast:
                plans[d.persona.id] = Plan()
                continue
            plans[d.persona.id] = await self._plan(d.persona, message, upto, analysis, disputed)
        analysis, directives, lead = await self._apply_levers(
            directives, plans, analysis, message, upto, scores
        )
        if room.backend.parallel and len(directives) > 1:
            out += await self._render_overlapped(
                directives, envelope, message, upto, analysis, lead, on_reply, replies
            )
            return out
        for d in directives:
            reply = await self._render(d, envelope, message, upto, analysis, lead, replies)
            out.append(reply)
            if on_reply is not None:
                await on_reply(reply)
        return out

    async def _render_overlapped(
        self,
        directives: list[Directive],
        envelope: Envelope,
        message: RoomMessage,
        upto: int,
        analysis: SharedAnalysis,
        lead: str | None,
        on_reply: ReplyCallback | None,
        replies: ReplyOpener | None,
    ) -> list[PersonaReply]:
        """Streaming build-on on a backend that runs slots in parallel: the lead renders;
        once it has streamed ``build_on_after_tokens`` deltas the others start, seeing
        the lead's reply so far (visible text, marked as still in progress)."""
        room = self.room
        first, rest = directives[0], directives[1:]
        so_far: list[str] = []
        started = anyio.Event()
        done: list[PersonaReply] = []

        def watch(event: object) -> None:
            if isinstance(event, ReplyDelta) and event.persona_id == first.persona.id:
                so_far.append(event.text)
                if len(so_far) >= room.policy.build_on_after_tokens:
                    started.set()

        async def lead_turn() -> None:
            try:
                reply = await self._render(first, envelope, message, upto, analysis, lead, replies)
            finally:
                started.set()  # a short or failed lead reply releases the others too
            done.append(reply)
            if on_reply is not None:
                await on_reply(reply)

        unsubscribe = room.events.subscribe(watch)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lead_turn)
                await started.wait()
                unsubscribe()
                in_flight = None
                if not done:
                    text, _ = split_think("".join(so_far))
                    in_flight = RoomMessage(
                        author=room.participants[first.persona.id],
                        text=text.strip() + " … (still speaking)",
                    )
                for d in rest:
                    reply = await self._render(
                        d, envelope, message, upto, analysis, lead, replies, in_flight=in_flight
                    )
                    done.append(reply)
                    if on_reply is not None:
                        await on_reply(reply)
        finally:
            unsubscribe()
        return done

    def _bound(self, directives: list[Directive], message_id: str) -> list[Directive]:
        limit = self.room.policy.max_persona_turns_per_message
        for d in directives[limit:]:
            self._silent(d.persona.id, f"room turn bound reached ({limit} per message)")
            self.room.finish_item(d.persona.id, message_id, "silent: turn bound")
        return directives[:limit]

    async def _analyze(
        self, message: RoomMessage, upto: int, focus: str | None = None
    ) -> SharedAnalysis:
        room = self.room
        room.events.emit(TurnStarted(room_id=room.id, persona_id="_analyst", phase="analyzing"))
        try:
            result = await analyze(
                room.backend,
                room.id,
                list(room.personas.values()),
                room.history[:upto],
                message,
                max_tokens=room.policy.analysis_max_tokens,
                focus=focus,
            )
        except ContinuumError as exc:
            # The room goes on: personas render from the message itself.
            log.warning("shared analysis failed in %s: %s", room.id, exc)
            room.events.emit(TurnFailed(room_id=room.id, persona_id="_analyst", error=str(exc)))
            analysis = SharedAnalysis(said=f"{message.author.name}: {message.text}", parsed=False)
            room.events.emit(
                AnalysisPosted(room_id=room.id, message_id=message.id, analysis=analysis)
            )
            return analysis
        room.events.emit(
            AnalysisPosted(
                room_id=room.id,
                message_id=message.id,
                analysis=result.analysis,
                metrics=result.metrics,
                focus=focus,
            )
        )
        return result.analysis

    async def _plan(
        self,
        persona: Persona,
        message: RoomMessage,
        upto: int,
        analysis: SharedAnalysis,
        disputed: bool = False,
    ) -> Plan:
        """The persona's planning pass. On a contested question the grammar asks for exactly
        one of the levers that shape a disagreement (a 135M model never volunteers one)."""
        room = self.room
        room.events.emit(TurnStarted(room_id=room.id, persona_id=persona.id, phase="planning"))
        others = [p for p in room.personas if p != persona.id]
        composed = room.compose(
            persona,
            upto,
            room.shared_recipe,
            analysis=analysis.render(),
            instruction=CONTESTED_INSTRUCTION if disputed else PLAN_INSTRUCTION,
        )
        request = CompletionRequest(
            prompt=composed.prompt,
            slot=room.slot_for(persona),
            adapters=room.adapters_for(persona),
            media=media_of(composed.prompt, room.history),
            settings=GenerationSettings(
                max_tokens=room.policy.plan_max_tokens, temperature=0.0, repeat_penalty=1.0
            ),
            json_schema=plan_schema(
                others,
                CONTESTED_LEVERS if disputed else None,
                skills=sorted(set(room.library()) - {u.id for u in room.adapters_for(persona)}),
            ),
            priority=Priority.RENDER,
        )
        try:
            completion = await room.backend.complete(request)
        except ContinuumError as exc:
            log.warning("%s could not plan: %s (no levers)", persona.id, exc)
            return Plan(parsed=False)
        return parse_plan(completion.text, others)

    async def _apply_levers(
        self,
        directives: list[Directive],
        plans: dict[str, Plan],
        analysis: SharedAnalysis,
        message: RoomMessage,
        upto: int,
        scores: list[GateScore],
    ) -> tuple[SharedAnalysis, list[Directive], str | None]:
        room, policy = self.room, self.room.policy
        by_id = {d.persona.id: d for d in directives}
        lead: str | None = directives[0].persona.id if directives else None
        claimed = False
        deeper_done = False
        score_of = {s.persona_id: s for s in scores}

        def plausible(target: str) -> bool:
            """A lever that hands the floor to someone is honoured when that persona fits
            the message at least somewhat (``lever_fit`` of the bar, or a mention): a small
            model's planning pass (and its analyst's picks) otherwise name anyone."""
            s = score_of.get(target)
            if s is None:
                return False
            return s.mentioned or s.score >= policy.lever_fit * s.bar

        def invite(target: str, by: str, disagree: bool = False) -> str:
            if target in by_id:
                if disagree:
                    by_id[target].disagree = True
                return f"{target} already answers" + (" (asked to disagree)" if disagree else "")
            if len(by_id) >= policy.max_persona_turns_per_message:
                return f"not invited: room turn bound ({policy.max_persona_turns_per_message})"
            state = room.state(target)
            if state.energy < policy.exhausted_below:
                return f"not invited: {target} is exhausted"
            d = Directive(
                persona=room.personas[target],
                score=score_of.get(target),
                invited_by=by,
                disagree=disagree,
            )
            by_id[target] = d
            directives.append(d)
            return f"{target} invited"

        for persona_id in [d.persona.id for d in directives]:
            plan = plans.get(persona_id, Plan())
            d = by_id.get(persona_id)
            if d is None:
                continue
            for call in plan.levers:
                d.levers.append(call.lever)
                if isinstance(call, WithholdContribution):
                    by_id.pop(persona_id, None)
                    directives.remove(d)
                    reason = call.reason or "nothing to add"
                    self._silent(persona_id, f"withheld: {reason}")
                    room.finish_item(persona_id, message.id, "withheld")
                    self._lever(persona_id, message.id, call, "silent this message")
                    break
                target = score_of.get(getattr(call, "persona", ""))
                mine = score_of.get(persona_id)
                outclassed = (  # the persona ceding fits far better than its pick
                    isinstance(call, CedeFloorTo)
                    and policy.lever_fit > 0
                    and target is not None
                    and mine is not None
                    and not target.mentioned
                    and target.score < 0.5 * mine.score
                )
                if isinstance(call, CedeFloorTo | InviteSpecialist) and (
                    not plausible(call.persona) or outclassed
                ):
                    fit = (
                        f"score {target.score:.2f} vs bar {target.bar:.2f}" if target else "unknown"
                    )
                    if outclassed and mine is not None:
                        fit += f"; {persona_id} fits better ({mine.score:.2f})"
                    self._lever(
                        persona_id,
                        message.id,
                        call,
                        f"refused: {call.persona} does not fit this message ({fit})",
                    )
                    continue
                if isinstance(call, CedeFloorTo):
                    by_id.pop(persona_id, None)
                    directives.remove(d)
                    effect = invite(call.persona, persona_id)
                    if lead == persona_id or call.persona in by_id:
                        lead = call.persona if call.persona in by_id else lead
                    self._silent(persona_id, f"ceded the floor to {call.persona}")
                    room.finish_item(persona_id, message.id, "ceded")
                    self._lever(persona_id, message.id, call, f"silent; {effect}; lead {lead}")
                    break
                if isinstance(call, ClaimLead):
                    if claimed:
                        self._lever(persona_id, message.id, call, f"refused: {lead} claimed first")
                    else:
                        claimed, lead = True, persona_id
                        self._lever(persona_id, message.id, call, "leads this message")
                elif isinstance(call, InviteSpecialist):
                    self._lever(persona_id, message.id, call, invite(call.persona, persona_id))
                elif isinstance(call, SeekDisagreement):
                    target = self._contrasting(persona_id, by_id)
                    if target is None:
                        self._lever(persona_id, message.id, call, "no contrasting specialist")
                    else:
                        effect = invite(target, persona_id, disagree=True)
                        self._lever(persona_id, message.id, call, effect)
                elif isinstance(call, RequestDeeperAnalysis):
                    if deeper_done:
                        self._lever(persona_id, message.id, call, "refused: one deeper look")
                        continue
                    deeper_done = True
                    focus = call.angle or "what the first analysis missed"
                    extra = await self._analyze(message, upto, focus=focus)
                    analysis = analysis.model_copy(
                        update={"deeper": (*analysis.deeper, extra.said or focus)}
                    )
                    self._lever(persona_id, message.id, call, f"deeper analysis of '{focus}'")
                elif isinstance(call, EscalateToOwnThinkPass):
                    d.escalate = True
                    self._lever(persona_id, message.id, call, "renders from its own think pass")
                elif isinstance(call, RequestThinkBudget):
                    granted = max(0, min(call.tokens, policy.max_think_budget))
                    d.think_budget = granted
                    self._lever(persona_id, message.id, call, f"granted {granted} think tokens")
                elif isinstance(call, RequestCrossDomainAdapter):
                    use = find_adapter(room.library(), call.skill)
                    if use is None:
                        effect = f"no adapter for {call.skill!r} in this room's genome"
                    elif use.id in {u.id for u in room.adapters_for(d.persona)}:
                        effect = f"{use.id} is already active"
                    else:
                        d.extra_adapters.append(use)
                        effect = f"paged in {use.id} for this render"
                    self._lever(persona_id, message.id, call, effect)
        if lead is not None and lead in by_id:
            directives.sort(key=lambda d: d.persona.id != lead)
        else:
            lead = directives[0].persona.id if directives else None
        return analysis, directives, lead

    def _contrasting(self, persona_id: str, answering: dict[str, Directive]) -> str | None:
        """The quiet persona whose specialty is least like the puller's."""
        room = self.room
        quiet = [p for p in room.personas.values() if p.id not in answering and p.id != persona_id]
        if not quiet:
            others = [p for p in answering if p != persona_id]
            return others[0] if others else None
        gate = room.gate
        me = gate.persona_vector(room.personas[persona_id])
        if me is None:
            return quiet[0].id
        return min(quiet, key=lambda p: float(gate.persona_vector(p) @ me)).id  # type: ignore[operator]

    async def _render(
        self,
        d: Directive,
        envelope: Envelope,
        message: RoomMessage,
        upto: int,
        analysis: SharedAnalysis,
        lead: str | None,
        replies: ReplyOpener | None = None,
        in_flight: RoomMessage | None = None,
    ) -> PersonaReply:
        room, policy = self.room, self.room.policy
        persona = d.persona
        build_on = tuple(m for m in room.history[upto + 1 :] if m.author.id != persona.id)
        if in_flight is not None and all(m.author.id != in_flight.author.id for m in build_on):
            build_on = (in_flight, *build_on)
        think = d.escalate or d.think_budget > 0
        # an analysis that adds nothing to the message (the gate alone decided: a voice
        # room) is left out, and a persona answering alone renders its own turn, as if
        # named: its warm slot holds everything before the message (kept warm after each
        # turn), so it evaluates the message alone, not ~50 tokens more that repeat it
        plain = analysis.adds_nothing and not (think or build_on or d.disagree)
        if think:
            instruction = THINK_INSTRUCTION.format(name=persona.name)
        elif plain:
            instruction = ""
        else:
            instruction = render_instruction(persona, bool(build_on), d.disagree)
        extra_tokens = policy.analysis_max_tokens if d.escalate else d.think_budget
        composed = room.compose(
            persona,
            upto,
            room.shared_recipe,
            analysis="" if d.escalate or analysis.adds_nothing else analysis.render(),
            build_on=build_on,
            instruction=instruction,
        )
        return await room.render_turn(
            persona,
            envelope,
            composed,
            max_tokens=policy.reply_max_tokens + extra_tokens,
            topics=analysis.topics,
            replies=replies,
            extra_adapters=d.extra_adapters,
        )
