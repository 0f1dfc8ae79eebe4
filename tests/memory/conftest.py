import pytest


@pytest.fixture
def engine(tmp_path, embedder, monkeypatch):
    from continuum.memory.engine import MemoryEngine

    monkeypatch.delenv("CONTINUUM_MEMORY_KEY", raising=False)
    e = MemoryEngine(tmp_path / "data", embedder=embedder, cipher=False)
    yield e
    e.close()
