"""The genome registry: each persona's LoRA adapters (and a shared library), with what a
person needs to trust them — kind (skill | voice), the base model they were made for (its
file hash), rank, alpha, target tensors, size, provenance, license.

Adapters live under ``<data dir>/genome/<persona>/<id>.gguf`` (0600), the records in
``<data dir>/genome/registry.json``. An adapter made for another base model is refused
with a clear error, at registration and when a runtime on another model loads it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum.backends.base import AdapterUse
from continuum.genome.gguf_header import GGUFError, check_tensor_data, read_header
from continuum.genome.pager import GenomeError
from continuum.memory.atomic import atomic_write_bytes, inside, private_dir, safe_unlink
from continuum.memory.journal import check_persona_id
from continuum.persona import AdapterRef, Persona

SHARED = "_shared"  # the library of adapters any persona may page in (cross-domain)


ADAPTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AdapterRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ADAPTER_ID.pattern)
    owner: str  # a persona id, or "_shared"
    kind: Literal["skill", "voice"] = "skill"
    file: str  # relative to the genome dir
    sha256: str
    size: int
    rank: int
    alpha: float
    targets: tuple[str, ...]  # the base tensors it changes ("attn_q", "attn_v", ...)
    architecture: str
    base_model: str  # the base model file's name
    base_model_sha256: str
    provenance: str = ""
    license: str = ""
    # trained adapters: whose words were in the training pairs (removed if one is forgotten)
    people: tuple[str, ...] = ()
    added_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def use(self, genome_dir: Path, scale: float = 1.0, pinned: bool = False) -> AdapterUse:
        return AdapterUse(id=self.id, path=str(genome_dir / self.file), scale=scale, pinned=pinned)

    def ref(self, genome_dir: Path) -> AdapterRef:
        return AdapterRef(id=self.id, kind=self.kind, path=str(genome_dir / self.file))


class _Registry(BaseModel):
    adapters: dict[str, dict[str, AdapterRecord]] = Field(default_factory=dict)  # owner -> id
    model_hashes: dict[str, str] = Field(default_factory=dict)  # "path|size|mtime" -> sha


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read 1 MiB at a time."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inspect_lora(path: Path, base_model: Path) -> dict:
    """What a GGUF LoRA file says about itself, checked against the base model."""
    try:
        adapter, base = read_header(path), read_header(base_model)
    except GGUFError as exc:
        raise GenomeError(str(exc)) from exc
    meta = adapter.metadata
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise GenomeError(f"{path} is not a LoRA adapter (general.type/adapter.type)")
    arch = str(meta.get("general.architecture", ""))
    base_arch = str(base.metadata.get("general.architecture", ""))
    if arch != base_arch:
        raise GenomeError(f"{path} is a LoRA for {arch!r}; the base model is {base_arch!r}")
    pairs = sorted(n[: -len(".lora_a")] for n in adapter.tensors if n.endswith(".lora_a"))
    if not pairs:
        raise GenomeError(f"{path} holds no lora_a/lora_b tensors")
    rank = 0
    for name in pairs:
        if name + ".lora_b" not in adapter.tensors or name not in base.tensors:
            raise GenomeError(f"{path}: {name} has no lora_b, or no such tensor in the base model")
        a, b, w = (
            adapter.tensors[name + ".lora_a"],
            adapter.tensors[name + ".lora_b"],
            base.tensors[name],
        )
        # ggml order: W [in, out]; A [in, rank]; B [rank, out]
        if a[0] != w[0] or b[-1] != w[-1] or a[-1] != b[0]:
            raise GenomeError(
                f"{path}: {name} shapes {a}x{b} do not fit the base model's {w}: "
                "this adapter was made for another base model"
            )
        rank = max(rank, int(a[-1]))
    try:
        check_tensor_data(path, adapter)
    except GGUFError as exc:
        raise GenomeError(str(exc)) from exc
    targets = sorted({n.split(".")[-2] for n in pairs})
    return {
        "rank": rank,
        "alpha": float(meta.get("adapter.lora.alpha", rank)),
        "targets": tuple(targets),
        "architecture": arch,
    }


class GenomeRegistry:
    """Adapters per owner, each checked against the base model of its kind: skill
    adapters against the text model (``base_model``), voice adapters against the TTS
    backbone (``voice_model``). A runtime that does not know a kind's base (a voice
    backbone is the TTS engine's) does not judge that kind: the engine that loads the
    adapter onto its model does (llama.cpp refuses an adapter for another model)."""

    def __init__(
        self, data_dir: Path, base_model: Path | None = None, voice_model: Path | None = None
    ) -> None:
        self.dir = private_dir(Path(data_dir) / "genome")
        self.path = self.dir / "registry.json"
        self.base_model = Path(base_model) if base_model else None
        self.voice_model = Path(voice_model) if voice_model else None
        self._data = self._load()

    def base_for(self, kind: str) -> Path | None:
        """The model adapters of ``kind`` are made for, as far as this registry knows."""
        return self.voice_model if kind == "voice" else self.base_model

    def _load(self) -> _Registry:
        if not self.path.exists():
            return _Registry()
        try:
            return _Registry.model_validate_json(self.path.read_bytes())
        except ValueError as exc:
            raise GenomeError(f"{self.path}: invalid genome registry: {exc}") from exc

    def _save(self) -> None:
        atomic_write_bytes(self.path, self._data.model_dump_json(indent=1).encode())

    def base_sha256(self, model: Path | None = None) -> str:
        model = model or self.base_model
        if model is None:
            raise GenomeError("no base model: the genome needs the model its adapters are for")
        st = model.stat()
        key = f"{model.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in self._data.model_hashes:
            self._data.model_hashes[key] = file_sha256(model)
            self._save()
        return self._data.model_hashes[key]

    # --- changing it ---------------------------------------------------------------------

    def add(
        self,
        owner: str,
        adapter_id: str,
        source: Path | str,
        kind: Literal["skill", "voice"] = "skill",
        license: str = "",
        provenance: str = "",
        people: tuple[str, ...] = (),
    ) -> AdapterRecord:
        if owner != SHARED:
            check_persona_id(owner)
        if not ADAPTER_ID.fullmatch(adapter_id) or ".." in adapter_id:
            raise GenomeError(
                f"adapter id {adapter_id!r}: use letters, digits, '.', '_' and '-' (up to 64), "
                "starting with a letter or digit"
            )
        source = Path(source)
        base = self.base_for(kind) or self.base_model  # a voice: its backbone when known
        if base is None:
            raise GenomeError("no base model: the genome needs the model its adapters are for")
        facts = inspect_lora(source, base)
        target = inside(self.dir, private_dir(self.dir / owner) / f"{adapter_id}.gguf")
        if self.get(owner, adapter_id) is not None:
            raise GenomeError(f"{owner} already has an adapter {adapter_id!r}; remove it first")
        tmp = target.with_suffix(".gguf.tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o600)
        tmp.replace(target)
        record = AdapterRecord(
            id=adapter_id,
            owner=owner,
            kind=kind,
            file=str(target.relative_to(self.dir)),
            sha256=file_sha256(target),
            size=target.stat().st_size,
            base_model=base.name,
            base_model_sha256=self.base_sha256(base),
            provenance=provenance or f"added from {source}",
            license=license,
            people=tuple(sorted({p.lower() for p in people})),
            **facts,
        )
        self._data.adapters.setdefault(owner, {})[adapter_id] = record
        self._save()
        return record

    def remove(self, owner: str, adapter_id: str) -> bool:
        record = self.get(owner, adapter_id)
        if record is None:
            return False
        safe_unlink(self.dir, self.dir / record.file)
        del self._data.adapters[owner][adapter_id]
        self._save()
        return True

    def forget_person(self, person_id: str) -> list[AdapterRecord]:
        """Remove every adapter trained on pairs that held ``person_id``'s words: weights
        cannot unlearn one person, so the adapter goes (retrain it without them)."""
        who = person_id.lower()
        gone = [r for r in self.records() if who in r.people]
        for record in gone:
            self.remove(record.owner, record.id)
        return gone

    # --- reading it ------------------------------------------------------------------------

    def get(self, owner: str, adapter_id: str) -> AdapterRecord | None:
        return self._data.adapters.get(owner, {}).get(adapter_id)

    def records(self, owner: str | None = None) -> list[AdapterRecord]:
        owners = [owner] if owner else sorted(self._data.adapters)
        return [r for o in owners for r in self._data.adapters.get(o, {}).values()]

    def checked(self, record: AdapterRecord) -> AdapterRecord:
        """The record, if its file is intact and it was made for this runtime's model (when
        the runtime knows its model file: a server backend's is the server's business)."""
        base = self.base_for(record.kind)
        if base is not None and record.base_model_sha256 != self.base_sha256(base):
            raise GenomeError(
                f"{record.kind} adapter {record.id!r} was made for {record.base_model} "
                f"({record.base_model_sha256[:12]}); this runtime's "
                f"{'voice backbone' if record.kind == 'voice' else 'base model'} is {base.name}"
            )
        if not (self.dir / record.file).is_file():
            raise GenomeError(f"adapter {record.id!r}: {self.dir / record.file} is missing")
        return record

    def refs(self, owner: str) -> list[AdapterRef]:
        return [self.checked(r).ref(self.dir) for r in self.records(owner)]

    def export(self, owner: str, adapter_id: str) -> dict:
        record = self.get(owner, adapter_id)
        if record is None:
            raise GenomeError(f"{owner} has no adapter {adapter_id!r}")
        return json.loads(record.model_dump_json())


def resolve_persona(persona: Persona, registry: GenomeRegistry) -> Persona:
    """A persona with its whole genome: the adapters its file names (a path given, or
    looked up by id in its registry entries or the shared library) and the adapters
    registered for it with ``continuum genome add``."""
    adapters: list[AdapterRef] = []
    for ref in persona.adapters:
        if ref.path:
            adapters.append(ref)
            continue
        record = registry.get(persona.id, ref.id) or registry.get(SHARED, ref.id)
        if record is None:
            raise GenomeError(
                f"persona {persona.id!r} names adapter {ref.id!r}, which is neither a file nor "
                "in the genome (continuum genome add)"
            )
        found = registry.checked(record).ref(registry.dir)
        adapters.append(ref.model_copy(update={"path": found.path}))
    named = {a.id for a in adapters}
    for record in registry.records(persona.id):
        if record.id not in named:
            adapters.append(registry.checked(record).ref(registry.dir))
    return persona.model_copy(update={"adapters": tuple(adapters)})


def shared_library(registry: GenomeRegistry) -> list[AdapterUse]:
    return [
        registry.checked(r).use(registry.dir) for r in registry.records(SHARED) if r.kind == "skill"
    ]
