"""Start a real llama-server (built from the llama-cpp-python sdist by
scripts/build-llama-server) on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL = "./scripts/build-llama-server  (or run ./scripts/test, which builds it once)"


def llama_server_binary() -> Path:
    """The cached llama-server; CONTINUUM_LLAMA_SERVER overrides the path."""
    env = os.environ.get("CONTINUUM_LLAMA_SERVER")
    if env:
        path = Path(env)
    else:
        cache = Path(
            os.environ.get("CONTINUUM_CACHE")
            or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "continuum"
        )
        path = cache / "llama-server" / "0.3.36-noamx" / "llama-server"  # build-llama-server
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"llama-server not found at {path}; build it: {INSTALL}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process: ``url``, ``stop()``, ``start()`` again on the same port."""

    def __init__(
        self,
        model: Path,
        slots: int = 2,
        slot_ctx: int = 2048,
        slot_save_path: Path | None = None,
        loras: tuple[Path, ...] = (),
        threads: int = 2,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = llama_server_binary()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(self.binary),
            "-m", str(model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-np", str(slots),
            "-c", str(slots * slot_ctx),
            "-t", str(threads),
            "--cache-ram", "0",  # no server-side prompt cache: slots are what we measure
            *extra,
        ]  # fmt: skip
        if slot_save_path is not None:
            slot_save_path.mkdir(parents=True, exist_ok=True)
            self.args += ["--slot-save-path", f"{slot_save_path}/"]
        for lora in loras:
            self.args += ["--lora", str(lora)]
        if loras:
            self.args.append("--lora-init-without-apply")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{self.port}.log"

    def start(self, timeout_s: float = 60.0) -> LlamaServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}; log: {self.log_path}\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama-server did not become healthy in {timeout_s}s ({self.log_path})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
