"""The VSCode extension, built and packaged as part of the test run (npm ci, tsc, vsce),
and the messages it sends, sent from Node with vscode-languageserver-protocol (the layer
vscode-languageclient is built on) to continuum-lsp over stdio. VSCode itself cannot be
downloaded here; this is what the extension says to the server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lsp_testkit import CODE, SCRIPTED, write_config

EXTENSION = Path(__file__).resolve().parents[1] / "vscode"
NODE_INSTALL = "install Node.js 20+ and npm (e.g. sudo apt-get install nodejs npm)"


def run(*cmd: str, timeout: float = 600) -> str:
    done = subprocess.run(
        cmd, cwd=EXTENSION, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"the VSCode extension builds with Node: {NODE_INSTALL}", pytrace=False)
    major = int(run(node, "--version").strip().lstrip("v").split(".")[0])
    if major < 20:
        pytest.fail(f"@vscode/vsce 3.9 needs Node >= 20 (found {major}): {NODE_INSTALL}")
    run(npm, "ci", "--no-audit", "--no-fund")
    run(npm, "run", "compile")
    vsix = tmp_path_factory.mktemp("vsix") / "continuum-personas.vsix"
    run(npm, "exec", "--", "vsce", "package", "--out", str(vsix))
    return vsix


def test_the_extension_packages_as_a_vsix_without_prompts(built):
    names = zipfile.ZipFile(built).namelist()
    assert "extension/package.json" in names and "extension/out/extension.js" in names
    assert "extension/LICENSE.txt" in names
    assert any(n.startswith("extension/node_modules/vscode-languageclient/") for n in names)
    assert not any(n.startswith("extension/src/") for n in names)
    manifest = json.loads(zipfile.ZipFile(built).read("extension/package.json"))
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {"continuum.askSelection", "continuum.reviewFile"} <= commands
    assert "continuum.serverPath" in manifest["contributes"]["configuration"]["properties"]


def test_what_the_extension_sends_is_answered_by_the_server(built, tmp_path):
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "lookup.py").write_text(CODE)
    config = write_config(tmp_path)
    done = subprocess.run(
        ["node", str(EXTENSION / "test" / "drive.cjs"), str(workspace),
         sys.executable, str(SCRIPTED), "--config", str(config)],
        cwd=EXTENSION, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"continuum.ask", "continuum.review"} <= set(seen["commands"])
    assert "Ask Maya about this" in seen["actions"]
    assert {p["name"] for p in seen["personas"]} == {"Maya", "Juno"}
    assert seen["result"]["text"] == seen["streamed"] != ""
    assert seen["kinds"][0] == "begin" and seen["kinds"][-1] == "end"
    assert seen["exitCode"] == 0  # shutdown + exit: a clean stop
