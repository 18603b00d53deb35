"""The settings every weight-sharing method shares (its own module: methods and the search loop both use it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchRecipe:
    """The settings every weight-sharing method shares, NATS-Bench's (METHODS.md 8.5) unless changed;
    a method's own settings are its `Settings` (methods/*.py)."""

    epochs: int = 100
    batch_size: int = 64
    eval_batch_size: int = 512
    lr: float = 0.025  # weights: SGD, cosine per epoch from lr to lr_min over all epochs (xautodl's CosineAnnealingLR)
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    grad_clip: float | None = None  # the supernet weights' gradient norm clip (None: none, as NATS-Bench)
    arch_lr: float = 3e-4  # alpha: Adam
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    arch_eps: float = 1e-8
    candidates: int = 100  # the `sampled` selection
    channels: int = 16  # supernet: C and cells per stage (the benchmark's skeleton)
    cells_per_stage: int = 5
    steps_per_epoch: int | None = None  # None: one pass over the training split
    eval_batches: int | None = None  # per-epoch evaluation on this many batches of a fixed random subset; None: whole split
    retrain_epochs: int | None = None  # re-train the final architecture with H0 for this many epochs (None: per method)
