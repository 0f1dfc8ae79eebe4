"""What was pulled, and from where: ``<data dir>/hub/pulled.json`` (written atomically),
one record per install with the repo, the pinned commit, the file's checksum, licence and
author — the provenance a user (or a later publish) can show. Models live under
``<data dir>/hub/models/<owner>--<name>/<commit>/``; adapters in the genome registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum.memory.atomic import atomic_write_bytes, private_dir
from continuum_hub.errors import HubError


class PulledRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    revision: str  # the commit sha it was pinned to
    asked: str = "main"  # the revision asked for (a branch, a tag, a sha)
    kind: Literal["voice", "skill", "model"]
    file: str
    sha256: str
    size: int
    license: str = ""
    author: str = ""
    base_models: tuple[str, ...] = ()
    # adapters: "<owner>/<adapter id>" in the genome; models: the path under the data dir
    installed_as: str
    pulled_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def ref(self) -> str:
        return f"{self.repo}@{self.revision[:12]}"


class _Pulled(BaseModel):
    records: list[PulledRecord] = Field(default_factory=list)


class PulledStore:
    def __init__(self, data_dir: Path) -> None:
        self.dir = private_dir(Path(data_dir) / "hub")
        self.path = self.dir / "pulled.json"

    def _load(self) -> _Pulled:
        if not self.path.exists():
            return _Pulled()
        try:
            return _Pulled.model_validate_json(self.path.read_bytes())
        except ValueError as exc:
            raise HubError(f"{self.path}: not a valid list of pulls: {exc}") from exc

    def records(self) -> list[PulledRecord]:
        return list(self._load().records)

    def add(self, record: PulledRecord) -> None:
        data = self._load()
        data.records = [r for r in data.records if r.installed_as != record.installed_as]
        data.records.append(record)
        atomic_write_bytes(self.path, data.model_dump_json(indent=1).encode())

    def remove(self, record: PulledRecord) -> None:
        data = self._load()
        data.records = [r for r in data.records if r != record]
        atomic_write_bytes(self.path, data.model_dump_json(indent=1).encode())

    def find(
        self, repo: str, revision: str | None = None, file: str | None = None
    ) -> list[PulledRecord]:
        out = []
        for r in self.records():
            if r.repo.lower() != repo.lower() or (file is not None and r.file != file):
                continue
            if revision is None or revision == r.asked or r.revision.startswith(revision):
                out.append(r)
        return out

    def models_dir(self) -> Path:
        return private_dir(self.dir / "models")

    def staging_dir(self, repo: str, sha: str) -> Path:
        return private_dir(self.dir / "staging" / f"{repo.replace('/', '--')}@{sha}")
