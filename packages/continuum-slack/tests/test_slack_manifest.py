"""The app manifest asks for exactly the scopes the host uses: every Web API method the
host calls, the events it subscribes to and the features it uses (posting as a persona,
fetching files), per Slack's method and event documentation. A new API call fails this
test until the table and the manifest say what it needs."""

from __future__ import annotations

import re
from pathlib import Path

import continuum_slack

PACKAGE = Path(continuum_slack.__file__).parent
MANIFEST = PACKAGE.parent.parent / "manifest.yaml"

# Slack's documented bot-token scopes per Web API method the host calls
METHOD_SCOPES = {
    "auth_test": set(),
    "apps_connections_open": set(),  # the app-level token (connections:write), not a bot scope
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_startStream": {"chat:write"},
    "chat_appendStream": {"chat:write"},
    "chat_stopStream": {"chat:write"},
    "reactions_add": {"reactions:write"},
    "reactions_remove": {"reactions:write"},
    "users_info": {"users:read"},
    "conversations_info": {"channels:read", "groups:read", "im:read", "mpim:read"},
    "conversations_replies": {
        "channels:history", "groups:history", "im:history", "mpim:history",
    },
    "files_upload_v2": {"files:write"},
}  # fmt: skip
EVENT_SCOPES = {
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "message.mpim": {"mpim:history"},
    "reaction_added": {"reactions:read"},
    "reaction_removed": {"reactions:read"},
}
FEATURE_SCOPES = {
    "chat:write.customize",  # each persona posts under its own name and avatar
    "files:read",  # shared audio and images are fetched (url_private)
    "commands",  # /continuum
}


def manifest_list(section: str) -> set[str]:
    text = MANIFEST.read_text()
    block = text.split(f"{section}:", 1)[1]
    items = []
    for line in block.splitlines()[1:]:
        m = re.match(r"^\s+-\s+([\w:.]+)", line)
        if m:
            items.append(m.group(1))
        elif line.strip() and not line.strip().startswith("#"):
            break
    return set(items)


def methods_called() -> set[str]:
    source = "\n".join(p.read_text() for p in PACKAGE.glob("*.py"))
    return set(re.findall(r"client\.(\w+)\(", source))


def test_every_method_the_host_calls_is_known():
    assert methods_called() <= METHOD_SCOPES.keys(), methods_called() - METHOD_SCOPES.keys()


def test_the_manifest_asks_for_exactly_the_scopes_used():
    events = manifest_list("bot_events")
    assert events == set(EVENT_SCOPES)
    needed = set(FEATURE_SCOPES)
    for method in methods_called():
        needed |= METHOD_SCOPES[method]
    for event in events:
        needed |= EVENT_SCOPES[event]
    assert manifest_list("bot") == needed
