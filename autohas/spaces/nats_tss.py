"""NATS-Bench topology space (nats-tss, = NAS-Bench-201): 6 edges x 5 operations.

The official index order is not lexicographic: NAS-Bench-201 enumerated the cells with
the first edge varying slowest and then shuffled that list with Python's `random`
seeded 88. Re-doing that shuffle reproduces all 15,625 official indices, checked in
the tests against the benchmark's own meta file.
"""
from __future__ import annotations

import itertools
import random
from functools import cached_property

import numpy as np

from autohas.errors import AutohasError
from autohas.spaces.base import Decision, Genotype, Space

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each edge, in the order the official string lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
OFFICIAL_SHUFFLE_SEED = 88


class NatsTopologySpace(Space):
    name = "nats-tss"

    def __init__(self) -> None:
        super().__init__([Decision(f"edge_{j}_{i}", OPERATIONS) for j, i in EDGES])

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """As the reference's REA (`mutate_topology_func`): a random node, then a random incoming edge
        of it (so an edge into node k is picked with probability 1 / (3 k)), its op changed to another."""
        genotype = list(self.decode(arch))
        node = 1 + int(rng.integers(3))
        edge = EDGES.index((node, int(rng.integers(node))))
        others = [op for op in OPERATIONS if op != genotype[edge]]
        genotype[edge] = others[int(rng.integers(len(others)))]
        return self.encode(tuple(genotype))

    def encode(self, genotype: Genotype) -> str:
        self._check(genotype)
        ops = iter(genotype)
        nodes = []
        for node in (1, 2, 3):
            nodes.append("|" + "|".join(f"{next(ops)}~{src}" for src in range(node)) + "|")
        return "+".join(nodes)

    def decode(self, arch: str) -> Genotype:
        nodes = arch.split("+") if isinstance(arch, str) else []
        genotype = []
        if len(nodes) == 3:
            for node, text in enumerate(nodes, start=1):
                parts = text.strip("|").split("|") if text.startswith("|") and text.endswith("|") else []
                if len(parts) != node:
                    break
                for src, part in enumerate(parts):
                    op, _, where = part.partition("~")
                    if where != str(src) or op not in OPERATIONS:
                        raise AutohasError(f"not a nats-tss architecture: {arch!r} (bad edge {part!r})")
                    genotype.append(op)
        if len(genotype) != len(EDGES):
            raise AutohasError(f"not a nats-tss architecture: {arch!r}")
        return tuple(genotype)

    @cached_property
    def _official_order(self) -> list[str]:
        # encode's string of each genotype, without checking 15,625 genotypes made of valid operations
        cell = "+".join("|" + "|".join(f"{{}}~{src}" for src in range(node)) + "|" for node in (1, 2, 3))
        archs = [cell.format(*g) for g in itertools.product(OPERATIONS, repeat=len(EDGES))]
        random.Random(OFFICIAL_SHUFFLE_SEED).shuffle(archs)
        return archs

    @cached_property
    def _index_of(self) -> dict[str, int]:
        return {arch: i for i, arch in enumerate(self._official_order)}

    def arch_to_index(self, arch: str) -> int:
        return self._index_of[self.encode(self.decode(arch))]

    def index_to_arch(self, index: int) -> str:
        if not 0 <= int(index) < self.size:
            raise AutohasError(f"nats-tss index {index} out of range 0..{self.size - 1}")
        return self._official_order[int(index)]
