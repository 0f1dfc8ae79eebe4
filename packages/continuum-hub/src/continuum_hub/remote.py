"""The Hub as continuum-hub reads it, through ``huggingface_hub`` (unpatched): a repo at a
pinned commit with its card, tags and files (each with the checksum the Hub lists), and
model listings filtered the way the Hub's model tree and tags allow.

``HF_ENDPOINT`` is read by ``huggingface_hub`` when it is first imported: :func:`api`
sets it from ``[plugins.hub] endpoint`` before that import, and passes it along too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from continuum_hub.errors import HubError
from continuum_hub.safety import check_name
from continuum_hub.settings import HubSettings

if TYPE_CHECKING:
    from huggingface_hub import HfApi

Kind = Literal["voice", "skill", "model"]
KIND_TAGS = {"voice": "continuum-voice", "skill": "continuum-skill"}


def api(settings: HubSettings) -> HfApi:
    if settings.endpoint:
        os.environ.setdefault("HF_ENDPOINT", settings.endpoint)
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(settings), token=settings.token() or False)


def endpoint(settings: HubSettings) -> str:
    return (settings.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip(
        "/"
    )


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files: the sha256 the Hub lists
    git_oid: str  # the git blob id (what a small file's content must hash to)


@dataclass
class RepoView:
    """One repo at one commit."""

    repo_id: str
    sha: str
    card: dict[str, Any]
    tags: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    downloads: int = 0
    private: bool = False

    @property
    def author(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def license(self) -> str:
        lic = self.card.get("license")
        if lic in (None, "other"):
            lic = self.card.get("license_name") or lic
        return str(lic or "")

    @property
    def base_models(self) -> tuple[str, ...]:
        base = self.card.get("base_model") or ()
        return (base,) if isinstance(base, str) else tuple(str(b) for b in base)

    @property
    def kind(self) -> Kind:
        if "continuum-voice" in self.tags:
            return "voice"
        if "continuum-skill" in self.tags or self.card.get("base_model_relation") == "adapter":
            return "skill"
        if self.card.get("library_name") == "peft" or any(
            f.path.endswith("adapter_config.json") for f in self.files
        ):
            return "skill"
        return "model"

    def file(self, path: str) -> RemoteFile:
        found = next((f for f in self.files if f.path == path), None)
        if found is None:
            raise HubError(f"{self.repo_id}@{self.sha[:12]} has no file {path!r}")
        return found


def split_ref(ref: str) -> tuple[str, str]:
    """``OWNER/NAME[@REV]`` -> (repo id, revision; default main)."""
    repo, _, rev = ref.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
        raise HubError(f"{ref!r}: name a repo as OWNER/NAME, optionally @REVISION")
    return repo, rev or "main"


def view(settings: HubSettings, repo_id: str, revision: str = "main") -> RepoView:
    """The repo at ``revision`` resolved to its commit (every later read uses that sha)."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = api(settings)
    try:
        info = hub.model_info(repo_id, revision=revision, files_metadata=True)
        entries = list(hub.list_repo_tree(repo_id, revision=info.sha, recursive=True))
    except RepositoryNotFoundError as exc:
        raise HubError(
            f"{repo_id}: no such repo on {endpoint(settings)} (or it is private)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise HubError(f"{repo_id}: no revision {revision!r}") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"{repo_id}: the Hub answered {exc}") from exc
    from huggingface_hub.hf_api import RepoFile

    files = []
    for entry in entries:
        if not isinstance(entry, RepoFile):
            check_name(entry.path)
            continue  # a folder
        name = check_name(entry.path)  # one bad name: the whole repo is refused
        lfs = getattr(entry, "lfs", None)
        sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
        files.append(RemoteFile(name, int(entry.size), sha256, str(entry.blob_id)))
    card = dict(info.card_data.to_dict()) if info.card_data is not None else {}
    return RepoView(
        repo_id=info.id,
        sha=str(info.sha),
        card=card,
        tags=tuple(info.tags or ()),
        files=tuple(files),
        downloads=int(info.downloads or 0),
        private=bool(info.private),
    )


def _kind_of_tags(tags: tuple[str, ...]) -> str:
    if "continuum-voice" in tags:
        return "voice"
    return "skill" if "continuum-skill" in tags or "peft" in tags else "model"


@dataclass(frozen=True)
class Listing:
    repo_id: str
    author: str
    base: str
    license: str
    downloads: int
    kind: str
    size: int | None


def browse(
    settings: HubSettings,
    kind: Kind | None = None,
    bases: tuple[str, ...] = (),
    search: str | None = None,
    limit: int = 20,
    page: int = 1,
) -> list[Listing]:
    """One page of repos: adapters of the given bases (the Hub's model tree,
    ``base_model:adapter:<id>``), tagged ``continuum-voice``/``continuum-skill`` for a
    kind; GGUF models for ``kind="model"``."""
    from itertools import islice

    hub = api(settings)
    filters: list[str] = []
    if kind in KIND_TAGS:
        filters.append(KIND_TAGS[kind])
    elif kind == "model":
        filters.append("gguf")
    rows: list[Listing] = []
    seen: set[str] = set()
    for base in bases or (None,):
        wanted = list(filters)
        if base is not None:
            wanted.append(f"base_model:adapter:{base}" if kind != "model" else f"base_model:{base}")
        found = hub.list_models(
            filter=wanted or None, search=search, cardData=True, sort="downloads"
        )
        for m in islice(found, (page - 1) * limit, page * limit):
            if m.id in seen:
                continue
            seen.add(m.id)
            card = dict(m.card_data.to_dict()) if m.card_data is not None else {}
            tags = tuple(m.tags or ())
            base_ids = card.get("base_model") or ""
            rows.append(
                Listing(
                    repo_id=m.id,
                    author=m.author or m.id.split("/")[0],
                    base=base_ids if isinstance(base_ids, str) else ",".join(base_ids),
                    license=str(card.get("license") or ""),
                    downloads=int(m.downloads or 0),
                    kind=_kind_of_tags(tags),
                    size=int(m.used_storage) if getattr(m, "used_storage", None) else None,
                )
            )
    return rows[:limit]
