"""Levers: tools a persona calls on its own cognition, as grammar-constrained JSON.

In its short planning pass a persona writes ``{"levers": [...]}``; each call is one of the
models below (the grammar only lets it name personas that are in the room). The room
applies them and reports every call and its effect on the coordination stream. With no
lever pulled the default policies fire (lead = best specialty match, render from the
shared analysis with the room's reply budget).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

log = logging.getLogger("continuum.cognition.levers")


class _Lever(BaseModel):
    model_config = ConfigDict(frozen=True)


class RequestDeeperAnalysis(_Lever):
    lever: Literal["requestDeeperAnalysis"] = "requestDeeperAnalysis"
    angle: str = Field(default="", max_length=80)


class EscalateToOwnThinkPass(_Lever):
    lever: Literal["escalateToOwnThinkPass"] = "escalateToOwnThinkPass"


class CedeFloorTo(_Lever):
    lever: Literal["cedeFloorTo"] = "cedeFloorTo"
    persona: str


class ClaimLead(_Lever):
    lever: Literal["claimLead"] = "claimLead"


class RequestThinkBudget(_Lever):
    lever: Literal["requestThinkBudget"] = "requestThinkBudget"
    tokens: int = 0


class InviteSpecialist(_Lever):
    lever: Literal["inviteSpecialist"] = "inviteSpecialist"
    persona: str


class SeekDisagreement(_Lever):
    lever: Literal["seekDisagreement"] = "seekDisagreement"


class WithholdContribution(_Lever):
    lever: Literal["withholdContribution"] = "withholdContribution"
    reason: str = Field(default="", max_length=120)


class RequestCrossDomainAdapter(_Lever):
    lever: Literal["requestCrossDomainAdapter"] = "requestCrossDomainAdapter"
    skill: str = Field(default="", max_length=60)


LeverCall = Annotated[
    RequestDeeperAnalysis
    | EscalateToOwnThinkPass
    | CedeFloorTo
    | ClaimLead
    | RequestThinkBudget
    | InviteSpecialist
    | SeekDisagreement
    | WithholdContribution
    | RequestCrossDomainAdapter,
    Field(discriminator="lever"),
]
LEVER_NAMES: tuple[str, ...] = (
    "requestDeeperAnalysis",
    "escalateToOwnThinkPass",
    "cedeFloorTo",
    "claimLead",
    "requestThinkBudget",
    "inviteSpecialist",
    "seekDisagreement",
    "withholdContribution",
    "requestCrossDomainAdapter",
)


class Plan(BaseModel):
    """What a persona decided in its planning pass."""

    model_config = ConfigDict(frozen=True)

    levers: tuple[LeverCall, ...] = ()
    parsed: bool = True

    def first(self, kind: type[_Lever]) -> Any:
        return next((c for c in self.levers if isinstance(c, kind)), None)


_plan_adapter = TypeAdapter(tuple[LeverCall, ...])

LEVER_MENU = """\
Before you reply you may call levers on your own thinking, as JSON {"levers": [...]}:
- {"lever": "withholdContribution", "reason": "..."}: stay silent; your specialty adds nothing.
- {"lever": "cedeFloorTo", "persona": "<id>"}: another specialist should answer instead.
- {"lever": "claimLead"}: you should speak first.
- {"lever": "inviteSpecialist", "persona": "<id>"}: bring in a specialist who is quiet.
- {"lever": "seekDisagreement"}: ask for a contrasting view.
- {"lever": "requestDeeperAnalysis", "angle": "..."}: the shared analysis missed something.
- {"lever": "escalateToOwnThinkPass"}: think it through yourself, not from the analysis.
- {"lever": "requestThinkBudget", "tokens": 200}: you need more room to think.
- {"lever": "requestCrossDomainAdapter", "skill": "..."}: you need a skill you lack.
Most of the time call none: {"levers": []}."""


def plan_schema(
    others: Sequence[str],
    exactly_one_of: Sequence[str] | None = None,
    skills: Sequence[str] = (),
) -> dict[str, Any]:
    """The grammar for a planning pass: at most two lever calls; persona arguments are
    limited to the other personas in the room. With ``exactly_one_of``: one call, one of
    those levers."""
    persona: dict[str, Any] = (
        {"type": "string", "enum": sorted(others)} if others else {"type": "string", "enum": [""]}
    )

    def call(name: str, **props: dict[str, Any]) -> dict[str, Any]:
        properties = {"lever": {"const": name}, **props}
        return {"type": "object", "properties": properties, "required": list(properties)}

    variants = [
        call("withholdContribution", reason={"type": "string", "maxLength": 60}),
        call("cedeFloorTo", persona=persona),
        call("claimLead"),
        call("inviteSpecialist", persona=persona),
        call("seekDisagreement"),
        call("requestDeeperAnalysis", angle={"type": "string", "maxLength": 40}),
        call("escalateToOwnThinkPass"),
        call("requestThinkBudget", tokens={"type": "integer"}),
        call(
            "requestCrossDomainAdapter",
            skill={"type": "string", "enum": list(skills)}
            if skills
            else {"type": "string", "maxLength": 30},
        ),
    ]
    if exactly_one_of:
        if not others:  # nobody to cede to or disagree with
            exactly_one_of = [
                n for n in exactly_one_of if n in ("claimLead", "withholdContribution")
            ]
        chosen = [v for v in variants if v["properties"]["lever"]["const"] in exactly_one_of]
        array = {"type": "array", "items": {"anyOf": chosen}, "minItems": 1, "maxItems": 1}
        return {"type": "object", "properties": {"levers": array}, "required": ["levers"]}
    return {
        "type": "object",
        "properties": {"levers": {"type": "array", "items": {"anyOf": variants}, "maxItems": 2}},
        "required": ["levers"],
    }


def parse_plan(text: str, others: Sequence[str]) -> Plan:
    """Validate a planning pass; invalid or cut-off output means no levers (defaults fire)."""
    try:
        data = json.loads(text, strict=False)
        calls = _plan_adapter.validate_python(data.get("levers", []))
    except (ValueError, AttributeError, ValidationError) as exc:
        log.warning("plan did not validate (%s); no levers", exc)
        return Plan(parsed=False)
    allowed = set(others)
    targeted = (CedeFloorTo, InviteSpecialist)
    kept = tuple(c for c in calls if not isinstance(c, targeted) or c.persona in allowed)
    return Plan(levers=kept)
