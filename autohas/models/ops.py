"""The candidate operations of NATS-Bench cells and the residual block between stages.

Shapes, widths and bias rules follow the networks the benchmark trained, because the
official parameter and FLOP counts are only reproducible with exactly these layers.
Attribute names mirror the official modules so their checkpoints' keys line up.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class ReLUConvBN(nn.Module):
    """Pre-activation convolution: ReLU -> Conv -> BN. The BN shift makes a conv bias redundant."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class AvgPool(nn.Module):
    """3x3 average pooling; a 1x1 ReLUConvBN first adapts the width when it changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0, affine)
        self.op = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.op(x)


class Zero(nn.Module):
    """The `none` edge: zeros of the output shape (multiplying keeps NaNs visible, as upstream)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.c_in == self.c_out:
            return x.mul(0.0)
        shape = (x.shape[0], self.c_out, x.shape[2], x.shape[3])
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return torch.zeros(shape, dtype=x.dtype, device=x.device).contiguous(memory_format=fmt)


class FactorizedReduce(nn.Module):
    """Skip connection that must change width or resolution with 1x1 convs + BN.

    Stride 1 is a single 1x1 conv; stride 2 concatenates two half-width 1x1 convs read at
    offsets (0, 0) and (1, 1), so no input pixel is ignored by the subsampling.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"FactorizedReduce supports stride 1 or 2, not {stride}")
        self.stride = stride
        if stride == 2:
            self.relu = nn.ReLU(inplace=False)
            halves = (c_out // 2, c_out - c_out // 2)
            self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 1, stride=2, bias=not affine) for c in halves)
            self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 1, stride=1, bias=not affine)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.bn(self.conv(x))
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def skip_connect(c_in: int, c_out: int, stride: int, affine: bool = True) -> nn.Module:
    """Identity when the shape is kept, else a factorized reduction."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return FactorizedReduce(c_in, c_out, stride, affine)


class ResidualBlock(nn.Module):
    """The basic residual block that separates the stages (a fixed, non-searched layer).

    The shortcut for stride 2 is avg-pool + plain 1x1 conv (no BN), as in the benchmark.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ResidualBlock supports stride 1 or 2, not {stride}")
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
            )
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0, affine)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv_b(self.conv_a(x))
        shortcut = x if self.downsample is None else self.downsample(x)
        return shortcut + branch


OpFactory = Callable[..., nn.Module]

# Keyed by the names in autohas.spaces.nats_tss.OPERATIONS; called as (c_in, c_out, stride, affine=True).
# Supernets build their candidates with affine=False (no learnt BN scale/shift), as NATS-Bench does.
OPS: dict[str, OpFactory] = {
    "none": lambda c_in, c_out, stride, affine=True: Zero(c_in, c_out, stride),
    "skip_connect": lambda c_in, c_out, stride, affine=True: skip_connect(c_in, c_out, stride, affine),
    "nor_conv_1x1": lambda c_in, c_out, stride, affine=True: ReLUConvBN(c_in, c_out, 1, stride, 0, affine),
    "nor_conv_3x3": lambda c_in, c_out, stride, affine=True: ReLUConvBN(c_in, c_out, 3, stride, 1, affine),
    "avg_pool_3x3": lambda c_in, c_out, stride, affine=True: AvgPool(c_in, c_out, stride, affine),
}
