import pytest

from continuum.memory.crypto import Cipher, MemoryKeyError
from continuum.memory.engine import MemoryEngine
from continuum.memory.journal import JournalEntry


def test_encrypted_at_rest_searchable_in_process(tmp_path, embedder):
    key = Cipher.generate_key()
    eng = MemoryEngine(tmp_path, embedder=embedder, cipher=Cipher(key))
    e = eng.remember(
        JournalEntry(persona="maya", text="The vault code is 4711.", partners=("sam",))
    )
    eng.apply_profile_update("maya", {"add_hobbies": ["lockpicking"]})
    assert "4711" in eng.recall("maya", "vault code", k=1)[0].text
    assert eng.index.db_path == ":memory:"  # no plaintext index on disk
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(
        b"4711" not in p.read_bytes() and b"lockpicking" not in p.read_bytes() for p in files
    )
    assert eng.journal("maya").path_for(e.id).name.endswith(".md.enc")
    eng.close()
    # the right key reads it back after a restart
    again = MemoryEngine(tmp_path, embedder=embedder, cipher=Cipher(key))
    assert "4711" in again.recall("maya", "vault code", k=1)[0].text
    assert again.profile("maya").load().hobbies == ("lockpicking",)
    # a wrong key or no key is a clear error, never silent emptiness
    with pytest.raises(MemoryKeyError, match="cannot decrypt"):
        MemoryEngine(tmp_path, embedder=embedder, cipher=Cipher(Cipher.generate_key()))
    with pytest.raises(MemoryKeyError, match="encrypted but no key"):
        MemoryEngine(tmp_path, embedder=embedder, cipher=False)


def test_key_from_environment(tmp_path, embedder, monkeypatch):
    monkeypatch.setenv("CONTINUUM_MEMORY_KEY", Cipher.generate_key())
    eng = MemoryEngine(tmp_path, embedder=embedder)
    assert eng.cipher is not None
    monkeypatch.setenv("CONTINUUM_MEMORY_KEY", "not-a-key")
    with pytest.raises(MemoryKeyError, match="invalid memory key"):
        MemoryEngine(tmp_path / "other", embedder=embedder)
