"""The nats-tss supernet: the benchmark's skeleton with every candidate operation on every edge.

One cell topology is shared by all 15 cells (the benchmark's architectures repeat one
cell), so the architecture is one (edges x operations) matrix, given to `forward`:

- `weights` only: every edge outputs `sum_k weights[e, k] * op_k(x)` (DARTS' mixture);
- `indices` (one op per edge): only that op runs, scaled by `weights[e, index]` when
  weights are given (GDAS' straight-through one-hot: the sampled path's gradient reaches
  the architecture parameters) and unscaled otherwise (a discrete candidate).

BatchNorm always normalises with the batch's statistics (no running estimates), and the
candidate operations have no learnt scale/shift: NATS-Bench's weight-sharing settings,
which make a sub-network's accuracy meaningful under shared weights.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from autohas.models.networks import TSS_CELLS_PER_STAGE, TSS_STAGE_CHANNELS
from autohas.models.ops import OPS, ResidualBlock
from autohas.spaces.nats_tss import EDGES, OPERATIONS


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Make every BatchNorm of `module` normalise with batch statistics, in training and evaluation."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = False
            layer.running_mean = None
            layer.running_var = None
            layer.num_batches_tracked = None
    return module


class MixedEdge(nn.Module):
    """All candidate operations of one edge."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(OPS[op](c, c, 1, affine=False) for op in OPERATIONS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, index: int | None) -> torch.Tensor:
        if index is not None:
            out = self.candidates[index](x)
            return out if weights is None else out * weights[index]
        return sum(w * op(x) for w, op in zip(weights, self.candidates))


class SearchCell(nn.Module):
    """The 4-node cell with a MixedEdge on each of its 6 edges (in nats_tss.EDGES order)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(c) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, indices: Sequence[int] | None) -> torch.Tensor:
        nodes = [x]
        for node in range(1, 4):
            total = None
            for e, (dst, src) in enumerate(EDGES):
                if dst == node:
                    out = self.edges[e](
                        nodes[src], None if weights is None else weights[e], None if indices is None else int(indices[e])
                    )
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]


class TssSupernet(nn.Module):
    """Stem, `cells_per_stage` search cells per stage, stride-2 residual blocks between stages, classifier.

    Defaults are the benchmark's (C = 16, 5 cells per stage); tests shrink both.
    """

    space = "nats-tss"

    def __init__(self, num_classes: int, channels: int = TSS_STAGE_CHANNELS[0], cells_per_stage: int = TSS_CELLS_PER_STAGE):
        super().__init__()
        widths = [channels, 2 * channels, 4 * channels]
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        for stage, width in enumerate(widths):
            if stage > 0:
                layers.append(ResidualBlock(widths[stage - 1], width, 2))
            layers.extend(SearchCell(width) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)
        use_batch_statistics(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(edges, operations): the shape of the architecture matrix."""
        return len(EDGES), len(OPERATIONS)

    @staticmethod
    def arch(indices: Sequence[int]) -> str:
        """The official nats-tss string of an op index per edge."""
        from autohas.spaces import get_space

        return get_space("nats-tss").encode(tuple(OPERATIONS[int(i)] for i in indices))

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, indices: Sequence[int] | None = None
    ) -> torch.Tensor:
        if weights is None and indices is None:
            raise ValueError("the supernet needs mixing weights, op indices, or both")
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, weights, indices) if isinstance(layer, SearchCell) else layer(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))
