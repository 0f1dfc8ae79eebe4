"""The genome's registry (what an adapter is, for which base model) and pager (what is
resident under the budget), without inference."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time

import pytest

from continuum.backends.base import AdapterUse
from continuum.genome import AdapterPager, GenomeError, GenomeRegistry
from continuum.genome.registry import SHARED, resolve_persona, shared_library
from continuum.persona import AdapterRef, Persona
from tests.server.lora_fixture import make_lora


@pytest.fixture
def base(model_path):
    return model_path


def test_an_adapter_is_checked_and_recorded_with_its_provenance(tmp_path, base):
    registry = GenomeRegistry(tmp_path / "data", base_model=base)
    record = registry.add("maya", "perf", make_lora(tmp_path / "perf.gguf"), license="CC0")
    assert (record.rank, record.alpha, record.targets) == (4, 4.0, ("attn_q", "attn_v"))
    assert record.architecture == "llama" and record.base_model == base.name
    assert len(record.base_model_sha256) == 64 and record.size > 900_000
    stored = registry.dir / record.file
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    again = GenomeRegistry(tmp_path / "data", base_model=base)  # persisted
    assert again.get("maya", "perf") == record
    with pytest.raises(GenomeError, match="another base model"):
        registry.add("maya", "bad", make_lora(tmp_path / "bad.gguf", n_embd=512))
    with pytest.raises(GenomeError, match="not a LoRA"):
        registry.add("maya", "model", base)  # a model, not an adapter
    with pytest.raises(GenomeError, match="already has"):
        registry.add("maya", "perf", tmp_path / "perf.gguf")
    with pytest.raises(Exception, match="not a persona id"):
        registry.add("../x", "perf2", tmp_path / "perf.gguf")


def test_an_adapter_for_another_base_model_is_refused_at_load(tmp_path, base):
    registry = GenomeRegistry(tmp_path / "data", base_model=base)
    registry.add("maya", "perf", make_lora(tmp_path / "perf.gguf"))
    other = tmp_path / "other.gguf"
    other.write_bytes(base.read_bytes()[:-1] + b"\x01")  # another file: another hash
    elsewhere = GenomeRegistry(tmp_path / "data", base_model=other)
    with pytest.raises(GenomeError, match="was made for"):
        elsewhere.checked(elsewhere.get("maya", "perf"))


def test_a_persona_gets_its_whole_genome(tmp_path, base):
    registry = GenomeRegistry(tmp_path / "data", base_model=base)
    registry.add("maya", "perf", make_lora(tmp_path / "perf.gguf"))
    registry.add(SHARED, "crypto", make_lora(tmp_path / "crypto.gguf", seed=2))
    registry.add("maya", "voice1", make_lora(tmp_path / "voice.gguf", seed=3), kind="voice")
    maya = Persona(id="maya", name="Maya", identity="x", adapters=(AdapterRef(id="crypto"),))
    resolved = resolve_persona(maya, registry)
    assert [a.id for a in resolved.adapters] == ["crypto", "perf", "voice1"]
    assert all(a.path and a.path.endswith(".gguf") for a in resolved.adapters)
    assert resolved.adapter_set == frozenset({"crypto", "perf"})  # voice is not a text skill
    assert [u.id for u in shared_library(registry)] == ["crypto"]
    ghost = Persona(id="otto", name="Otto", identity="x", adapters=(AdapterRef(id="nope"),))
    with pytest.raises(GenomeError, match="neither a file nor in the genome"):
        resolve_persona(ghost, registry)


def uses(tmp_path, n, size=1000):
    out = []
    for i in range(n):
        path = tmp_path / f"a{i}.gguf"
        path.write_bytes(b"x" * size)
        out.append(AdapterUse(id=f"a{i}", path=str(path)))
    return out


def test_the_pager_keeps_under_budget_lru_first_and_never_evicts_pinned(tmp_path):
    loaded, freed = [], []
    pager = AdapterPager(3000, load=lambda u: loaded.append(u.id) or u.id, free=freed.append)
    a = uses(tmp_path, 6)
    a[0] = a[0].model_copy(update={"pinned": True})
    assert pager.acquire([a[0], a[1]]) == ["a0", "a1"]
    pager.acquire([a[2]])
    assert pager.acquire([a[1]]) == ["a1"]  # a hit: a1 is now the most recent
    # over budget: evict (least recent first, never the pinned a0) until the new one fits
    # under the 80% target (2400 bytes): a2, then a1
    pager.acquire([a[3]])
    assert freed == ["a2", "a1"] and sorted(pager.resident()) == ["a0", "a3"]
    pager.acquire([a[4], a[5]])  # both needed at once: neither may evict the other
    assert "a0" in pager.resident() and pager.resident_bytes <= 3000
    kinds = [e.kind for e in pager.events]
    assert kinds.count("hit") == 1 and kinds.count("evict") >= 2
    assert all(e.resident_bytes <= 3000 for e in pager.events)
    with pytest.raises(GenomeError, match="does not fit"):
        pager.acquire([a[1], a[2], a[3]])  # three needed at once + the pinned a0: 4000
    assert pager.events[-1].kind == "refuse"


def test_loads_are_single_flight(tmp_path):
    calls = []

    def slow(u):
        calls.append(u.id)
        time.sleep(0.1)
        return u.id

    pager = AdapterPager(10_000, load=slow, free=lambda h: None)
    [use] = uses(tmp_path, 1)
    threads = [threading.Thread(target=pager.acquire, args=([use],)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["a0"]


def test_the_genome_cli(tmp_path, base):
    lora = make_lora(tmp_path / "perf.gguf")
    cli = [sys.executable, "-m", "continuum", "genome", "--data-dir", str(tmp_path / "d")]
    run = lambda *a: subprocess.run([*cli, *a], capture_output=True, text=True, timeout=60)  # noqa: E731
    out = run("add", "--persona", "maya", "--id", "perf", "--license", "CC0", str(lora))
    assert out.returncode == 0 and "rank 4" in out.stdout, out.stderr
    assert "perf" in run("list").stdout
    out = run("export", "--persona", "maya", "--id", "perf", "-o", str(tmp_path / "out"))
    assert out.returncode == 0 and (tmp_path / "out" / "perf.gguf").exists()
    assert '"license": "CC0"' in (tmp_path / "out" / "perf.json").read_text()
    assert run("remove", "--persona", "maya", "--id", "perf").returncode == 0
    out = run("remove", "--persona", "maya", "--id", "perf")
    assert out.returncode == 2 and "no adapter" in out.stderr
    out = run("add", "--persona", "maya", "--id", "x", str(tmp_path / "missing.gguf"))
    assert out.returncode == 2 and "cannot read" in out.stderr
