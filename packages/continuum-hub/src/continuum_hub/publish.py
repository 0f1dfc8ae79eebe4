"""``continuum-hub publish``: one adapter of a persona's genome, with its card, to a Hub
repo. An adapter trained on people's words carries them: it is refused unless every one
of those people is named as having released it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from continuum.genome.registry import SHARED, GenomeRegistry
from continuum_hub.cards import adapter_card
from continuum_hub.errors import HubError
from continuum_hub.remote import api, split_ref
from continuum_hub.settings import HubSettings


@dataclass(frozen=True)
class Published:
    repo_id: str
    commit: str
    url: str
    card: str


def publish(
    data_dir: Path,
    adapter: str,
    repo: str,
    settings: HubSettings | None = None,
    *,
    persona: str | None = None,
    private: bool = False,
    license: str | None = None,
    released_by: tuple[str, ...] = (),
    base_model: Path | None = None,
    voice_model: Path | None = None,
    description: str = "",
) -> Published:
    settings = settings or HubSettings()
    repo_id, _ = split_ref(repo)
    owner = persona or SHARED
    registry = GenomeRegistry(data_dir, base_model=base_model, voice_model=voice_model)
    record = registry.get(owner, adapter)
    if record is None:
        raise HubError(f"{owner} has no adapter {adapter!r} (continuum genome list)")
    unreleased = sorted(set(record.people) - {p.lower() for p in released_by})
    if unreleased:
        raise HubError(
            f"{adapter} was trained on what {', '.join(unreleased)} said; it is not published "
            "unless each of them released it (--released-by "
            + ",".join(unreleased)
            + " once they have)"
        )
    lic = license or record.license
    if not lic:
        raise HubError(f"{adapter} records no licence: name one with --license (e.g. apache-2.0)")
    base = voice_model if record.kind == "voice" else base_model
    base_id = settings.hub_id_of(base) if base is not None else None
    if base_id is None:
        raise HubError(
            f"which Hub repo is {record.base_model}? Name it in continuum.toml: "
            f'[plugins.hub] base_ids = {{ "{record.base_model}" = "OWNER/NAME" }}'
        )
    registry.checked(record)  # the file is intact and for this base
    card = adapter_card(record, base_id, lic, description)
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    hub = api(settings)
    try:
        hub.create_repo(repo_id, private=private, exist_ok=True)
        info = hub.create_commit(
            repo_id,
            operations=[
                CommitOperationAdd("README.md", card.encode()),
                CommitOperationAdd(f"{record.id}.gguf", str(registry.dir / record.file)),
            ],
            commit_message=f"continuum-hub: {record.kind} adapter {record.id}",
        )
    except HfHubHTTPError as exc:
        raise HubError(f"publishing to {repo_id} failed: {exc}") from exc
    return Published(repo_id, str(info.oid), str(info.commit_url), card)
