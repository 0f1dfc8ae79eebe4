"""A local Hugging Face Hub for the tests: the far side of ``huggingface_hub``, speaking
the endpoints the client uses (../shared/TESTING-HOSTS.md) over plain HTTP on 127.0.0.1.

- ``GET /api/models`` — ``filter`` (every one must be among the repo's tags), ``author``,
  ``search`` (in the id), ``limit``; pages of ``page_size`` with ``Link: <…>; rel="next"``.
- ``GET /api/models/{id}[/revision/{rev}]`` — id, sha, tags, cardData, siblings (with
  sizes and LFS sha256 when ``blobs=true``), downloads, likes, private.
- ``GET /api/models/{id}/tree/{rev}`` — files (``lfs.oid`` = sha256 for weights), paged.
- ``HEAD``/``GET /{id}/resolve/{rev}/{path}`` — ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, ``Range`` (206) for resumed downloads.
- ``POST /api/repos/create``, ``POST /api/validate-yaml``,
  ``POST /api/models/{id}/preupload/{rev}`` (every file ``regular``: no Xet, no LFS),
  ``POST /api/models/{id}/commit/{rev}`` (ndjson: header, files base64).
- ``GET /api/agent-harnesses``.

Tags come from the README's YAML front matter, as on the real Hub. Test hooks: ``tamper``
(serve other bytes than the tree's checksum), ``cut_after`` (drop a download mid-file
once), ``stall_after`` (hang mid-file once, as a network that stops answering),
``requests`` and ``ranges`` (what was asked, and the ranges of resumed downloads)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import model_path  # noqa: F401 - the default model, or its install line

TOKEN = "hf_local_test_token"
LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".ckpt", ".pth", ".onnx", ".wav")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def front_matter(readme: bytes | None) -> dict[str, Any]:
    if not readme:
        return {}
    text = readme.decode("utf-8", "replace")
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not m:
        return {}
    data = yaml.safe_load(m.group(1)) or {}
    return data if isinstance(data, dict) else {}


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    at: float = field(default_factory=time.time)


@dataclass
class Repo:
    id: str
    private: bool = False
    commits: list[Commit] = field(default_factory=list)
    downloads: int = 0
    tamper: dict[str, bytes] = field(default_factory=dict)  # path -> bytes served instead

    def at(self, rev: str) -> Commit | None:
        if rev in ("main", "HEAD") and self.commits:
            return self.commits[-1]
        return next((c for c in self.commits if c.sha == rev or c.sha.startswith(rev)), None)

    def card(self, commit: Commit | None = None) -> dict[str, Any]:
        commit = commit or self.commits[-1]
        return front_matter(commit.files.get("README.md"))

    def tags(self, commit: Commit | None = None) -> list[str]:
        card = self.card(commit)
        tags = [str(t) for t in card.get("tags") or []]
        if card.get("library_name"):
            tags.append(str(card["library_name"]))
        if card.get("license"):
            tags.append(f"license:{card['license']}")
        bases = card.get("base_model") or []
        bases = [bases] if isinstance(bases, str) else bases
        relation = card.get("base_model_relation")
        for base in bases:
            tags.append(f"base_model:{base}")
            if relation:
                tags.append(f"base_model:{relation}:{base}")
        files = (commit or self.commits[-1]).files
        if any(p.endswith(".gguf") for p in files):
            tags.append("gguf")
        if any(p.endswith(".safetensors") for p in files):
            tags.append("safetensors")
        return sorted(set(tags))


def _entry(path: str, data: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
    if path.endswith(LFS_SUFFIXES):
        sha = hashlib.sha256(data).hexdigest()
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
        )
        entry["oid"] = git_blob_sha1(pointer.encode())
        entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": len(pointer)}
    else:
        entry["oid"] = git_blob_sha1(data)
    return entry


class LocalHub:
    """The server and its repos. ``add(repo_id, files)`` makes a commit (README.md holds
    the card); ``url`` is what ``HF_ENDPOINT`` must be."""

    def __init__(self, page_size: int = 3) -> None:
        self.repos: dict[str, Repo] = {}
        self.page_size = page_size
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of resumed downloads
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.stall_after: dict[str, int] = {}  # path -> bytes sent before it hangs (once)
        self.stalled = threading.Event()  # a download hangs now
        self._release = threading.Event()
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, repo_id: str, files: dict[str, bytes | str], private: bool = False) -> str:
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id, private=private))
            base = dict(repo.commits[-1].files) if repo.commits else {}
            base.update({p: d.encode() if isinstance(d, str) else d for p, d in files.items()})
            sha = hashlib.sha1(f"{repo_id}{len(repo.commits)}{time.time_ns()}".encode()).hexdigest()
            repo.commits.append(Commit(sha, base))
            return sha

    # --- answers ------------------------------------------------------------------------

    def info(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, data in sorted(commit.files.items()):
            s: dict[str, Any] = {"rfilename": path}
            if blobs:
                e = _entry(path, data)
                s.update(size=e["size"], blobId=e["oid"])
                if "lfs" in e:
                    s["lfs"] = {"sha256": e["lfs"]["oid"], "size": e["size"],
                                "pointerSize": e["lfs"]["pointerSize"]}  # fmt: skip
            siblings.append(s)
        card = repo.card(commit)
        return {
            "_id": hashlib.md5(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "modelId": repo.id,
            "author": repo.id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": repo.downloads,
            "likes": 0,
            "tags": repo.tags(commit),
            "library_name": card.get("library_name"),
            "cardData": card or None,
            "siblings": siblings,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.at)),
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(repo.commits[0].at)),
            "usedStorage": sum(len(d) for d in commit.files.values()),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            # --- plumbing -----------------------------------------------------------------

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      head: bool = False) -> None:  # fmt: skip
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(data).encode(),
                           {"Content-Type": "application/json", **(headers or {})})  # fmt: skip

            def _partial(self, status: int, headers: dict[str, str], sent: bytes) -> None:
                """Headers for the whole body, then only ``sent`` of it."""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(sent)
                self.wfile.flush()

            def _error(self, status: int, message: str, code: str = "") -> None:
                headers = {"X-Error-Message": message}
                if code:
                    headers["X-Error-Code"] = code
                self._json(status, {"error": message}, headers)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _authorized(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {TOKEN}"

            def _repo(self, repo_id: str) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None or (repo.private and not self._authorized()):
                    self._error(404, "Repository not found", "RepoNotFound")
                    return None
                return repo

            # --- verbs ----------------------------------------------------------------------

            def do_HEAD(self) -> None:
                self._route(head=True)

            def do_GET(self) -> None:
                self._route(head=False)

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                hub.requests.append(("POST", url.path))
                body = self._body()
                path = urllib.parse.unquote(url.path)
                if path == "/api/repos/create":
                    return self._create(json.loads(body))
                if path == "/api/validate-yaml":
                    return self._json(200, {"errors": [], "warnings": []})
                m = re.fullmatch(r"/api/models/(.+?)/(preupload|commit)/([^/]+)", path)
                if not m:
                    return self._error(404, f"no route POST {path}")
                if not self._authorized():
                    return self._error(401, "Invalid credentials in Authorization header")
                repo = self._repo(m.group(1))
                if repo is None:
                    return None
                if m.group(2) == "preupload":
                    files = json.loads(body).get("files", [])
                    return self._json(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ], "commitOid": repo.commits[-1].sha if repo.commits else None})  # fmt: skip
                return self._commit(repo, body)

            def _create(self, payload: dict[str, Any]) -> None:
                if not self._authorized():
                    return self._error(401, "Invalid credentials in Authorization header")
                repo_id = f"{payload.get('organization')}/{payload['name']}"
                if repo_id in hub.repos:
                    return self._error(409, "You already created this model repo")
                private = payload.get("visibility") == "private" or bool(payload.get("private"))
                hub.repos[repo_id] = Repo(repo_id, private=private)
                hub.add(repo_id, {".gitattributes": "*.gguf filter=lfs\n"})
                return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

            def _commit(self, repo: Repo, body: bytes) -> None:
                files: dict[str, bytes] = {}
                summary = ""
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        summary = item["value"].get("summary", "")
                    elif item["key"] == "file":
                        value = item["value"]
                        if value.get("encoding") != "base64":
                            return self._error(400, "files must be base64")
                        files[value["path"]] = base64.b64decode(value["content"])
                    else:
                        return self._error(400, f"unsupported commit item {item['key']}")
                del summary
                sha = hub.add(repo.id, files)  # type: ignore[arg-type]
                return self._json(200, {"commitUrl": f"{hub.url}/{repo.id}/commit/{sha}",
                                        "commitOid": sha, "success": True})  # fmt: skip

            def _route(self, head: bool) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                path = urllib.parse.unquote(url.path)
                hub.requests.append(("HEAD" if head else "GET", path))
                if self.headers.get("Range"):
                    hub.ranges.append((path, self.headers["Range"]))
                if path == "/api/agent-harnesses":
                    return self._json(200, {"standardEnvVars": [], "harnesses": {}})
                if path == "/api/whoami-v2":
                    if not self._authorized():
                        return self._error(401, "Invalid credentials")
                    return self._json(200, {"type": "user", "name": "tester", "orgs": []})
                if path == "/api/models":
                    return self._list(query, url.path)
                m = re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)(/.*)?", path)
                if m:
                    return self._tree(m.group(1), m.group(2))
                m = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path)
                if m:
                    found = self._at(m.group(1), m.group(2) or "main")
                    if found is None:
                        return None
                    return self._json(200, hub.info(*found, "blobs" in query))
                m = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
                if m:
                    return self._resolve(m.group(1), m.group(2), m.group(3), head)
                return self._error(404, f"no route {path}")

            def _list(self, query: dict[str, list[str]], raw_path: str) -> None:
                filters = query.get("filter", [])
                author = (query.get("author") or [None])[0]
                search = ((query.get("search") or [""])[0]).lower()
                found = []
                for repo in sorted(hub.repos.values(), key=lambda r: r.id):
                    if (repo.private and not self._authorized()) or not repo.commits:
                        continue
                    tags = repo.tags()
                    if any(f not in tags for f in filters):
                        continue
                    if author and repo.id.split("/")[0] != author:
                        continue
                    if search and search not in repo.id.lower():
                        continue
                    found.append(repo)
                found.sort(key=lambda r: -r.downloads)
                offset = int((query.get("cursor") or ["0"])[0])
                page = found[offset : offset + hub.page_size]
                headers = {}
                if offset + hub.page_size < len(found):
                    rest = {k: v for k, v in query.items() if k != "cursor"}
                    rest["cursor"] = [str(offset + hub.page_size)]
                    nxt = f"{hub.url}{raw_path}?{urllib.parse.urlencode(rest, doseq=True)}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                full = "full" in query or "cardData" in query
                items = []
                for repo in page:
                    item = hub.info(repo, repo.commits[-1], blobs=False)
                    if not full:
                        item.pop("cardData")
                        item.pop("siblings")
                    items.append(item)
                return self._json(200, items, headers)

            def _at(self, repo_id: str, rev: str) -> tuple[Repo, Commit] | None:
                """The repo at ``rev``, or None with the Hub's 404 sent."""
                repo = self._repo(repo_id)
                if repo is None:
                    return None
                commit = repo.at(rev)
                if commit is None:
                    self._error(404, "Invalid rev id", "RevisionNotFound")
                    return None
                return repo, commit

            def _tree(self, repo_id: str, rev: str) -> None:
                found = self._at(repo_id, rev)
                if found is None:
                    return None
                _, commit = found
                entries = [_entry(p, d) for p, d in sorted(commit.files.items())]
                return self._json(200, entries)

            def _resolve(self, repo_id: str, rev: str, file: str, head: bool) -> None:
                found = self._at(repo_id, rev)
                if found is None:
                    return None
                repo, commit = found
                if file not in commit.files:
                    return self._error(404, "Entry not found", "EntryNotFound")
                true = commit.files[file]
                data = repo.tamper.get(file, true)
                entry = _entry(file, true)
                headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}  # fmt: skip
                if "lfs" in entry:
                    headers["ETag"] = f'"{entry["lfs"]["oid"]}"'
                    headers["X-Linked-Etag"] = f'"{entry["lfs"]["oid"]}"'
                    headers["X-Linked-Size"] = str(len(data))
                else:
                    headers["ETag"] = f'"{entry["oid"]}"'
                start = 0
                rng = self.headers.get("Range")
                status = 200
                if rng and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
                    start = int(m.group(1))
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                headers["Content-Length"] = str(len(body))
                if head:
                    return self._send(200, b"", {**headers, "Content-Length": str(len(data))},
                                      head=True)  # fmt: skip
                if start == 0:
                    repo.downloads += 1
                stall = hub.stall_after.pop(file, None)
                if stall is not None and stall < len(body):
                    self._partial(status, headers, body[:stall])
                    hub.stalled.set()
                    hub._release.wait(120)  # until the test is over: the client gives up
                    self.close_connection = True
                    return None
                cut = hub.cut_after.pop(file, None)
                if cut is not None and cut < len(body):
                    self._partial(status, headers, body[:cut])
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                return self._send(status, body, headers)

        return Handler


# --- fixtures and helpers ---------------------------------------------------------------

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def hub():
    server = LocalHub().start()
    yield server
    server.stop()


def card(base: str | None = SMOL, kind: str = "skill", license: str = "apache-2.0",
         **extra: Any) -> str:  # fmt: skip
    meta: dict[str, Any] = {"license": license, "library_name": "peft",
                            "tags": ["continuum", f"continuum-{kind}", "lora", "gguf"]}  # fmt: skip
    if base:
        meta.update(base_model=base, base_model_relation="adapter")
    meta.update(extra)
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# An adapter\n"


def cli_path() -> str:
    found = Path(sys.executable).parent / "continuum-hub"
    return str(found) if found.exists() else shutil.which("continuum-hub") or "continuum-hub"


class Cli:
    """``continuum-hub`` as a user runs it: its own process, the Hub at ``HF_ENDPOINT``
    (read when huggingface_hub is imported, so a fresh process per command)."""

    def __init__(self, hub: LocalHub, home: Path, data: Path, **env: str) -> None:
        self.hub, self.data = hub, data
        self.env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(home / "hf"),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "CONTINUUM_DATA": str(data),
            "NO_COLOR": "1",
            **env,
        }
        self.env.pop("HF_TOKEN", None)
        self.env.update(env)
        self.cwd = home

    def __call__(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [cli_path(), *args], capture_output=True, text=True, env={**self.env, **env},
            cwd=self.cwd, timeout=300,
        )  # fmt: skip
        if ok and done.returncode != 0:
            raise AssertionError(f"continuum-hub {' '.join(args)} failed:\n{done.stderr}")
        if not ok and done.returncode == 0:
            raise AssertionError(f"continuum-hub {' '.join(args)} succeeded:\n{done.stdout}")
        return done


@pytest.fixture
def cli(hub, tmp_path):
    return Cli(hub, tmp_path, tmp_path / "data")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
