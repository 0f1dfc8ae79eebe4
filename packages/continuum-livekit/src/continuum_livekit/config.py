"""The ``[hosts.livekit]`` table. Secrets are environment variable names, never values."""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from continuum.errors import ConfigError
from continuum.hosts.base import HostConfig


class LiveKitConfig(HostConfig):
    # the server: ws(s)://... (LiveKit Cloud: wss://<project>.livekit.cloud); unset, the
    # environment variable url_env names (LIVEKIT_URL, as LiveKit's own tools read it)
    url: str | None = None
    url_env: str = "LIVEKIT_URL"
    api_key_env: str = "LIVEKIT_API_KEY"
    api_secret_env: str = "LIVEKIT_API_SECRET"
    # rooms the personas join at start, and a pattern (fnmatch: "support-*") for rooms
    # created later on the server: they are joined when they appear (polled every
    # poll_s) and left once no person has been in them for idle_leave_s
    rooms: tuple[str, ...] = ()
    join: str | None = None
    poll_s: float = Field(default=2.0, gt=0.0)
    idle_leave_s: float = Field(default=300.0, ge=0.0)
    # which personas join (ids; empty: every persona)
    personas: tuple[str, ...] = ()
    # the hidden participant that hears the room for all personas
    listener_identity: str = Field(default="continuum-listener", min_length=1)
    # text chat (lk.chat text streams) as a text host; captions (lk.transcription) of what
    # people and personas say
    chat: bool = True
    captions: bool = True
    # a lost connection is retried with backoff up to this pause between attempts
    reconnect_max_s: float = Field(default=5.0, gt=0.0)

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError("must be a ws://, wss://, http:// or https:// URL")
        return value

    def server_url(self) -> str:
        """The server's URL: ``url``, else the environment variable ``url_env`` names."""
        url = self.url or os.environ.get(self.url_env, "")
        if not url:
            raise ConfigError(
                "continuum.toml",
                "hosts.livekit.url",
                f"no LiveKit server: set url, or the environment variable {self.url_env}",
            )
        return url

    def credentials(self) -> tuple[str, str]:
        """The API key and secret, from the environment variables the config names."""
        return self.secret("api_key_env"), self.secret("api_secret_env")
