"""The nats-tss supernet: the benchmark's skeleton with every candidate operation on every edge.

One cell topology is shared by all 15 cells (the benchmark's architectures repeat one
cell), so the architecture is one (edges x operations) matrix, given to `forward`:

- `weights` only: every edge outputs `sum_k weights[e, k] * op_k(x)` (DARTS' mixture);
- `indices` (one op per edge): only that op runs, unscaled (a discrete candidate); or,
  with `weights` too (GDAS), scaled by `weights[e, index]` plus the bare weight of every
  other op of the edge, as the reference's `forward_gdas` does: those add 0 forward (a
  straight-through one-hot) but give every alpha of the edge a gradient backward;
- `indices` may also hold one such list per search cell (RSPS samples each cell apart).

BatchNorm as NATS-Bench's search builds it: the search cells' candidates and the final BN
learn no scale/shift and normalise with batch statistics (in evaluation too), which makes
a sub-network's accuracy meaningful under shared weights; the stem and the residual blocks
keep PyTorch's defaults (affine, running estimates, used in evaluation mode).
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
        if index is None:
            return sum(w * op(x) for w, op in zip(weights, self.candidates))
        out = self.candidates[index](x)
        if weights is None:
            return out
        others = [weights[k] for k in range(len(self.candidates)) if k != index]
        return out * weights[index] + sum(others)


class SearchCell(nn.Module):
    """The 4-node cell with a MixedEdge on each of its 6 edges (in nats_tss.EDGES order)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(c) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, indices: Sequence[int] | None) -> torch.Tensor:
        """`indices`: one op index per edge (or None: the mixture of `weights`)."""
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
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1], affine=False), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)
        for layer in self.cells:
            if isinstance(layer, SearchCell):
                use_batch_statistics(layer)
        use_batch_statistics(self.lastact)

    @property
    def search_cells(self) -> int:
        """How many search cells the supernet has (per-cell `indices` give one list each)."""
        return sum(isinstance(layer, SearchCell) for layer in self.cells)

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
        per_cell = indices is not None and len(indices) > 0 and isinstance(indices[0], (list, tuple))
        x = self.stem(x)
        cell = 0
        for layer in self.cells:
            if isinstance(layer, SearchCell):
                x = layer(x, weights, indices[cell] if per_cell else indices)
                cell += 1
            else:
                x = layer(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))
