"""The README's Python example runs as written (so the README stays true)."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.model


def test_readme_python_example_runs():
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
    code = code.replace(
        "EmbeddedBackend(default_model_path())",
        "EmbeddedBackend(default_model_path(), EmbeddedConfig(n_threads=2))",
    )
    code = "from continuum import EmbeddedConfig\n" + code
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = [
        line.split(" ")[0]
        for line in out.stdout.splitlines()
        if line.split(" ")[0] in {"Juno", "Maya", "Otto", "Pip"}
    ]
    # shared cognition: at least one voice (the quorum), nobody twice
    assert names and len(set(names)) == len(names), out.stdout
