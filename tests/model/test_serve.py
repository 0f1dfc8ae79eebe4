"""`continuum serve` as a user runs it: one process, the console host and a third-party host
plugin (examples/host-plugin, found through CONTINUUM_PLUGINS like any entry point), the
real embedded model, one person linked across both hosts."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, THREADS

pytestmark = pytest.mark.model


def read_until(stream, marker: str, timeout: float = 120.0) -> str:
    """Read a pipe line by line until a line contains ``marker``."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    out = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1.0):
            line = stream.readline()
            if not line:
                break
            out += line
            if marker in line:
                return out
    raise AssertionError(f"never saw {marker!r}; got:\n{out}")


def recv_until(sock: socket.socket, marker: str, timeout: float = 120.0) -> str:
    sock.settimeout(timeout)
    data = b""
    while marker.encode() not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data!r}")
        data += chunk
    return data.decode()


def test_serve_runs_two_hosts_with_one_memory(tmp_path: Path, model_path):
    data = tmp_path / "data"
    port_file = tmp_path / "tcpchat.port"
    config = tmp_path / "continuum.toml"
    config.write_text(
        f"""
[personas]
paths = ["{REPO / "examples" / "personas"}"]
only = ["maya"]

[backend]
threads = {THREADS}

[memory]
data_dir = "{data}"

[policy]
cognition = "direct"
reply_max_tokens = 16

[[people]]
id = "sam"
name = "Sam"
host_ids = ["console:console-user", "tcpchat:sam"]

[hosts.console]
user_name = "Sam"

[hosts.tcpchat]
port = 0
port_file = "{port_file}"
"""
    )
    env = {
        **os.environ,
        "CONTINUUM_PLUGINS": "continuum_tcpchat",
        "PYTHONPATH": str(REPO / "examples" / "host-plugin" / "src"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "continuum", "serve", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        read_until(proc.stdout, "serving 1 personas on console, tcpchat")
        deadline = time.monotonic() + 60
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        port = int(port_file.read_text())

        # told on the console
        proc.stdin.write("Please remember that my sister Ada lives in Lisbon.\n")
        proc.stdin.flush()
        read_until(proc.stdout, "[Maya]")

        # asked on the other host, by the same person
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            recv_until(sock, "name? ")
            sock.sendall(b"sam\n")
            sock.sendall(b"Where does my sister Ada live?\n")
            reply = recv_until(sock, "\n", timeout=120)
            assert reply.startswith("[Maya] ") and len(reply.strip()) > len("[Maya]")
            sock.sendall(b"/why\n")
            why = recv_until(sock, "\n")
            assert "Ada lives in Lisbon" in why  # recalled across hosts: one person
            sock.sendall(b"+1\n/state maya\n")
            state = recv_until(sock, "trust")
            assert "Maya: energy" in state

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    saved = json.loads((data / "state" / "maya.json").read_text())
    assert saved["reputation"]["positive_reactions"] == 1
    assert saved["reputation"]["contributions"] >= 2
    journals = list((data / "personas" / "maya" / "journal").rglob("2*.md"))
    assert any("Ada lives in Lisbon" in p.read_text() for p in journals)
