"""Audio and images shared in Slack: fetched with the bot token, only from Slack's own file
host (a forged ``url_private`` never makes continuum fetch from elsewhere), size-capped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from continuum.envelope import AudioPart, ImagePart
from continuum.media.fetch import MediaFetcher

SLACK_FILE_HOSTS = frozenset({"files.slack.com", "files-edu.slack.com", "files-gov.slack.com"})


def media_kind(f: dict[str, Any]) -> str | None:
    mime = str(f.get("mimetype") or "")
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/") or f.get("subtype") == "slack_audio":
        return "audio"
    return None


class FileFetcher:
    """Slack's files through the core's MediaFetcher: the bot token, Slack's file hosts."""

    def __init__(self, token: str, api_url: str | None, max_bytes: int) -> None:
        local = {urlsplit(api_url).netloc} if api_url else set()
        # a self-hosted / test Slack serves its files where its API is
        self.fetcher = MediaFetcher(
            SLACK_FILE_HOSTS | local,
            max_bytes,
            headers={"Authorization": f"Bearer {token}"},
            plain_http_hosts=local,
        )

    def allowed(self, url: str) -> bool:
        return self.fetcher.allowed(url)

    async def fetch(self, files: Sequence[dict[str, Any]] | None) -> tuple[list, list[dict]]:
        """(media parts, files left as notes)."""
        parts: list[AudioPart | ImagePart] = []
        left: list[dict] = []
        for f in files or ():
            kind = media_kind(f)
            url = f.get("url_private_download") or f.get("url_private") or ""
            part = None
            if kind is not None and url:
                mime = str(f.get("mimetype") or ("audio/wav" if kind == "audio" else "image/png"))
                part = await self.fetcher.part(url, kind, mime, int(f.get("size") or 0))
            if part is None:
                left.append(f)
            else:
                parts.append(part)
        return parts, left
