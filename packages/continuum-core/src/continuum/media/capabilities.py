"""What a model takes and gives besides text — declared, never guessed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ModelCapabilities(BaseModel):
    """Read from the model itself where it says (GGUF/mmproj metadata on the embedded
    backend, ``/props`` modalities on llama-server) or from config (other servers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audio_in: bool = False
    vision_in: bool = False
    audio_out: bool = False
    context_length: int | None = None
    source: Literal["model", "server", "config", "default"] = "default"
