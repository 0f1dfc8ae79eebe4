"""Fetching a shared file for a persona: only from hosts the platform names as its own, over
HTTPS (plain HTTP only for a loopback test peer the host names), never following
redirects, and never past a size cap — a forged URL cannot make continuum fetch from
elsewhere, and a huge file cannot fill memory. Host packages build one with their
platform's file hosts and credentials (Slack: files.slack.com and the bot token)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import httpx

from continuum.envelope import AudioPart, ImagePart

log = logging.getLogger("continuum.media.fetch")


class MediaFetcher:
    def __init__(
        self,
        hosts: Iterable[str],
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        plain_http_hosts: Iterable[str] = (),
        timeout_s: float = 30.0,
    ) -> None:
        self.hosts = frozenset(hosts) | frozenset(plain_http_hosts)
        self.plain_http_hosts = frozenset(plain_http_hosts)
        self.max_bytes = max_bytes
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.netloc not in self.hosts:
            return False
        return parts.scheme == "https" or (
            parts.scheme == "http" and parts.netloc in self.plain_http_hosts
        )

    async def get(self, url: str, size_hint: int | None = None) -> bytes | None:
        """The file's bytes, or None (not allowed, over the cap, or it failed: logged)."""
        if not self.allowed(url):
            host = urlsplit(url).netloc
            log.warning("not fetching from %s: not one of the platform's file hosts", host)
            return None
        if size_hint is not None and size_hint > self.max_bytes:
            return None
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client,
                client.stream("GET", url, headers=self.headers) as response,
            ):
                if response.status_code != 200:
                    log.warning("fetching a shared file failed: HTTP %s", response.status_code)
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > self.max_bytes:
                        log.warning("a shared file is over the size cap; named instead")
                        return None
                return bytes(data)
        except httpx.HTTPError as exc:
            log.warning("fetching a shared file failed: %s", exc)
            return None

    async def part(
        self, url: str, kind: str, mime: str, size_hint: int | None = None
    ) -> AudioPart | ImagePart | None:
        """An audio or image part for the media path, or None."""
        data = await self.get(url, size_hint)
        if data is None:
            return None
        if kind == "audio":
            return AudioPart(data=data, mime=mime)
        return ImagePart(data=data, mime=mime)
