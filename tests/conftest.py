"""Shared fixtures. Model tests use the real embedded default model; if it is missing they
fail with the install line (never skip)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from continuum.errors import ModelNotInstalled
from continuum.persona import Persona
from continuum.persona_files import load_personas

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PERSONAS = REPO / "examples" / "personas"
THREADS = int(os.environ.get("CONTINUUM_TEST_THREADS", "2"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def model_path() -> Path:
    from continuum.models import default_model_path

    try:
        return default_model_path()
    except ModelNotInstalled as exc:
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)


@pytest.fixture(scope="session")
def example_personas() -> list[Persona]:
    return load_personas([EXAMPLE_PERSONAS])


@pytest.fixture(scope="session")
def six_personas() -> list[Persona]:
    return load_personas([EXAMPLE_PERSONAS, REPO / "examples" / "more-personas"])


@pytest.fixture(scope="module")
def backend(model_path: Path) -> Iterator:
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig

    b = EmbeddedBackend(model_path, EmbeddedConfig(live_slots=6, slot_ctx=2048, n_threads=THREADS))
    yield b
    b.close()


@pytest.fixture(scope="session")
def embedder():
    from continuum.memory.embeddings import WordLlamaEmbedder

    return WordLlamaEmbedder()


@pytest.fixture(scope="session")
def transcriber():
    """Whisper tiny.en through faster-whisper (the [voice] extra)."""
    import importlib.util

    from continuum.errors import ContinuumError
    from continuum.media.whisper import INSTALL, WhisperTranscriber

    if importlib.util.find_spec("faster_whisper") is None:
        pytest.fail(f"speech-to-text is not installed: {INSTALL}", pytrace=False)
    try:
        return WhisperTranscriber()
    except ContinuumError as exc:  # the packaged model is missing: say how to install it
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)
