"""The `has` space of AutoHAS: nats-tss architectures x learning rate x weight decay.

Each hyperparameter is a basis of values, its default times MULTIPLIERS (the thesis'
vision basis, METHODS.md 3.6); AutoHAS learns a distribution over each basis, and a
derived continuous value is its expectation (Eq. 4.10). Defaults are NATS-Bench H0's:
learning rate 0.1 at batch 256, weight decay 5e-4. The architecture part is nats-tss:
derived architectures are nats-tss strings, looked up in nats-tss benchmarks.
"""
from __future__ import annotations

NAME = "has"
ARCH_SPACE = "nats-tss"
MULTIPLIERS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DEFAULT_LR = 0.1
DEFAULT_WEIGHT_DECAY = 5e-4
REFERENCE_BATCH = 256  # the batch size DEFAULT_LR belongs to (H0); other batches scale it linearly


def arch_space(space: str) -> str:
    """The space whose architecture strings, networks and benchmarks `space` uses."""
    return ARCH_SPACE if space == NAME else space


def basis(default: float) -> tuple[float, ...]:
    """The basis values default x MULTIPLIERS."""
    return tuple(default * m for m in MULTIPLIERS)
