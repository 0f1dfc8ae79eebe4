"""Audio and images in messages: what a model takes directly, and the bridge for the rest
(speech-to-text for audio, a description for images)."""

from continuum.media.bridge import Bridged, Describer, MediaBridge, Transcriber
from continuum.media.capabilities import ModelCapabilities

__all__ = ["Bridged", "Describer", "MediaBridge", "ModelCapabilities", "Transcriber"]
