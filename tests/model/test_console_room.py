"""The README's main job, run as a user would: `continuum room --say ... --json`."""

import json
import subprocess
import sys

import pytest

from tests.conftest import THREADS

pytestmark = pytest.mark.model


def test_console_room_several_personas_answer(model_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "continuum",
            "room",
            "--say",
            "Hello all, how are you today?",
            "--say",
            "What should I learn next?",
            "--json",
            "--max-tokens",
            "24",
            "--threads",
            str(THREADS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["personas"] == ["juno", "maya", "otto", "pip"]
    assert len(result["turns"]) == 2
    for turn in result["turns"]:
        assert [r["persona_id"] for r in turn["replies"]] == ["juno", "maya", "otto", "pip"]
        for r in turn["replies"]:
            assert r["text"].strip() and r["error"] is None
            assert r["metrics"]["prompt_tokens"] > 0
    # second message: each persona's slot is warm
    for r in result["turns"][1]["replies"]:
        assert r["metrics"]["reused_tokens"] > r["metrics"]["evaluated_tokens"]


def test_bad_persona_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nname = "X"\nidentity = "y"\n[voice]\nspeed = "fast"\n')
    out = subprocess.run(
        [sys.executable, "-m", "continuum", "room", "--personas", str(bad), "--say", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert f"{bad}: field 'voice.speed'" in out.stderr
