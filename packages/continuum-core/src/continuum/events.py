"""A room's observable event stream (the coordination stream)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum.backends.base import InferenceMetrics
from continuum.cognition.analysis import SharedAnalysis
from continuum.envelope import RoomMessage, utc_now
from continuum.thinking import ThinkBlock

log = logging.getLogger("continuum.events")


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)
    room_id: str
    at: datetime = Field(default_factory=utc_now)


class MessageReceived(_Event):
    type: Literal["message_received"] = "message_received"
    message: RoomMessage
    visibility: Literal["dm", "private", "public", "sealed"] = "public"  # as the host says


class MessageTaken(_Event):
    """A message got the room's floor: the personas start on it now."""

    type: Literal["message_taken"] = "message_taken"
    message_id: str


class TurnStarted(_Event):
    type: Literal["turn_started"] = "turn_started"
    persona_id: str
    phase: Literal["analyzing", "planning", "rendering"] = "rendering"


class ReplyDelta(_Event):
    type: Literal["reply_delta"] = "reply_delta"
    persona_id: str
    text: str


class ReplyPosted(_Event):
    type: Literal["reply_posted"] = "reply_posted"
    persona_id: str
    message: RoomMessage
    metrics: InferenceMetrics
    recalled: tuple[str, ...] = ()  # memories that were in this turn's prompt
    volatile_tokens: int = 0  # the prompt's VOLATILE tier (what a warm turn may evaluate)


class ThinkBlockEmitted(_Event):
    type: Literal["think_block"] = "think_block"
    think: ThinkBlock


class PersonaSilent(_Event):
    type: Literal["persona_silent"] = "persona_silent"
    persona_id: str
    reason: str


class TurnFailed(_Event):
    type: Literal["turn_failed"] = "turn_failed"
    persona_id: str
    error: str


class AnalysisPosted(_Event):
    """The shared analysis of a message (or a deeper look a persona asked for)."""

    type: Literal["analysis_posted"] = "analysis_posted"
    message_id: str
    analysis: SharedAnalysis
    metrics: InferenceMetrics | None = None
    focus: str | None = None  # set for requestDeeperAnalysis passes


class LeverPulled(_Event):
    """A persona called a lever on its own cognition; ``effect`` says what the room did."""

    type: Literal["lever_pulled"] = "lever_pulled"
    persona_id: str
    message_id: str
    lever: str
    args: dict[str, str | int] = Field(default_factory=dict)
    effect: str


class PersonaStateChanged(_Event):
    type: Literal["persona_state"] = "persona_state"
    persona_id: str
    energy: float
    mood: float
    mood_label: str
    inbox: int
    reason: str


class ReputationChanged(_Event):
    type: Literal["reputation_changed"] = "reputation_changed"
    persona_id: str
    message_id: str
    positive: bool
    trust: float


class PersonaUpdated(_Event):
    type: Literal["persona_updated"] = "persona_updated"
    persona_id: str


class ProfileUpdated(_Event):
    type: Literal["profile_updated"] = "profile_updated"
    persona_id: str


class MemoryWritten(_Event):
    type: Literal["memory_written"] = "memory_written"
    persona_id: str
    what: Literal["journal", "profile"] = "journal"


class MessageShed(_Event):
    """A message was not answered because the runtime was overloaded or stopping."""

    type: Literal["message_shed"] = "message_shed"
    message_id: str
    reason: str


class MediaBridged(_Event):
    """A message's audio or images reached the model as they are (``direct``) or as text
    (``stt``, ``describe``, ``told``), at this many speech-to-text / description calls."""

    type: Literal["media_bridged"] = "media_bridged"
    message_id: str
    path: Literal["direct", "stt", "describe", "told"]
    stt_calls: int = 0
    describe_calls: int = 0


class HistoryEdited(_Event):
    type: Literal["history_edited"] = "history_edited"
    message_id: str


RoomEvent = Annotated[
    MessageReceived
    | MessageTaken
    | TurnStarted
    | ReplyDelta
    | ReplyPosted
    | ThinkBlockEmitted
    | PersonaSilent
    | TurnFailed
    | AnalysisPosted
    | LeverPulled
    | PersonaStateChanged
    | ReputationChanged
    | PersonaUpdated
    | ProfileUpdated
    | HistoryEdited
    | MessageShed
    | MediaBridged
    | MemoryWritten,
    Field(discriminator="type"),
]
Subscriber = Callable[[RoomEvent], None]


class EventLog:
    """Keeps the recent events and calls subscribers synchronously, in order."""

    def __init__(self, keep: int = 2000) -> None:
        self.recent: deque[RoomEvent] = deque(maxlen=keep)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:  # idempotent
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: RoomEvent) -> None:
        self.recent.append(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # one bad subscriber must not stop the room
                log.exception("event subscriber failed on %s", event.type)

    def of_type(self, kind: type[_Event]) -> list[RoomEvent]:
        return [e for e in self.recent if isinstance(e, kind)]
