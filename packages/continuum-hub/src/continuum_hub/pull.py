"""``continuum-hub pull``: a repo at a pinned commit, checked before and after download,
installed atomically — an adapter into the genome registry (a persona's, or the shared
library), a GGUF base model under the data dir — with its provenance recorded.

Before any byte is downloaded: every file name is a safe relative path, the weights are
safetensors or GGUF (a repo with only pickles is refused), sizes are under the limits,
the licence is allowed or accepted, and an adapter's declared base is the user's model.
After: the file hashes to the Hub's checksum, and it parses — a GGUF LoRA whose tensors
fit the base model (``continuum.genome``), or a GGUF model. Until the last step nothing is
registered; a failed or interrupted pull leaves only its resumable download."""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from continuum.genome.gguf_header import GGUFError, check_tensor_data, read_header
from continuum.genome.pager import GenomeError
from continuum.genome.registry import SHARED, GenomeRegistry, file_sha256
from continuum.models import DEFAULT_MODEL_INSTALL
from continuum_hub.download import fetch
from continuum_hub.errors import HubError, UnsafeFile
from continuum_hub.remote import Kind, RemoteFile, RepoView, offline, split_ref, view
from continuum_hub.safety import (
    PICKLED,
    SAFE_WEIGHTS,
    check_license,
    check_size,
    check_weights_format,
    is_weights,
)
from continuum_hub.settings import HubSettings
from continuum_hub.store import PulledRecord, PulledStore


@dataclass(frozen=True)
class PullResult:
    record: PulledRecord
    view: RepoView | None  # None: already installed (offline, or the same commit)
    seconds: float
    resumed_from: int = 0  # bytes a resumed download already had

    @property
    def installed_as(self) -> str:
        return self.record.installed_as


def adapter_id_for(repo_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", repo_id.split("/")[-1]).strip("-.") or "adapter"
    return name[:64]


def choose_weights(view: RepoView, kind: Kind, wanted: str | None) -> RemoteFile:
    """The one weights file to install: safetensors or GGUF, never a pickle."""
    if wanted is not None:
        return view.file(check_weights_format(wanted))
    weights = [f for f in view.files if is_weights(f.path)]
    safe = [f for f in weights if f.path.lower().endswith(SAFE_WEIGHTS)]
    if not safe:
        pickled = [f.path for f in weights if f.path.lower().endswith(PICKLED)]
        if pickled:
            raise UnsafeFile(
                f"{view.repo_id} has only pickle weights ({', '.join(pickled)}): they can run "
                "code when loaded, and continuum installs only safetensors or GGUF"
            )
        raise HubError(f"{view.repo_id} holds no weights (safetensors or GGUF)")
    gguf = [f for f in safe if f.path.lower().endswith(".gguf")]
    if not gguf:
        peft = [f for f in safe if f.path.endswith("adapter_model.safetensors")]
        if kind != "model" and len(peft) == 1 and _sibling(view, peft[0], "adapter_config.json"):
            return peft[0]  # a PEFT adapter: converted to GGUF after its checks
        names = ", ".join(f.path for f in safe)
        raise HubError(
            f"{view.repo_id} has {names}: continuum's runtime (llama.cpp) loads GGUF models "
            "and GGUF or PEFT (adapter_model.safetensors + adapter_config.json) adapters"
        )
    if len(gguf) > 1:
        raise HubError(
            f"{view.repo_id} has several GGUF files; pick one with --file: "
            + ", ".join(f"{f.path} ({f.size / 2**20:.0f} MB)" for f in gguf)
        )
    return gguf[0]


def _sibling(view: RepoView, file: RemoteFile, name: str) -> RemoteFile | None:
    folder = file.path.rpartition("/")[0]
    path = f"{folder}/{name}" if folder else name
    return next((f for f in view.files if f.path == path), None)


def _peft_to_gguf(
    settings: HubSettings,
    remote: RepoView,
    weights: RemoteFile,
    got: Path,
    staging: Path,
    base: Path | None,
    adapter_id: str,
) -> Path:
    """A checked PEFT adapter converted into a GGUF LoRA for ``base``."""
    from continuum_hub.peft_gguf import check_adapter_config, check_safetensors, peft_to_gguf_lora

    if base is None:
        raise HubError("converting a PEFT adapter needs its base model file (--model)")
    config_file = _sibling(remote, weights, "adapter_config.json")
    assert config_file is not None
    config = fetch(settings, remote.repo_id, remote.sha, config_file, staging, progress=False)
    check_adapter_config(config)
    check_safetensors(got)
    peft_dir = staging / "peft"
    peft_dir.mkdir(exist_ok=True)
    for src in (config, got):
        (peft_dir / src.name).write_bytes(src.read_bytes())
    return peft_to_gguf_lora(peft_dir, base, staging / f"{adapter_id}.gguf")


def _check_base(view: RepoView, kind: Kind, base_id: str | None) -> None:
    """An adapter declared for another base is refused before it is downloaded (its
    tensors are checked against the base file after)."""
    if kind == "model" or base_id is None or not view.base_models:
        return
    if base_id.lower() not in {b.lower() for b in view.base_models}:
        raise HubError(
            f"{view.repo_id} is an adapter for {', '.join(view.base_models)}; "
            f"this {'voice backbone' if kind == 'voice' else 'model'} is {base_id}"
        )


@contextlib.contextmanager
def _one_pull_at_a_time(staging: Path, repo_id: str) -> Iterator[None]:
    """Two pulls of one commit would append to one ``.part``: the second is refused."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(staging / ".pull.lock"), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise HubError(f"another pull of {repo_id} is running; wait for it") from exc
    try:
        yield
    finally:
        lock.release()


def _check_model(path: Path, name: str) -> None:
    try:
        header = read_header(path)
        check_tensor_data(path, header)
    except GGUFError as exc:
        raise HubError(f"{name}: not a usable GGUF model ({exc})") from exc
    if header.metadata.get("general.type") == "adapter":
        raise HubError(f"{name} is an adapter, not a model: pull it as --kind skill or voice")
    if not header.metadata.get("general.architecture"):
        raise HubError(f"{name}: the GGUF header names no architecture")


def _install_model(store: PulledStore, remote: RepoView, weights: RemoteFile, got: Path) -> str:
    """A checked GGUF model moved under the data dir (one rename: whole or not at all)."""
    _check_model(got, weights.path)
    folder = store.models_dir() / remote.repo_id.replace("/", "--") / remote.sha
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(weights.path).name
    got.replace(target)
    return str(target.relative_to(store.dir.parent))


def _install_adapter(
    registry: GenomeRegistry,
    owner: str,
    adapter_id: str,
    kind: Literal["skill", "voice"],
    remote: RepoView,
    weights: RemoteFile,
    got: Path,
) -> str:
    """A GGUF LoRA into the genome: checked against the base, recorded with where it came
    from; ``owner/id``."""
    converted = (
        "PEFT safetensors converted to GGUF, " if weights.path.endswith(".safetensors") else ""
    )
    try:
        registry.add(
            owner,
            adapter_id,
            got,
            kind=kind,
            license=remote.license,
            provenance=f"hub:{remote.repo_id}@{remote.sha} ({weights.path}, {converted}"
            f"sha256 {(weights.sha256 or weights.git_oid)[:16]}…, by {remote.author})",
        )
    except GenomeError as exc:
        raise HubError(f"{remote.repo_id}: {exc}") from exc
    return f"{owner}/{adapter_id}"


def pull(
    ref: str,
    data_dir: Path,
    settings: HubSettings | None = None,
    *,
    kind: Kind | None = None,
    file: str | None = None,
    persona: str | None = None,
    adapter_id: str | None = None,
    accept_license: str | None = None,
    base_model: Path | None = None,
    voice_model: Path | None = None,
    progress: bool = False,
) -> PullResult:
    """Pull ``OWNER/NAME[@REV]`` and install it (see the module doc)."""
    settings = settings or HubSettings()
    started = time.monotonic()
    repo_id, asked = split_ref(ref)
    store = PulledStore(data_dir)
    if offline():
        found = store.find(repo_id, asked, file)
        if not found:
            raise HubError(
                f"{repo_id}@{asked}: offline (HF_HUB_OFFLINE is set) and not pulled before; "
                "pull it once online"
            )
        return PullResult(found[-1], None, time.monotonic() - started)
    remote = view(settings, repo_id, asked)
    kind = kind or remote.kind
    weights = choose_weights(remote, kind, file)
    limit = settings.max_model_mb if kind == "model" else settings.max_adapter_mb
    check_size(weights.path, weights.size, limit)
    check_license(remote.license, settings.licenses, accept_license)
    if kind == "voice" and voice_model is None:
        raise HubError(
            "a voice adapter is checked against the voice model it was made for: set "
            "CONTINUUM_CODEC_TTS_BACKBONE (the codec voice's backbone GGUF) or --voice-model"
        )
    base = voice_model if kind == "voice" else base_model
    if kind == "skill" and base is None:
        raise HubError(
            "a skill adapter is checked against the model it was made for: name it with "
            "--model PATH.gguf (or [backend] model in continuum.toml), or install the default "
            f"model: {DEFAULT_MODEL_INSTALL}"
        )
    _check_base(remote, kind, settings.hub_id_of(base))
    owner = persona or SHARED
    if kind == "model":
        for r in store.find(remote.repo_id, remote.sha, weights.path):
            if r.kind == "model" and (Path(data_dir) / r.installed_as).is_file():
                return PullResult(r, None, time.monotonic() - started)
    else:
        registry = GenomeRegistry(data_dir, base_model=base_model, voice_model=voice_model)
        adapter_id = adapter_id or adapter_id_for(remote.repo_id)
        existing = registry.get(owner, adapter_id)
        same = [r for r in store.records() if r.installed_as == f"{owner}/{adapter_id}"]
        if existing is not None and same and same[-1].revision == remote.sha:
            return PullResult(same[-1], None, time.monotonic() - started)
        if existing is not None:
            raise HubError(
                f"{owner} already has an adapter {adapter_id!r} "
                f"({existing.provenance}); continuum-hub remove it first, or pull with --id"
            )
    staging = store.staging_dir(remote.repo_id, remote.sha)
    with _one_pull_at_a_time(staging, remote.repo_id):
        partial = sum(p.stat().st_size for p in staging.rglob("*.part"))
        got = fetch(settings, remote.repo_id, remote.sha, weights, staging, progress=progress)
        record = PulledRecord(
            repo=remote.repo_id,
            revision=remote.sha,
            asked=asked,
            kind=kind,
            file=weights.path,
            sha256=weights.sha256 or file_sha256(got),
            size=weights.size,
            license=remote.license,
            author=remote.author,
            base_models=remote.base_models,
            installed_as="",
        )
        if kind == "model":
            installed = _install_model(store, remote, weights, got)
        else:
            if weights.path.endswith(".safetensors"):
                got = _peft_to_gguf(settings, remote, weights, got, staging, base, adapter_id)  # type: ignore[arg-type]
            installed = _install_adapter(registry, owner, adapter_id, kind, remote, weights, got)  # type: ignore[arg-type]
        record = record.model_copy(update={"installed_as": installed})
        store.add(record)
        shutil.rmtree(staging, ignore_errors=True)
        return PullResult(record, remote, time.monotonic() - started, resumed_from=partial)


def remove(data_dir: Path, what: str, base_model: Path | None = None) -> list[PulledRecord]:
    """Remove what was pulled from ``what`` (``OWNER/NAME``, or an installed ``owner/id``):
    the adapter from the genome, or the model file; its records go with it."""
    store = PulledStore(data_dir)
    gone = [r for r in store.records() if r.repo.lower() == what.lower() or r.installed_as == what]
    if not gone:
        raise HubError(f"nothing pulled from {what!r} (continuum-hub list shows what was)")
    registry = GenomeRegistry(data_dir, base_model=base_model)
    for r in gone:
        if r.kind == "model":
            path = Path(data_dir) / r.installed_as
            path.unlink(missing_ok=True)
            for parent in (path.parent, path.parent.parent):
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        else:
            owner, _, adapter = r.installed_as.partition("/")
            registry.remove(owner, adapter)
        store.remove(r)
    return gone


ModelRef = tuple[str, str, str]  # repo, file, revision


def parse_model_spec(spec: str) -> ModelRef:
    """``OWNER/NAME/FILE.gguf[@REV]`` (the part after ``hub:``)."""
    body, _, rev = spec.partition("@")
    parts = body.split("/")
    if len(parts) < 3 or not all(parts) or not parts[-1].lower().endswith(".gguf"):
        raise HubError(f"hub:{spec}: write hub:OWNER/NAME/FILE.gguf, optionally @REVISION")
    return "/".join(parts[:2]), "/".join(parts[2:]), rev or "main"


def resolve_model(
    spec: str,
    data_dir: Path,
    settings: HubSettings | None = None,
    accept_license: str | None = None,
) -> Path:
    """The local path of ``hub:OWNER/NAME/FILE.gguf@REV``: pulled before at that revision
    (a branch name is looked up again online, so ``main`` follows the repo), else pulled
    now with every check of :func:`pull`."""
    repo, file, rev = parse_model_spec(spec)
    store = PulledStore(data_dir)
    pinned = re.fullmatch(r"[0-9a-f]{40}", rev) is not None
    found = [r for r in store.find(repo, rev, file) if r.kind == "model"]
    if found and (pinned or offline()):
        path = Path(data_dir) / found[-1].installed_as
        if path.is_file():
            return path
    result = pull(
        f"{repo}@{rev}", data_dir, settings, kind="model", file=file, accept_license=accept_license
    )
    return Path(data_dir) / result.record.installed_as


def kind_of(value: str | None) -> Literal["voice", "skill", "model"] | None:
    if value in (None, "voice", "skill", "model"):
        return value  # type: ignore[return-value]
    raise HubError(f"--kind {value}: voice, skill or model")
