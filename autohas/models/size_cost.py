"""FLOPs of nats-sss width configurations as tables, so their expectation is exact and differentiable.

A sss network's counted FLOPs (autohas.models.measure's convention) are a sum of terms that
each depend on at most two adjacent widths: the stem and the first cell on w0, layer l on
(w_{l-1}, w_l), the classifier on w4. Counting each layer alone for every width pair gives
tables T, and then for independent per-layer width distributions p_l

    E[FLOPs] = p_0 . t_0 + sum_l p_{l-1}^T T_l p_l + p_4 . t_cls

exactly (TAS' E_cost, Eq. 3.15, which the thesis leaves unspecified: METHODS.md 11.5).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from torch import nn

from autohas.models.cells import InferCell
from autohas.models.measure import count_flops
from autohas.models.networks import plan_for
from autohas.models.ops import ResidualBlock
from autohas.spaces.nats_sss import CHANNELS, NUM_LAYERS


@lru_cache(maxsize=8)
def _tables(num_classes: int, image_size: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    plan = plan_for("nats-sss", ":".join([str(CHANNELS[0])] * NUM_LAYERS))
    widths = CHANNELS
    sizes, size = [], image_size
    for reduces in plan.reductions:  # the input resolution of each layer
        sizes.append(size)
        size = (size + 1) // 2 if reduces else size

    def layer_flops(layer: int, c_in: int, c_out: int) -> float:
        block = ResidualBlock(c_in, c_out, 2) if plan.reductions[layer] else InferCell(plan.cell_ops, c_in, c_out)
        return count_flops(block, (c_in, sizes[layer], sizes[layer]))

    first = torch.tensor([
        count_flops(nn.Conv2d(3, w, 3, padding=1, bias=False), (3, image_size, image_size)) + layer_flops(0, w, w)
        for w in widths
    ], dtype=torch.float64)
    pairs = [
        torch.tensor([[layer_flops(layer, a, b) for b in widths] for a in widths], dtype=torch.float64)
        for layer in range(1, len(plan.reductions))
    ]
    classifier = torch.tensor([(w + 1) * num_classes / 1e6 for w in widths], dtype=torch.float64)
    return first, pairs, classifier


class WidthCost:
    """Exact FLOPs (millions) of sss width configurations and their expectation under per-layer distributions."""

    def __init__(self, num_classes: int, image_size: int) -> None:
        self.first, self.pairs, self.classifier = _tables(int(num_classes), int(image_size))
        self._on_device: dict = {}  # device -> the tables there, copied once (not at every step)

    def _tables_on(self, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = (self.first.to(device), [t.to(device) for t in self.pairs], self.classifier.to(device))
        return self._on_device[device]

    def expected(self, probs: torch.Tensor) -> torch.Tensor:
        """E[FLOPs] when layer l's width index is drawn from probs[l] (layers x widths), independently."""
        p = probs.to(torch.float64)
        first, pairs, classifier = self._tables_on(p.device)
        total = p[0] @ first + p[-1] @ classifier
        for layer, table in enumerate(pairs, start=1):
            total = total + p[layer - 1] @ table @ p[layer]
        return total

    def of(self, indices: Sequence[int]) -> float:
        """FLOPs of the configuration with width index indices[l] in layer l."""
        return float(self.of_tensor(torch.tensor([int(i) for i in indices])))

    def of_tensor(self, indices: torch.Tensor) -> torch.Tensor:
        """`of` as a float64 scalar tensor on `indices`' device: the table entries `expected` sums for a
        one-hot distribution, added in its order (so the same number to the last bit), looked up on the
        device (TAS' per-step cost loss never waits for the host)."""
        i = indices.to(torch.int64)
        first, pairs, classifier = self._tables_on(i.device)
        total = first[i[0]] + classifier[i[-1]]
        for layer, table in enumerate(pairs, start=1):
            total = total + table[i[layer - 1], i[layer]]
        return total

