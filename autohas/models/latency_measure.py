"""Measured inference latency of a network on the machine that runs it (`--device local-cpu` / `local-gpu`).

One number per network: untimed warm-up forwards first (lazy allocations, cuDNN's algorithm search,
caches), then the median of repeated timed forwards of one fixed input in eval mode without
gradients. The median, not the mean, because a shared machine's other work adds occasional long
outliers and the median ignores them. On a GPU each timing is enclosed by synchronisations, so it
covers the kernels and not only their launch.
"""
from __future__ import annotations

import platform
import statistics
import time
from typing import Sequence

import torch
from torch import nn

WARMUP = 10  # untimed forwards before the timed ones
REPEATS = 50  # timed forwards; the latency is their median


def measure_latency(model: nn.Module, input_shape: Sequence[int], device: str | torch.device, batch: int = 1,
                    warmup: int = WARMUP, repeats: int = REPEATS, channels_last: bool = False) -> float:
    """Median milliseconds of `repeats` timed forwards of `batch` inputs of `input_shape` ((C, H, W)) after
    `warmup` untimed ones, with `model` (already on `device`) in eval mode under no_grad; its mode is
    restored afterwards. The input comes from a private generator: the global torch RNG, which seeds the
    trial's training, is not touched."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    if batch < 1 or warmup < 0 or repeats < 1:
        raise ValueError("batch and repeats must be at least 1, warmup at least 0")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *shape), generator=generator).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    times = []
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(device)
                began = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - began)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(times)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what the platform says)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: str | torch.device) -> str:
    """What a measurement ran on, for the protocol: the CPU's name and torch's thread count, or the GPU's name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, torch threads {torch.get_num_threads()}"

