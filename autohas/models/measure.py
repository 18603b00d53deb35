"""Parameter and FLOP counts in the units and conventions of the official NATS-Bench records.

FLOPs are multiply-adds of one sample, in millions, counted by forward hooks on a dummy
input: Conv2d = k_h*k_w*C_in/groups*C_out*H_out*W_out (+ C_out*H_out*W_out for a bias),
Linear = in*out (+ out for a bias). Nothing else is counted: checked against the records
of both spaces, counting pools (k*k per output element) overshoots every architecture
with an avg-pool edge or a residual block, while this convention matches them exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

COUNTED = (nn.Conv2d, nn.Linear)


def count_params(model: nn.Module) -> float:
    """All parameters, in millions (the records' `params`)."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def _layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one call over the whole batch."""
    if isinstance(module, nn.Conv2d):
        k_h, k_w = module.kernel_size
        per_output = k_h * k_w * (module.in_channels // module.groups) + (module.bias is not None)
        return per_output * output.numel()
    if isinstance(module, nn.Linear):
        return (module.in_features + (module.bias is not None)) * output.numel()
    return 0


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Millions of multiply-adds for one sample of `input_shape` ((C, H, W) or (N, C, H, W)).

    Runs one no-grad forward in eval mode (so BN running statistics stay untouched) and
    restores the model's mode afterwards.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {tuple(input_shape)}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COUNTED)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total / shape[0] / 1e6
