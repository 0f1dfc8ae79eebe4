"""Real llama-server processes for the server-backend tests. A missing binary fails the
test with the build line (never skips)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.harness import LlamaServer, llama_server_binary
from tests.server.lora_fixture import make_lora


@pytest.fixture(scope="session")
def server_binary() -> Path:
    try:
        return llama_server_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def skill_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tmp_path_factory.mktemp("lora") / "skill.gguf")


@pytest.fixture(scope="module")
def server(
    server_binary: Path,
    model_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    skill_lora: Path,
) -> Iterator[LlamaServer]:
    """Two slots, slot save path, one LoRA adapter ("skill") loaded but applied per request."""
    slots = tmp_path_factory.mktemp("slots")
    with LlamaServer(model_path, slots=2, slot_save_path=slots, loras=(skill_lora,)) as s:
        yield s
