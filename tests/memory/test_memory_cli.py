import json
import subprocess
import sys

from continuum.memory.engine import MemoryEngine
from continuum.memory.journal import JournalEntry


def cli(data, *args):
    return subprocess.run(
        [sys.executable, "-m", "continuum", "memory", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(data)},
    )


def test_list_search_show_export_forget_rebuild(tmp_path, embedder):
    eng = MemoryEngine(tmp_path, embedder=embedder, cipher=False)
    kept = eng.remember(
        JournalEntry(
            persona="maya",
            text="Sam's sister visits in May.",
            partners=("sam",),
            topics=("family",),
        )
    )
    gone = eng.remember(JournalEntry(persona="maya", text="The oven is broken."))
    eng.close()
    out = cli(tmp_path, "list", "--persona", "maya")
    assert out.returncode == 0 and kept.id in out.stdout and gone.id in out.stdout
    out = cli(tmp_path, "search", "--persona", "maya", "family", "visit", "--partner", "sam")
    assert kept.id in out.stdout and gone.id not in out.stdout
    out = cli(tmp_path, "show", "--persona", "maya", kept.id, "--versions")
    assert out.stdout.startswith("---\n") and "1 version(s) kept" in out.stdout
    out = cli(tmp_path, "forget", "--persona", "maya", gone.id)
    assert out.returncode == 0 and "forgot" in out.stdout
    export = json.loads(cli(tmp_path, "export", "--persona", "maya").stdout)
    assert [e["id"] for e in export["entries"]] == [kept.id]
    out = cli(tmp_path, "rebuild")
    assert out.returncode == 0 and "indexed 1 entries; 0 broken" in out.stdout
    assert "CONTINUUM_MEMORY_KEY=" in cli(tmp_path, "keygen").stdout
