"""``[plugins.hub]`` in continuum.toml: where the Hub is, which licences install without
asking, how large a download may be, and which Hub repo each local base model is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.errors import ConfigError

# open licences a user can install without being asked (lower case, as Hub cards spell them)
DEFAULT_LICENSES = (
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "openrail",
    "openrail++",
    "creativeml-openrail-m",
    "unlicense",
)

# local base files -> the Hub repo they are (the GGUF header names no repo for these)
KNOWN_BASES = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "SmolLM2-135M-Instruct.Q8_0.gguf": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "OuteTTS-0.2-500M-Q8_0.gguf": "OuteAI/OuteTTS-0.2-500M",
}


class HubSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str | None = None  # default: $HF_ENDPOINT, else https://huggingface.co
    token_env: str = Field(default="HF_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    licenses: tuple[str, ...] = DEFAULT_LICENSES
    max_adapter_mb: int = Field(default=1024, ge=1)
    max_model_mb: int = Field(default=65536, ge=1)
    # local base model file name -> its Hub repo id (adds to the known ones)
    base_ids: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_table(
        cls, table: dict[str, Any], source: str | Path = "continuum.toml"
    ) -> HubSettings:
        try:
            return cls.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("plugins", "hub", *first["loc"]))
            raise ConfigError(Path(source), where, first["msg"]) from exc

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    def hub_id_of(self, model: Path | None) -> str | None:
        """The Hub repo a local base model is, where known."""
        if model is None:
            return None
        return {**KNOWN_BASES, **self.base_ids}.get(model.name)
