"""Discord messages as continuum sees them: rooms, visibility, clean text, who is talking.

A text channel is a room (its id), a thread its own room (the thread's id), a DM a room
with one person. Host message ids are Discord's message ids (snowflakes are unique across
channels).
"""

from __future__ import annotations

import re

import discord

from continuum.envelope import Visibility

SYSTEM_FREE = {discord.MessageType.default, discord.MessageType.reply}
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")


def is_dm(channel: object) -> bool:
    return isinstance(channel, discord.DMChannel | discord.GroupChannel)


def parent_of(channel: object) -> object:
    """The channel a thread lives in (webhooks belong to it); a channel is its own."""
    if isinstance(channel, discord.Thread) and channel.parent is not None:
        return channel.parent
    return channel


def thread_id(channel: object) -> str | None:
    return str(channel.id) if isinstance(channel, discord.Thread) else None  # type: ignore[attr-defined]


def visibility_of(channel: object) -> Visibility:
    """How public a channel is, as Discord says: a DM is a DM; a private thread, or a
    channel @everyone cannot view, is private; when Discord cannot tell us, private (a
    secret stored as private costs a recall, one stored as public reaches everyone)."""
    if is_dm(channel):
        return "dm"
    if isinstance(channel, discord.Thread):
        if channel.type == discord.ChannelType.private_thread:
            return "private"
        channel = channel.parent
    guild = getattr(channel, "guild", None)
    if channel is None or guild is None:
        return "private"
    try:
        everyone = guild.default_role
        return "public" if channel.permissions_for(everyone).view_channel else "private"  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return "private"


def clean_text(message: discord.Message, bot_id: int | None) -> str:
    """The message's words: the bot's own mention dropped, people, roles and channels by
    name (never raw ids), custom emoji as ``:name:``."""
    names = {u.id: getattr(u, "display_name", u.name) for u in message.mentions}
    roles = {r.id: r.name for r in getattr(message, "role_mentions", [])}
    channels = {c.id: getattr(c, "name", "channel") for c in message.channel_mentions}

    def person(m: re.Match[str]) -> str:
        uid = int(m.group(1))
        return "" if uid == bot_id else "@" + names.get(uid, "someone")

    text = _USER_MENTION.sub(person, message.content or "")
    text = _ROLE_MENTION.sub(lambda m: "@" + roles.get(int(m.group(1)), "role"), text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + channels.get(int(m.group(1)), "channel"), text)
    text = _CUSTOM_EMOJI.sub(lambda m: f":{m.group(1)}:", text)
    return " ".join(text.split()) if "\n" not in text else text.strip()


def mentions_bot(message: discord.Message, bot_id: int | None) -> bool:
    """The bot itself was @-mentioned (by user, or by its managed role); @everyone is not."""
    if bot_id is None:
        return False
    if any(u.id == bot_id for u in message.mentions):
        return True
    return any(
        r.tags is not None and r.tags.bot_id == bot_id
        for r in getattr(message, "role_mentions", [])
    )
