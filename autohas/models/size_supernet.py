"""The nats-sss supernet: every searchable layer built at the largest width, a width a prefix of it.

The skeleton is the sss networks' (stem, cell, residual block, cell, residual block, cell,
then BN + ReLU, pooling, linear), each layer 64 channels wide, built as NATS-Bench's search
builds it (xautodl's `GenericNAS301Model`, affine 0, BN statistics 0): the stem and the
cells learn no BN scale/shift and normalise with batch statistics (their convolutions then
carry a bias); the residual blocks are built with affine=True and track running estimates,
used in evaluation mode.

A width decision applies to the output of each of the six modules (stem and five layers),
as the reference applies it: the stem draws its own sample from layer 0's row of the
(layers x widths) architecture; inside a cell or block every feature map is 64 channels
wide. The architecture is given to `forward` per module (6 rows) or per layer (5 rows,
the stem then takes layer 0's), in one of these forms:

- `weights` only: each module's output times the mixture of prefix masks
  `sum_j weights[m, j] * mask_j` (masking + Gumbel-softmax, FBNet-V2);
- `indices` (one width per module): the prefix mask of that width, scaled by
  `weights[m, index]` when weights are given too (a straight-through sample);
- `pairs` (per module two width indices and their weights): the two prefixes aligned by
  channel-wise interpolation to the larger width, mixed, zero-padded (TAS, Eq. 3.12).
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
        # affine=False: the stem's convolution has a bias, as the reference's (bias = not affine)
        self.stem = use_batch_statistics(nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=True), nn.BatchNorm2d(c, affine=False)))
        self.cells = nn.ModuleList(
            ResidualBlock(c, c, 2, affine=True) if reduces else use_batch_statistics(InferCell(plan.cell_ops, c, c, affine=False))
            for reduces in plan.reductions
        )
        self.lastact = use_batch_statistics(nn.Sequential(nn.BatchNorm2d(c, affine=False), nn.ReLU(inplace=False)))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.register_buffer("masks", prefix_masks(self.widths, c), persistent=False)
        # the architecture row of each shaped module: the stem and the first cell both use layer 0's
        self.module_layers: tuple[int, ...] = (0, *range(len(self.cells)))

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, widths): the shape of the architecture matrix."""
        return len(self.cells), len(self.widths)

    def arch(self, indices: Sequence[int]) -> str:
        """The official nats-sss string of a width index per layer."""
        return get_space("nats-sss").encode(tuple(self.widths[int(i)] for i in indices))

    def per_module(self, arch: Sequence | torch.Tensor | None) -> Sequence | torch.Tensor | None:
        """`arch` (per layer or per module) as one entry per shaped module: per layer, the stem takes layer 0's."""
        if arch is None or len(arch) == len(self.module_layers):
            return arch
        if len(arch) != len(self.cells):
            raise ValueError(f"an sss architecture has {len(self.cells)} layers or {len(self.module_layers)} modules, not {len(arch)}")
        if isinstance(arch, torch.Tensor):
            return arch[list(self.module_layers)]
        return [arch[layer] for layer in self.module_layers]

    def _shape_width(self, x: torch.Tensor, module: int, weights, indices, pairs) -> torch.Tensor:
        if pairs is not None:
            (i, j), w = pairs[module]
            ci, cj = self.widths[i], self.widths[j]
            wide = max(ci, cj)
            mixed = channel_interpolate(x[:, :ci], wide) * w[0] + channel_interpolate(x[:, :cj], wide) * w[1]
            return F.pad(mixed, (0, 0, 0, 0, 0, x.shape[1] - wide))
        if indices is not None:
            index = int(indices[module])
            mask = self.masks[index] if weights is None else self.masks[index] * weights[module, index]
        else:
            mask = weights[module] @ self.masks.to(weights.dtype)
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
        arch = (self.per_module(weights), self.per_module(indices), self.per_module(pairs))
        for module, block in enumerate((self.stem, *self.cells)):
            x = self._shape_width(block(x), module, *arch)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))
