"""Train a skill adapter from a persona's own turns: pairs → PEFT LoRA → GGUF → genome.

``train_adapter`` splits the pairs (every k-th held out), drops replies people disliked,
runs :mod:`continuum.genome.train_worker` in a child process (torch, peft, transformers:
the ``continuum-core[train]`` extra), converts the PEFT adapter with llama.cpp's converter
and registers it in the persona's genome with its provenance, its held-out losses and the
people whose words it was trained on (so ``forget`` can remove it).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from continuum.genome.convert import peft_to_gguf
from continuum.genome.pager import GenomeError
from continuum.genome.pairs import TrainingPair
from continuum.genome.registry import AdapterRecord, GenomeRegistry
from continuum.genome.train_spec import TrainJob, TrainReport, TrainSpec

INSTALL = "pip install 'continuum-core[train]'  # torch, peft, transformers (CPU is enough)"


def check_train_extra() -> None:
    missing = [m for m in ("torch", "peft", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise GenomeError(f"training needs {', '.join(missing)}: {INSTALL}")


def split_pairs(
    pairs: Sequence[TrainingPair], heldout_fraction: float
) -> tuple[list[TrainingPair], list[TrainingPair], int]:
    """(train, held out, dropped): net-disliked pairs are dropped; every k-th of the rest
    (in time order) is held out, so both halves span the persona's whole history."""
    kept = [p for p in pairs if p.score >= 0]
    dropped = len(pairs) - len(kept)
    if heldout_fraction <= 0 or len(kept) < 3:
        return kept, [], dropped
    every = max(2, round(1 / heldout_fraction))
    heldout = [p for i, p in enumerate(kept) if i % every == every - 1]
    train = [p for i, p in enumerate(kept) if i % every != every - 1]
    return train, heldout, dropped


def run_training(
    pairs: Sequence[TrainingPair],
    base_model: Path,
    out: Path,
    spec: TrainSpec | None = None,
    timeout_s: float | None = None,
) -> tuple[Path, TrainReport]:
    """Train and convert; returns the GGUF LoRA at ``out`` and the report. Nothing is
    registered (see :func:`train_adapter`)."""
    spec = spec or TrainSpec()
    check_train_extra()
    train, heldout, dropped = split_pairs(pairs, spec.heldout_fraction)
    if len(train) < spec.min_pairs:
        raise GenomeError(
            f"{len(train)} usable training pairs; at least {spec.min_pairs} are needed "
            "(turn on [learning] for the persona and let it talk, or lower min_pairs)"
        )
    with tempfile.TemporaryDirectory(prefix="continuum-train-") as tmp:
        job_dir = Path(tmp)
        job = TrainJob(base_model=str(base_model), spec=spec, train=train, heldout=heldout)
        (job_dir / "job.json").write_text(job.model_dump_json())
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        env.setdefault("OMP_NUM_THREADS", str(spec.threads))
        done = subprocess.run(
            [sys.executable, "-m", "continuum.genome.train_worker", str(job_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
        )
        if done.returncode != 0 or not (job_dir / "report.json").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
            raise GenomeError("training failed: " + " | ".join(tail))
        report = TrainReport.model_validate_json((job_dir / "report.json").read_text())
        t0 = time.monotonic()
        out.parent.mkdir(parents=True, exist_ok=True)
        peft_to_gguf(job_dir / "peft", job_dir / "base", out)
        return out, report.model_copy(
            update={
                "dropped_disliked": dropped,
                "convert_s": round(time.monotonic() - t0, 2),
                "adapter_bytes": out.stat().st_size,
            }
        )


def train_adapter(
    registry: GenomeRegistry,
    persona_id: str,
    domain: str,
    pairs: Sequence[TrainingPair],
    adapter_id: str | None = None,
    spec: TrainSpec | None = None,
    replace: bool = False,
) -> tuple[AdapterRecord, TrainReport]:
    """Train a skill adapter for ``persona_id`` from ``pairs`` and register it (id
    ``<domain>-learned`` unless given). ``replace`` swaps out an earlier one."""
    if registry.base_model is None:
        raise GenomeError("training needs the base model file (the embedded backend's GGUF)")
    adapter_id = adapter_id or f"{domain}-learned"
    if registry.get(persona_id, adapter_id) is not None and not replace:
        raise GenomeError(f"{persona_id} already has {adapter_id!r} (retrain with --replace)")
    with tempfile.TemporaryDirectory(prefix="continuum-lora-") as tmp:
        gguf, report = run_training(pairs, registry.base_model, Path(tmp) / "lora.gguf", spec)
        if not math.isfinite(report.heldout_loss_after) and report.heldout_pairs:
            raise GenomeError("training diverged (held-out loss is not finite); not registered")
        if replace:
            registry.remove(persona_id, adapter_id)
        people = sorted({who for p in pairs for who in p.people})
        record = registry.add(
            persona_id,
            adapter_id,
            gguf,
            kind="skill",
            license="private: trained on this deployment's conversations",
            provenance=(
                f"trained from {report.train_pairs} of {persona_id}'s turns in domain "
                f"{domain!r} ({report.steps} steps, rank {(spec or TrainSpec()).rank}); "
                f"held-out loss {report.heldout_loss_before} -> {report.heldout_loss_after}"
            ),
            people=tuple(people),
        )
    return record, report.model_copy(update={"adapter_id": record.id})
