"""continuum personas in Discord (see docs/hosts/discord.md)."""

from continuum_discord.config import DiscordConfig
from continuum_discord.host import DiscordHost

__all__ = ["DiscordConfig", "DiscordHost"]
