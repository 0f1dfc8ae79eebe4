"""continuum-hub: voice and skill LoRAs, and GGUF base models, from and to the Hugging
Face Hub — browsed, previewed, pulled (pinned, checked, installed atomically) and
published with their cards."""

from continuum_hub.errors import HubError
from continuum_hub.pull import PullResult, pull
from continuum_hub.settings import HubSettings

__all__ = ["HubError", "HubSettings", "PullResult", "pull"]
