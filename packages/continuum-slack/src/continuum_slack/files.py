"""Audio and images shared in Slack: fetched with the bot token, only from Slack's own file
host (a forged ``url_private`` never makes continuum fetch from elsewhere), size-capped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from continuum.envelope import AudioPart, ImagePart

log = logging.getLogger("continuum.slack.files")
SLACK_FILE_HOSTS = frozenset({"files.slack.com", "files-edu.slack.com", "files-gov.slack.com"})


def media_kind(f: dict[str, Any]) -> str | None:
    mime = str(f.get("mimetype") or "")
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/") or f.get("subtype") == "slack_audio":
        return "audio"
    return None


class FileFetcher:
    def __init__(self, token: str, api_url: str | None, max_bytes: int) -> None:
        self.token = token
        self.max_bytes = max_bytes
        self.hosts = set(SLACK_FILE_HOSTS)
        if api_url:  # a self-hosted / test Slack serves its files where its API is
            self.hosts.add(urlsplit(api_url).netloc)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.netloc in self.hosts - SLACK_FILE_HOSTS
        return (parts.scheme == "https" or local) and parts.netloc in self.hosts

    async def fetch(self, files: Sequence[dict[str, Any]] | None) -> tuple[list, list[dict]]:
        """(media parts, files left as notes)."""
        parts: list[AudioPart | ImagePart] = []
        left: list[dict] = []
        for f in files or ():
            kind = media_kind(f)
            url = f.get("url_private_download") or f.get("url_private") or ""
            size = int(f.get("size") or 0)
            if kind is None or not url or not self.allowed(url) or size > self.max_bytes:
                if kind is not None and url and not self.allowed(url):
                    log.warning("not fetching %s: not on Slack's file host", f.get("id"))
                left.append(f)
                continue
            data = await self._get(url)
            if data is None:
                left.append(f)
                continue
            mime = str(f.get("mimetype") or ("audio/wav" if kind == "audio" else "image/png"))
            part = AudioPart if kind == "audio" else ImagePart
            parts.append(part(data=data, mime=mime))
        return parts, left

    async def _get(self, url: str) -> bytes | None:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with (
                httpx.AsyncClient(timeout=30.0, follow_redirects=False) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code != 200:
                    log.warning("fetching a shared file failed: HTTP %s", response.status_code)
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > self.max_bytes:
                        log.warning("a shared file is over the size cap; announced by name")
                        return None
                return bytes(data)
        except httpx.HTTPError as exc:
            log.warning("fetching a shared file failed: %s", exc)
            return None
