"""NATS-Bench size space (nats-sss): 5 layers, each 8..64 channels in steps of 8.

Official index = the channel tuple read as a base-8 number, first layer most
significant (index 0 = 8:8:8:8:8, index 32767 = 64:64:64:64:64).
"""
from __future__ import annotations

import numpy as np

from autohas.errors import AutohasError
from autohas.spaces.base import Decision, Genotype, Space

CHANNELS = (8, 16, 24, 32, 40, 48, 56, 64)
NUM_LAYERS = 5
# The cell topology every sss network uses: the best tss cell on CIFAR-100.
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class NatsSizeSpace(Space):
    name = "nats-sss"

    def __init__(self) -> None:
        super().__init__([Decision(f"layer_{i}", CHANNELS) for i in range(NUM_LAYERS)])

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """As the reference's REA (`mutate_size_func`): a random layer gets a random width, which
        may be its old one (then the child repeats its parent)."""
        genotype = list(self.decode(arch))
        genotype[int(rng.integers(NUM_LAYERS))] = CHANNELS[int(rng.integers(len(CHANNELS)))]
        return self.encode(tuple(genotype))

    def encode(self, genotype: Genotype) -> str:
        self._check(genotype)
        return ":".join(str(c) for c in genotype)

    def decode(self, arch: str) -> Genotype:
        parts = arch.split(":") if isinstance(arch, str) else []
        try:
            genotype = tuple(int(p) for p in parts)
        except ValueError:
            genotype = ()
        if len(genotype) != NUM_LAYERS or any(c not in CHANNELS for c in genotype):
            raise AutohasError(f"not a nats-sss architecture: {arch!r} (want 5 widths from {list(CHANNELS)})")
        return genotype

    def arch_to_index(self, arch: str) -> int:
        index = 0
        for c in self.decode(arch):
            index = index * len(CHANNELS) + CHANNELS.index(c)
        return index

    def index_to_arch(self, index: int) -> str:
        index = int(index)
        if not 0 <= index < self.size:
            raise AutohasError(f"nats-sss index {index} out of range 0..{self.size - 1}")
        digits = []
        for _ in range(NUM_LAYERS):
            index, digit = divmod(index, len(CHANNELS))
            digits.append(CHANNELS[digit])
        return self.encode(tuple(reversed(digits)))
