"""continuum-lsp as the editor starts it, with a scripted model instead of a real one
(the tests are about the protocol; one test runs the real embedded model). The script
is chosen by CONTINUUM_TEST_SCRIPT; every prompt is appended to CONTINUUM_TEST_PROMPTS
(a JSON line each) so a test can see what reached the model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from continuum.testing import ScriptedBackend
from continuum_lsp.__main__ import main

REVIEW = {
    "findings": [
        {
            "line": 2,
            "severity": "warning",
            "message": "Compare with `is None`, not `== None`.",
            "replacement": "    if value is None:",
        }
    ]
}


def reply(request: object) -> str:
    prompt = request.prompt  # type: ignore[attr-defined]
    log = os.environ.get("CONTINUUM_TEST_PROMPTS")
    if log:
        with Path(log).open("a") as f:
            f.write(json.dumps({"prompt": prompt, "schema": bool(request.json_schema)}) + "\n")  # type: ignore[attr-defined]
    script = os.environ.get("CONTINUUM_TEST_SCRIPT", "answer")
    if request.json_schema:  # type: ignore[attr-defined]
        return json.dumps(REVIEW)
    if script == "fail":
        raise ConnectionError("the model server went away")
    if script == "slow":
        return " ".join(f"word{i}" for i in range(200)) + "."
    return "Profile it first. Then cache the hot path."


if __name__ == "__main__":
    slow = os.environ.get("CONTINUUM_TEST_SCRIPT") == "slow"
    sys.exit(
        main(sys.argv[1:], backend=ScriptedBackend(reply, token_delay_s=0.1 if slow else 0.01))
    )
