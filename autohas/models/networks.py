"""The macro skeleton both NATS-Bench spaces share, and the arch-string -> layer-plan mapping.

Skeleton: stem conv + BN, then N cells | residual block (stride 2) | N cells | residual
block (stride 2) | N cells, then BN + ReLU, global average pooling and a linear classifier.
tss searches the cell topology (N = 5, widths 16/32/64); sss fixes the topology and
searches the five layer widths (N = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
import torch
from torch import nn

from autohas.errors import AutohasError
from autohas.models.cells import InferCell
from autohas.models.ops import ResidualBlock
from autohas.spaces import get_space
from autohas.spaces.nats_sss import CELL as SSS_CELL

TSS_CELLS_PER_STAGE = 5
TSS_STAGE_CHANNELS = (16, 32, 64)


@dataclass(frozen=True)
class Plan:
    """What to build: the cell's edge operations and, per layer, its width and whether it reduces."""

    cell_ops: tuple[str, ...]
    widths: tuple[int, ...]
    reductions: tuple[bool, ...]


def _stage_layout(cells_per_stage: int) -> tuple[bool, ...]:
    cells = (False,) * cells_per_stage
    return cells + (True,) + cells + (True,) + cells


def plan_for(space: str, arch: str) -> Plan:
    """Parse an official arch string of `space` (AutohasError if it is not one)."""
    decoded = get_space(space).decode(arch)
    if space == "nats-tss":
        return tss_plan(tuple(decoded))
    # nats-sss: len(widths) // 3 cells per stage, as the benchmark derives it (5 -> 1).
    cell_ops = get_space("nats-tss").decode(SSS_CELL)
    return Plan(tuple(cell_ops), tuple(decoded), _stage_layout(len(decoded) // 3))


def tss_plan(cell_ops: tuple[str, ...], channels: int = TSS_STAGE_CHANNELS[0], cells_per_stage: int = TSS_CELLS_PER_STAGE) -> Plan:
    """The tss skeleton around one cell: widths C, 2C, 4C per stage (the benchmark's: C = 16, 5 cells)."""
    reductions = _stage_layout(cells_per_stage)
    widths, stage = [], 0
    for reduces in reductions:
        stage += reduces
        widths.append(channels * 2**stage)
    return Plan(tuple(cell_ops), tuple(widths), reductions)


class NatsNetwork(nn.Module):
    """One NATS-Bench network; each layer takes the previous layer's width as its input width."""

    def __init__(self, plan: Plan, num_classes: int) -> None:
        super().__init__()
        stem_width = plan.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_width, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(stem_width)
        )
        layers, c_prev = [], stem_width
        for width, reduces in zip(plan.widths, plan.reductions):
            layers.append(ResidualBlock(c_prev, width, 2) if reduces else InferCell(plan.cell_ops, c_prev, width))
            c_prev = width
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))


def build_network(space: str, arch: str, num_classes: int) -> nn.Module:
    """The exact network the benchmark trained for `arch`, with a `num_classes`-way head."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise AutohasError(f"num_classes must be a positive integer, got {num_classes!r}")
    return NatsNetwork(plan_for(space, arch), num_classes)

