"""Access tokens, minted locally from the API key and secret (``livekit-api``)."""

from __future__ import annotations

import datetime
import json
import warnings
from typing import Literal

from livekit import api


def mint_token(
    key: str,
    secret: str,
    room: str,
    identity: str,
    *,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    kind: Literal["standard", "agent"] = "standard",
    hidden: bool = False,
    publish: bool = True,
    subscribe: bool = True,
    ttl: datetime.timedelta = datetime.timedelta(hours=6),
) -> str:
    """A JWT that lets ``identity`` join ``room`` (and nothing else)."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=publish,
        can_subscribe=subscribe,
        can_publish_data=True,
        hidden=hidden or None,
        agent=kind == "agent" or None,
    )
    token = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_name(name or identity)
        .with_kind(kind)
        .with_ttl(ttl)
        .with_grants(grants)
    )
    if metadata:
        token = token.with_metadata(json.dumps(metadata))
    with warnings.catch_warnings():  # the dev server's "secret" is shorter than HMAC likes
        warnings.simplefilter("ignore")
        return token.to_jwt()
