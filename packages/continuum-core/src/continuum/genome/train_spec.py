"""What a training run is asked to do and what it reports (shared by the parent process
and the torch worker; no torch here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from continuum.genome.pairs import TrainingPair


class TrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(default=8, ge=1, le=256)
    alpha: float = Field(default=16.0, gt=0)
    # attention projections: the tensors llama.cpp applies a LoRA to on every architecture
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = Field(default=1e-3, gt=0, le=1)
    epochs: float = Field(default=3.0, gt=0)
    steps: int | None = Field(default=None, ge=1)  # overrides epochs
    batch_size: int = Field(default=4, ge=1, le=256)
    max_tokens: int = Field(default=1024, ge=32)  # per pair; the oldest context is cut
    heldout_fraction: float = Field(default=0.2, ge=0, lt=1)
    min_pairs: int = Field(default=4, ge=1)
    seed: int = 0
    threads: int = Field(default=2, ge=1)


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str
    spec: TrainSpec
    train: list[TrainingPair]
    heldout: list[TrainingPair]


class TrainReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train_pairs: int
    heldout_pairs: int
    steps: int
    heldout_loss_before: float  # mean per response token, base model
    heldout_loss_after: float  # with the trained adapter
    train_loss_before: float
    train_loss_after: float
    loss_curve: list[float]
    load_s: float
    train_s: float
    trainable_params: int
    dropped_disliked: int = 0  # pairs left out: net thumbs-down
    convert_s: float = 0.0
    adapter_id: str = ""
    adapter_bytes: int = 0
