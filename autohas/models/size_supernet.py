"""The nats-sss supernet: every searchable layer built at the largest width, a width a prefix of it.

The skeleton is the sss networks' (stem, cell, residual block, cell, residual block, cell,
then BN + ReLU, pooling, linear) with each layer 64 channels wide in and out. Layer l's
width decision applies to every feature map the layer makes (the cell's nodes, the
residual block's inner convolution, its output): a real network has them all that wide.
The stem shares layer 0's width, as in the real networks, where the stem is as wide as the
first cell; the last layer's output is shaped after the final BN + ReLU, so that only the
kept channels reach the classifier. The architecture is one
(layers x widths) matrix, given to `forward` in one of four forms:

- `weights` only: each layer's output times the mixture of prefix masks
  `sum_j weights[l, j] * mask_j` (masking + Gumbel-softmax, FBNet-V2);
- `indices` (one width per layer): the prefix mask of that width, scaled by
  `weights[l, index]` when weights are given too (a straight-through sample), else
  exactly the network of those widths (up to the approximation below);
- `pairs` (per layer two width indices and their weights): the two prefixes aligned by
  channel-wise interpolation to the larger width and mixed (TAS, Eq. 3.12).

BatchNorm normalises with batch statistics and learns no scale/shift, as NATS-Bench's
weight-sharing runs: a prefix of a layer's channels is then exactly that layer at the
smaller width. One approximation remains (NATS-Bench's search code shares it): built at
64 -> 64, a cell's skip edge is an identity, while a real network whose cell changes
width has a 1x1 convolution there.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autohas.models.cells import InferCell
from autohas.models.networks import plan_for
from autohas.models.ops import ResidualBlock
from autohas.models.supernet import use_batch_statistics
from autohas.spaces import get_space
from autohas.spaces.nats_sss import CHANNELS, NUM_LAYERS

Pair = tuple[tuple[int, int], torch.Tensor]  # (two width indices, their two mixing weights)


def channel_interpolate(x: torch.Tensor, channels: int) -> torch.Tensor:
    """CWI: adaptive average pooling along the channel axis of (N, C, H, W) to `channels`.

    Output channel i averages input channels floor(i*C/C')..ceil((i+1)*C/C')-1 (TAS, Sec. 3.3).
    """
    _, c, h, w = x.shape
    if c == channels:
        return x
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, h, w)).squeeze(1)


def prefix_masks(widths: Sequence[int], channels: int) -> torch.Tensor:
    """(len(widths), channels): row j keeps the first widths[j] channels."""
    return (torch.arange(channels)[None, :] < torch.tensor(widths)[:, None]).float()


class SssSupernet(nn.Module):
    """The sss skeleton at the largest width; `forward` takes the architecture (see the module doc)."""

    space = "nats-sss"

    def __init__(self, num_classes: int, widths: Sequence[int] = CHANNELS) -> None:
        super().__init__()
        self.widths = tuple(widths)
        c = max(self.widths)
        plan = plan_for("nats-sss", ":".join([str(CHANNELS[-1])] * NUM_LAYERS))
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, affine=False))
        self.cells = nn.ModuleList(
            ResidualBlock(c, c, 2, affine=False) if reduces else InferCell(plan.cell_ops, c, c, affine=False)
            for reduces in plan.reductions
        )
        self.lastact = nn.Sequential(nn.BatchNorm2d(c, affine=False), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.register_buffer("masks", prefix_masks(self.widths, c), persistent=False)
        use_batch_statistics(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, widths): the shape of the architecture matrix."""
        return len(self.cells), len(self.widths)

    def arch(self, indices: Sequence[int]) -> str:
        """The official nats-sss string of a width index per layer."""
        return get_space("nats-sss").encode(tuple(self.widths[int(i)] for i in indices))

    def _shape_width(self, x: torch.Tensor, layer: int, weights, indices, pairs) -> torch.Tensor:
        if pairs is not None:
            (i, j), w = pairs[layer]
            ci, cj = self.widths[i], self.widths[j]
            wide = max(ci, cj)
            mixed = w[0] * channel_interpolate(x[:, :ci], wide) + w[1] * channel_interpolate(x[:, :cj], wide)
            return F.pad(mixed, (0, 0, 0, 0, 0, x.shape[1] - wide))
        if indices is not None:
            index = int(indices[layer])
            mask = self.masks[index] if weights is None else self.masks[index] * weights[layer, index]
        else:
            mask = weights[layer] @ self.masks
        return x * mask.view(1, -1, 1, 1).to(x.dtype)

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None = None,
        indices: Sequence[int] | None = None,
        pairs: Sequence[Pair] | None = None,
    ) -> torch.Tensor:
        if weights is None and indices is None and pairs is None:
            raise ValueError("the supernet needs mixing weights, width indices, or width pairs")
        arch = (weights, indices, pairs)
        last = len(self.cells) - 1
        x = self._shape_width(self.stem(x), 0, *arch)
        for layer, block in enumerate(self.cells):
            x = self._layer(block, x, lambda feature, layer=layer: self._shape_width(feature, layer, *arch), layer == last)
        x = self._shape_width(self.lastact(x), last, *arch)
        x = self.global_pooling(x)
        return self.classifier(torch.flatten(x, 1))

    @staticmethod
    def _layer(block: nn.Module, x: torch.Tensor, shape, last: bool) -> torch.Tensor:
        """Run a cell or residual block with `shape` applied to each feature map it makes
        (to its output too, unless it is the last layer, shaped after the final BN + ReLU)."""
        if isinstance(block, ResidualBlock):
            shortcut = x if block.downsample is None else block.downsample(x)
            out = shortcut + block.conv_b(shape(block.conv_a(x)))
            return out if last else shape(out)
        nodes = [x]
        for node in range(1, block.num_nodes):
            total = sum(op(nodes[src]) for op, (dst, src) in zip(block.layers, block.edges) if dst == node)
            nodes.append(total if last and node == block.num_nodes - 1 else shape(total))
        return nodes[-1]
