"""Slack events in continuum's terms: which room, how public, who is addressed.

A channel is a room; a thread is its own room (``<channel>:<thread ts>``); a DM is a room
with one person. Personas share one bot user, so their names are not @-mentionable:
a persona is addressed by its name in the text ("Maya, ..."), by
``/continuum ask <persona> ...``, or by replying in a thread that persona started
(``HostServices.addressed``: one rule for every host, kept across restarts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from continuum.envelope import Visibility

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)(\|([^>]+))?>")


def room_of(channel: str, thread_ts: str | None = None, ts: str | None = None) -> str:
    """The room a message belongs to: its thread if it is a reply in one."""
    if thread_ts and thread_ts != ts:
        return f"{channel}:{thread_ts}"
    return channel


def visibility_of(channel_type: str | None) -> Visibility | None:
    """How public a conversation is, from the platform's own word: an event's
    ``channel_type`` ("channel", "group", "im", "mpim"); None when it does not say (the
    host then asks ``conversations.info``). Never guessed from the channel id: a private
    channel's id can start with C."""
    if channel_type == "im":
        return "dm"
    if channel_type in ("mpim", "group", "private_channel"):
        return "private"
    if channel_type in ("channel", "public_channel"):
        return "public"
    return None


def visibility_of_info(info: dict[str, Any]) -> Visibility:
    """conversations.info's channel object: is_im, is_mpim, is_private; public only when
    it says so (is_channel and not is_private), private when unsure."""
    if info.get("is_im"):
        return "dm"
    if info.get("is_mpim") or info.get("is_private") or info.get("is_group"):
        return "private"
    if info.get("is_channel") and info.get("is_private") is False:
        return "public"
    return "private"


def message_id(channel: str, ts: str) -> str:
    """The host message id continuum maps: unique across channels."""
    return f"{channel}:{ts}"


def clean_text(text: str, bot_user_id: str | None, names: dict[str, str]) -> str:
    """Slack markup to plain words: the bot's own mention dropped, other users' mentions
    as @name, links as their text."""

    def user(m: re.Match[str]) -> str:
        if m.group(1) == bot_user_id:
            return ""
        return "@" + names.get(m.group(1), m.group(1))

    text = _USER_MENTION.sub(user, text)
    text = _LINK.sub(lambda m: m.group(3) or m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def file_notes(files: Sequence[dict[str, Any]] | None) -> list[str]:
    """What a persona is told about files it does not get: documents, a bot's files, media
    over the size cap or off Slack's file host (fetched audio and images go to the media
    bridge instead: continuum_slack.files)."""
    notes = []
    for f in files or ():
        name = f.get("name") or f.get("title") or "a file"
        mime = str(f.get("mimetype") or "")
        kind = (
            "an image"
            if mime.startswith("image/")
            else "audio"
            if mime.startswith("audio/")
            else "a file"
        )
        notes.append(f"(shared {kind}: {name} — you cannot open it here)")
    return notes
