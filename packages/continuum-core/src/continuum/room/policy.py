"""RoomPolicy: who answers what, and how (validated, frozen; a ``[policy]`` table in
continuum.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RoomPolicy(BaseModel):
    """Persona and bot messages never trigger persona turns, so personas cannot loop on
    each other; a person's message gets at most ``max_persona_turns_per_message`` persona
    turns (invited specialists included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cognition: Literal["shared", "direct"] = "shared"  # shared needs >= 2 personas
    # a message that names personas ("Maya, ...", /continuum ask maya, a reply to Maya's
    # message): "direct" = only they answer, each from its own prompt; "shared" = it goes
    # through shared cognition with everyone (the mention only raises their score)
    addressed: Literal["direct", "shared"] = "direct"
    require_mention: bool = False
    max_persona_turns_per_message: int = Field(default=4, ge=0)
    cooldown_s: float = Field(default=0.0, ge=0.0)  # unmentioned personas wait this long
    quorum: int = Field(default=1, ge=0)  # voices a person's message gets even if none pass
    # the quorum's best fit must score this far above the room's median, else nobody is
    # made to answer (0: a question always gets its best fit's voice; 0.15 maximised F1 on
    # bench/eval's calibration set, and silences questions nobody clearly fits)
    quorum_stand_out: float = Field(default=0.0, ge=0.0)
    # the gate's bar on specialty similarity; None: the embedder's calibrated bar
    # (bench/eval/gate_calibration.py)
    relevance_threshold: float | None = None
    exhausted_below: float = Field(default=0.1, ge=0.0, le=1.0)  # energy: declines below
    reply_max_tokens: int = Field(default=160, gt=0)
    analysis_max_tokens: int = Field(default=256, gt=0)
    # shared cognition's model passes: "model" = the shared analysis and each persona's
    # lever planning run on the model; "gate" = who speaks is the gate's decision alone
    # and each persona renders straight from the message (no analysis, no levers) — a
    # voice room's default, where seconds of JSON before the first word are too slow
    deliberation: Literal["model", "gate"] = "model"
    # after a turn is answered, the other personas' warm slots are brought up to date with
    # it in the background (lowest priority), so the next turn of any of them evaluates
    # only its own new message — a voice room's default, where every token evaluated
    # after the person stops is heard as delay
    keep_warm: bool = False
    plan_max_tokens: int = Field(default=64, gt=0)
    max_think_budget: int = Field(default=256, ge=0)
    # cedeFloorTo / inviteSpecialist are honoured when the target's relevance score is at
    # least this fraction of the bar (or it was mentioned or picked by the analysis)
    lever_fit: float = Field(default=0.5, ge=0.0)
    # on a parallel backend the others start once the lead has streamed this many deltas
    build_on_after_tokens: int = Field(default=16, ge=1)
    recall_k: int = Field(default=3, ge=0)
    stream_deltas: bool = True
    stale_after_s: float = Field(default=300.0, gt=0)  # unmentioned text waiting longer: let go
    max_pending: int = Field(default=256, ge=1)  # messages waiting for the floor
    # "room": a persona keeps one KV slot per room it is in (its history differs per room;
    # a new room starts from the persona's shared stable prefix). "persona": one slot per
    # persona across rooms (rooms evict each other's history) — the old keying.
    slot_scope: Literal["room", "persona"] = "room"
