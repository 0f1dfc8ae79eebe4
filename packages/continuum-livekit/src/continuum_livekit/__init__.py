"""continuum personas in LiveKit rooms (``[hosts.livekit]``)."""

from continuum_livekit.config import LiveKitConfig
from continuum_livekit.host import LiveKitHost
from continuum_livekit.tokens import mint_token

__all__ = ["LiveKitConfig", "LiveKitHost", "mint_token"]
