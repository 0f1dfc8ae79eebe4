"""Kill a writer with SIGKILL mid-stream: no corrupt or half-written entry, index consistent."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from continuum.memory.engine import MemoryEngine

WRITER = textwrap.dedent("""
    import sys
    from continuum.memory.engine import MemoryEngine
    from continuum.memory.journal import JournalEntry
    eng = MemoryEngine(sys.argv[1], cipher=False)
    i = 0
    while True:
        text = f"Entry {i}: " + "a fairly long line of remembered detail. " * 200
        e = eng.remember(JournalEntry(persona="maya", text=text, partners=("sam",)))
        # rewrite some entries so history and replace paths are exercised too
        if i % 3 == 0:
            eng.remember(e.model_copy(update={"text": text + " (revised)"}))
        print(i, flush=True)
        i += 1
""")


def test_sigkill_never_corrupts_journal_or_index(tmp_path, embedder):
    data = tmp_path / "data"
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data)], stdout=subprocess.PIPE, text=True
        )
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 5 + 7 * round_ and time.monotonic() < deadline:
            if proc.stdout.readline():
                seen += 1
        time.sleep(0.013 * (round_ + 1))  # land somewhere inside a write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert seen >= 5, "the writer did not get going"

    eng = MemoryEngine(data, embedder=embedder, cipher=False)
    report = eng.sync()
    assert report.broken == []
    store = eng.journal("maya")
    files = list(store.paths())
    assert len(files) >= 15
    for path in files:  # every entry parses whole
        entry = store.read_path(path)
        assert entry.text.startswith("Entry ") and entry.text.rstrip().endswith(
            ("detail.", "(revised)")
        )
        for version in store.versions(entry.id):
            assert version.id == entry.id
    assert not list(data.rglob("*.tmp"))  # temp files of killed writes were cleaned up
    assert eng.index.count("maya") == len(files)
