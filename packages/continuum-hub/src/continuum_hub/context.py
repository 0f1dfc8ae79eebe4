"""Where a command finds its settings: continuum.toml (``[plugins.hub]``, the data dir,
the backend's model) and the environment (the codec voice's backbone)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from continuum.config import DEFAULT_CONFIG, ContinuumConfig, load_config
from continuum.errors import ContinuumError
from continuum.memory.engine import default_data_dir
from continuum_hub.settings import HubSettings
from continuum_hub.store import PulledStore


@dataclass(frozen=True)
class HubContext:
    settings: HubSettings
    data_dir: Path
    base_model: Path | None  # the text model adapters are checked against
    voice_model: Path | None  # the codec voice's backbone, where one is set

    @classmethod
    def load(
        cls,
        config_path: Path | None = None,
        data_dir: Path | None = None,
        model: Path | None = None,
        voice_model: Path | None = None,
    ) -> HubContext:
        path = Path(config_path or DEFAULT_CONFIG)
        if config_path is not None and not path.exists():
            raise ContinuumError(f"--config {path}: no such file")
        config = load_config(path) if path.exists() else ContinuumConfig()
        return cls.from_config(config, data_dir, model, voice_model)

    @classmethod
    def from_config(
        cls,
        config: ContinuumConfig,
        data_dir: Path | None = None,
        model: Path | None = None,
        voice_model: Path | None = None,
    ) -> HubContext:
        settings = HubSettings.from_table(
            config.plugins.get("hub", {}), config.source or DEFAULT_CONFIG
        )
        if data_dir is None:
            memory_dir = config.memory.data_dir
            data_dir = config.relative(memory_dir) if memory_dir else default_data_dir()
        backbone = voice_model or os.environ.get("CONTINUUM_CODEC_TTS_BACKBONE")
        return cls(
            settings=settings,
            data_dir=Path(data_dir),
            base_model=model or _base_model(config, Path(data_dir)),
            voice_model=Path(backbone) if backbone else None,
        )


def _base_model(config: ContinuumConfig, data_dir: Path) -> Path | None:
    """The backend's model without touching the network: a path, a ``hub:`` model pulled
    before, or the default; None if it cannot be known here."""
    from continuum.models import ModelNotInstalled, default_model_path

    model = config.backend.model
    if config.backend.kind != "embedded":
        return None
    if model and model.startswith("hub:"):
        from continuum_hub.pull import parse_model_spec

        repo, file, rev = parse_model_spec(model[4:])
        found = [r for r in PulledStore(data_dir).find(repo, rev, file) if r.kind == "model"]
        return data_dir / found[-1].installed_as if found else None
    if model:
        return config.relative(Path(model))
    try:
        return default_model_path()
    except ModelNotInstalled:
        return None
