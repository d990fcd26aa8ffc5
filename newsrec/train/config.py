"""Typed configs and results of the training entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from newsrec.models.towers import ModelConfig


class TrainConfig(BaseModel):
    """`train_two_tower` input. Paths are directories."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    embeddings: Path | None = None  # required when model.use_llm
    out: Path
    kg: Path | None = None  # prebuilt graph (build_kg); built from `data` when None
    model: ModelConfig = Field(default_factory=ModelConfig)
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=256, ge=2)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    temperature: float = Field(default=0.1, gt=0)
    negatives: int = Field(default=4, ge=0)  # shown negatives sampled per positive
    # Subtract log(click share) from in-batch logits: in-batch negatives are sampled by
    # popularity, so without it the towers learn to demote popular articles.
    logq: bool = True
    grad_clip: float = Field(default=1.0, gt=0)
    patience: int = Field(default=2, ge=1)  # epochs without dev-AUC gain before stopping
    seed: int = 0
    max_train_impressions: int | None = Field(default=None, ge=1)
    max_dev_impressions: int | None = Field(default=20000, ge=1)
    ranker_holdout: float = Field(default=0.1, ge=0.0, lt=0.9)  # latest train impressions kept for the ranker
    # Fit the residual fusion's per-modality gate scales on that holdout (newsrec.train.gates).
    calibrate_gates: bool = True
    # A modality the calibration shuts off (scale 0) is dropped and the towers retrained.
    retrain_without_shut: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = None  # torch CPU threads; None keeps torch's default
    progress: bool = True
    # Version written into the serving artifact (the registry version, from the pipeline);
    # None: `<run dir name>-e<best epoch>`.
    model_version: str | None = Field(default=None, min_length=1)


class TrainResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path
    serving_dir: Path
    best_epoch: int
    best_dev_auc: float
    epochs_run: int
    history: list[dict[str, float]]
    impressions_per_second: float


class RankerConfig(BaseModel):
    """`train_ranker` input: a run directory written by `train_two_tower`."""

    model_config = ConfigDict(extra="forbid")

    run: Path
    data: Path
    hidden: int = Field(default=64, ge=4)
    epochs: int = Field(default=8, ge=1)
    batch_size: int = Field(default=1024, ge=8)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    seed: int = 0
    max_dev_impressions: int | None = Field(default=20000, ge=1)


class RankerResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path
    dev_auc: float
    dev_auc_dot: float
    train_rows: int
    features: list[str]
