"""Downloading one file of a pinned commit and proving it is the file the Hub lists.

Into a staging folder kept per repo and commit: an interrupted download leaves its
``.part`` there, and the next pull resumes it (an HTTP ``Range`` request). The finished
file must hash to the Hub's sha256 (LFS) or git blob id; otherwise it is deleted and the
pull fails — nothing of it is installed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from continuum.genome.registry import file_sha256
from continuum_hub.errors import ChecksumMismatch, HubError
from continuum_hub.remote import RemoteFile, endpoint, offline
from continuum_hub.safety import check_name
from continuum_hub.settings import HubSettings


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, file: RemoteFile) -> None:
    size = path.stat().st_size
    if size != file.size:
        raise ChecksumMismatch(f"{file.path}: {size} bytes downloaded, the Hub lists {file.size}")
    if file.sha256 is not None:
        got, want = file_sha256(path), file.sha256
    else:
        got, want = git_blob_sha1(path), file.git_oid
    if got != want:
        raise ChecksumMismatch(
            f"{file.path}: the download hashes to {got[:16]}…, the Hub lists {want[:16]}…; "
            "it was changed on the way and is not installed"
        )


def fetch(
    settings: HubSettings,
    repo_id: str,
    sha: str,
    file: RemoteFile,
    staging: Path,
    progress: bool = True,
    retries: int = 4,
) -> Path:
    """``file`` of ``repo_id`` at commit ``sha``, downloaded into ``staging`` (resumed from
    its ``.part`` when an earlier pull was interrupted) and verified; the verified path.

    The URL, headers (token, user agent) and HTTP session are ``huggingface_hub``'s; the
    loop is ours because the library keeps no partial file across processes (each try
    writes a fresh temporary file, deleted on failure), and a multi-GB model pulled over a
    flaky link must not start over after Ctrl-C."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status, tqdm

    name = check_name(file.path)
    if offline():
        raise HubError(f"{repo_id}/{name}@{sha[:12]}: offline (HF_HUB_OFFLINE) and not pulled")
    target = (staging / name).resolve()
    if not target.is_relative_to(staging.resolve()):
        raise HubError(f"{name}: would be written outside {staging}")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = hf_hub_url(repo_id, name, revision=sha, endpoint=endpoint(settings))
    bar = tqdm(total=file.size, unit="B", unit_scale=True, desc=name, disable=not progress)
    try:
        for attempt in range(retries + 1):
            have = part.stat().st_size if part.exists() else 0
            if have > file.size:  # not this file: start over
                part.unlink()
                have = 0
            if have:
                bar.n = have
                bar.refresh()
            if have == file.size:
                break
            headers = build_hf_headers(token=settings.token() or False)
            headers["Accept-Encoding"] = "identity"
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with get_session().stream(
                    "GET", url, headers=headers, follow_redirects=True, timeout=60
                ) as response:
                    hf_raise_for_status(response)
                    if have and response.status_code != 206:  # the server sent it all again
                        have = 0
                    with part.open("ab" if have else "wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                            bar.update(len(chunk))
            except HfHubHTTPError as exc:
                raise HubError(f"{repo_id}/{name}: the Hub refused the download ({exc})") from exc
            except Exception as exc:  # the network: try again from where it stopped
                if attempt == retries or not _transient(exc):
                    raise HubError(
                        f"{repo_id}/{name}: download failed ({exc}); pull again to resume it"
                    ) from exc
                time.sleep(min(8.0, 0.5 * 2**attempt))
    finally:
        bar.close()
    try:
        verify(part, file)
    except ChecksumMismatch:
        part.unlink(missing_ok=True)  # never resumed from bytes that were wrong
        raise
    part.replace(target)
    return target


def _transient(exc: BaseException) -> bool:
    import httpx2

    return isinstance(exc, httpx2.TransportError | OSError)
