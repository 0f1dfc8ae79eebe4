"""Bad input to the command line gets one clear line and a non-zero exit, and loses or
leaves nothing (hardening, second pass: item 12)."""

from __future__ import annotations

import stat
import subprocess
import sys

import numpy as np
import pytest

from tests.server.lora_fixture import make_lora

CLI = [sys.executable, "-m", "continuum"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def one_line(out: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert out.returncode == code and len(lines) == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    return lines[0]


DEEP = "x = " + "[" * 5000 + "]" * 5000 + "\n"


def test_a_deeply_nested_config_is_one_line(tmp_path):
    config = tmp_path / "continuum.toml"
    config.write_text(DEEP)
    assert "nested too deeply" in one_line(run("serve", "--config", str(config)))


def test_a_deeply_nested_persona_file_is_one_line(tmp_path):
    persona = tmp_path / "deep.toml"
    persona.write_text('id = "d"\nname = "D"\nidentity = "x"\n' + DEEP)
    assert "nested too deeply" in one_line(run("personas", "validate", str(persona)))


def test_a_huge_config_is_refused_unparsed(tmp_path):
    config = tmp_path / "continuum.toml"
    config.write_text("# padding\n" * 300_000)  # 3 MB of comments
    assert "larger than 1 MiB" in one_line(run("serve", "--config", str(config)))


def test_init_into_a_missing_directory(tmp_path):
    line = one_line(run("init", "--config", str(tmp_path / "missing" / "x.toml")))
    assert "no such directory" in line


def test_voice_out_into_a_missing_directory_fails_before_the_turn(tmp_path):
    wav = tmp_path / "q.wav"
    wav.write_bytes(b"RIFF")
    out = run("voice", "--in", str(wav), "--out", str(tmp_path / "missing" / "r.wav"))
    assert "no such directory" in one_line(out)


@pytest.mark.parametrize("bad_id", ["a/b", "..", "x y", "../../escape"])
def test_genome_add_checks_the_id_before_copying(tmp_path, model_path, bad_id):
    data = tmp_path / "d"
    lora = make_lora(tmp_path / "perf.gguf")
    out = run(
        "genome", "--data-dir", str(data), "add", "--persona", "maya", "--id", bad_id, str(lora)
    )
    assert "adapter id" in one_line(out)
    leftovers = [p for p in (data / "genome").rglob("*") if p.is_file()] if data.exists() else []
    assert leftovers == [], leftovers  # no orphaned copy


def nan_lora(path):
    make_lora(path)
    import gguf

    reader = gguf.GGUFReader(str(path), "r+")
    tensor = reader.tensors[0]
    tensor.data.reshape(-1)[3] = np.nan  # written through the memory map
    del reader
    return path


@pytest.mark.parametrize("damage", ["truncated", "nan"])
def test_genome_add_checks_the_tensor_data(tmp_path, model_path, damage):
    lora = make_lora(tmp_path / "perf.gguf")
    if damage == "truncated":
        data = lora.read_bytes()
        lora.write_bytes(data[: len(data) - 5000])
        expected = "cut off"
    else:
        nan_lora(lora)
        expected = "NaN"
    out = run(
        "genome", "--data-dir", str(tmp_path / "d"), "add", "--persona", "maya", "--id", "p",
        str(lora),
    )  # fmt: skip
    assert expected in one_line(out)
    assert "no adapters yet" in run("genome", "--data-dir", str(tmp_path / "d"), "list").stdout


def test_genome_export_is_owner_only(tmp_path, model_path):
    data = str(tmp_path / "d")
    lora = make_lora(tmp_path / "perf.gguf")
    added = run("genome", "--data-dir", data, "add", "--persona", "maya", "--id", "p", str(lora))
    assert added.returncode == 0, added.stderr
    out = run("genome", "--data-dir", data, "export", "--persona", "maya", "--id", "p", "-o",
              str(tmp_path / "out"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in ("p.gguf", "p.json"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["missing", "deep", "not-a-pair"])
def test_genome_train_pairs_errors_are_one_line(tmp_path, model_path, content):
    pairs = tmp_path / "pairs.jsonl"
    if content == "deep":
        pairs.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    elif content == "not-a-pair":
        pairs.write_text('{"prompt": 3}\n')
    out = run("genome", "--data-dir", str(tmp_path / "d"), "train", "--persona", "maya",
              "--pairs", str(pairs))  # fmt: skip
    line = one_line(out)
    assert {"missing": "No such file", "deep": "nested too deeply"}.get(content, "pairs") in line
