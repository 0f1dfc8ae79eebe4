"""The shape a Slack Events API request must have before Bolt sees it.

A request can carry a valid signature and still be malformed (a replayed body from a
buggy proxy, a test tool, a signing secret that leaked): Bolt then raised inside its own
middleware and aiohttp answered 500 with a traceback in the log. Anything that is not a
JSON object of Slack's shape gets a 400 with one line; a well-shaped event goes on to
Bolt, which checks the signature and timestamp as before.
"""

from __future__ import annotations

import json
from typing import Any

_STRING_FIELDS = (
    "type",
    "subtype",
    "channel",
    "channel_type",
    "user",
    "text",
    "ts",
    "thread_ts",
    "event_ts",
    "bot_id",
    "username",
    "reaction",
    "deleted_ts",
)


def _event_problem(event: Any, where: str) -> str | None:
    if not isinstance(event, dict):
        return f"{where} is not an object"
    for name in _STRING_FIELDS:
        if name in event and event[name] is not None and not isinstance(event[name], str):
            return f"{where}.{name} is not a string"
    if "type" not in event:
        return f"{where} has no type"
    files = event.get("files")
    if files is not None and (
        not isinstance(files, list) or not all(isinstance(f, dict) for f in files)
    ):
        return f"{where}.files is not a list of objects"
    for name in ("item", "message", "previous_message"):
        if name in event and event[name] is not None:
            if not isinstance(event[name], dict):
                return f"{where}.{name} is not an object"
            if name != "item" and (
                problem := _event_problem({"type": "message", **event[name]}, f"{where}.{name}")
            ):
                return problem
    return None


def malformed(body: bytes) -> str | None:
    """Why a JSON Events API body cannot be a Slack event, or None if it can."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    if not isinstance(payload, dict):
        return "the body is not a JSON object"
    kind = payload.get("type")
    if not isinstance(kind, str):
        return "type is not a string"
    if kind == "url_verification":
        return None if isinstance(payload.get("challenge"), str) else "challenge is missing"
    if kind == "event_callback":
        return _event_problem(payload.get("event"), "event")
    return None
