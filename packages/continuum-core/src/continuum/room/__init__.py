"""Rooms: history, floor and policy (``room.py``), one turn runner for every persona turn
(``turn.py``), and the room's policy (``policy.py``)."""

from continuum.room.policy import RoomPolicy
from continuum.room.room import Room, TurnResult
from continuum.room.turn import ReplyOpener, TurnRunner

__all__ = ["ReplyOpener", "Room", "RoomPolicy", "TurnResult", "TurnRunner"]
