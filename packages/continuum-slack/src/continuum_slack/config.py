"""The ``[hosts.slack]`` table. Secrets are environment variable names, never values."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from continuum.hosts.base import HostConfig


class SlackConfig(HostConfig):
    # transports: "http" (Events API, signed requests) or "socket" (Socket Mode, no public
    # URL). Socket Mode sends each event to ONE open connection: never run two processes
    # of one app in Socket Mode (they would steal each other's events).
    mode: Literal["http", "socket"] = "http"
    bot_token_env: str = "SLACK_BOT_TOKEN"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"  # http mode
    app_token_env: str = "SLACK_APP_TOKEN"  # socket mode (xapp-...)
    host: str = "0.0.0.0"  # http mode: where the Events API endpoint listens
    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port
    path: str = "/slack/events"
    api_url: str | None = None  # the Web API base URL (tests: a local peer)
    # audio and images shared in a message are fetched (with the bot token, from Slack's
    # file host only) and given to the persona: heard through speech-to-text, or seen by
    # a vision model; larger files are announced by name only
    max_file_mb: float = Field(default=25.0, ge=0.0)
    # replies: "auto" streams with chat.startStream where the workspace allows it, else
    # posts and edits (chat.update) at most once per update_interval_s
    stream: Literal["auto", "stream", "update", "off"] = "auto"
    update_interval_s: float = Field(default=1.2, ge=0.0)
    post_interval_s: float = Field(default=1.0, ge=0.0)  # per channel (Slack: ~1 msg/s)
    max_message_chars: int = Field(default=3900, ge=200, le=40000)
    thinking_reaction: str | None = "eyes"  # on the person's message while the room thinks
    positive_reactions: tuple[str, ...] = (
        "+1",
        "thumbsup",
        "heart",
        "tada",
        "white_check_mark",
        "star",
        "raised_hands",
    )
    negative_reactions: tuple[str, ...] = ("-1", "thumbsdown", "x", "disappointed")
    command: str = "/continuum"
