"""The ``[hosts.discord]`` table. Secrets are environment variable names, never values."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from continuum.hosts.base import HostConfig


class DiscordConfig(HostConfig):
    token_env: str = "DISCORD_BOT_TOKEN"
    # where Discord is: its REST API and gateway (a local peer in tests; leave unset)
    api_url: str | None = None  # e.g. "https://discord.com/api/v10"
    gateway_url: str | None = None  # e.g. "wss://gateway.discord.gg/"
    # a CA certificate to trust besides the system's (a TLS-inspecting proxy; the tests'
    # local voice server)
    ca_file: str | None = None
    # attachments are fetched from these hosts only (Discord's CDN)
    cdn_hosts: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")
    max_file_mb: float = Field(default=25.0, ge=0.0)
    # which messages in server channels start a turn: "addressed" (the bot or a persona
    # mentioned or named, a reply to a persona's message; the rest is context) or "all"
    # (the room's relevance gate decides). DMs are always answered.
    listen: Literal["addressed", "all"] = "addressed"
    # who answers a DM when none is named: a persona id (default: the first persona)
    dm_persona: str | None = None
    # slash commands are registered in these guilds (empty: every guild the bot is in)
    guild_ids: tuple[int, ...] = ()
    command: str = Field(default="continuum", pattern=r"^[-_a-z0-9]{1,32}$")
    webhook_name: str = Field(default="continuum", min_length=1, max_length=80)
    edit_every_s: float = Field(default=1.2, ge=0.0)  # streaming: one edit per this
    max_message_chars: int = Field(default=2000, ge=200, le=2000)
    # after a reconnect, each channel's history since the last message seen is fetched
    # (up to this many messages per channel; more are reported lost in the log)
    backfill_limit: int = Field(default=100, ge=0, le=1000)
    positive_reactions: tuple[str, ...] = ("👍", "❤️", "🎉", "✅", "⭐", "🙌", "💯", "🔥")
    negative_reactions: tuple[str, ...] = ("👎", "❌", "😞", "🙁")
    # voice: personas speak in a voice channel after /continuum join (or in these
    # channels as soon as the bot is ready)
    voice_channels: tuple[int, ...] = ()
