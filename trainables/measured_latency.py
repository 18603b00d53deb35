"""A train trial's measured latency (`--device local-cpu` / `local-gpu`): the trial's own network, timed
once before it trains, or the measurement an earlier trial of the same architecture kept.

Measured before training (and before a checkpoint's weights are loaded) so that the number is the
same whichever epoch a trial starts or resumes at, and every record of the trial carries it. The
experiment folder keeps one JSON file per (network, device, batch) (`autohas.layout`), which later
trials, retries and a resumed experiment read instead of measuring again; with remote storage
(s3://...) there is no folder every node shares, and each trial measures its own. A kept measurement
names the machine that made it (`describe_device`: the CPU model and torch's threads, or the GPU's
name); a trial on another machine (a resume elsewhere, a mixed cluster) treats it as absent, measures
again and keeps its own.
"""
from __future__ import annotations

import copy

import torch

from autohas import layout
from autohas.models.latency_measure import REPEATS, WARMUP, describe_device, measure_latency
from autohas.spaces import get_space


def latency_key(setup, arch: str, input_shape: tuple[int, int, int], machine: str) -> tuple[str, int, dict]:
    """(network space, network index, the items a kept measurement must match) of candidate `arch` timed on
    `machine`: the network alone counts (a `has` candidate's learning rate does not change its latency),
    and the machine (another machine's number is not this one's)."""
    space = get_space(setup.space)
    network_space = get_space(space.architecture_space)
    network = space.architecture(arch)
    key = {"space": network_space.name, "arch": network, "device": setup.device, "batch": setup.latency_batch,
           "input_shape": list(input_shape), "dataset": setup.dataset, "warmup": WARMUP, "repeats": REPEATS,
           "machine": machine}
    return network_space.name, network_space.arch_to_index(network), key


def trial_latency(setup, training, arch: str) -> float:
    """Milliseconds per forward of `training`'s network on `setup.device` at `setup.latency_batch`: kept,
    or measured now (on the trial's GPU for local-gpu; on the CPU for local-cpu, a CPU copy of the
    network when the trial trains on a GPU) and kept."""
    size = training.spec.image_size
    shape = (3, size, size)
    if setup.device == "local-gpu" and training.device.type != "cuda":
        raise RuntimeError("--device local-gpu measures on the trial's GPU, but this trial has none")
    device = torch.device("cpu") if setup.device == "local-cpu" else training.device
    space, index, key = latency_key(setup, arch, shape, describe_device(device))
    path = None
    if setup.latency_cache is not None:
        path = layout.measured_latency_file(setup.latency_cache, space, index, setup.device, setup.latency_batch)
        kept = layout.read_measured_latency(path, key)
        if kept is not None:
            return float(kept["latency_ms"])
    model = training.model
    if training.device.type != device.type:  # local-cpu on a GPU trial: time a CPU copy
        model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format)
    latency = measure_latency(model, shape, device, setup.latency_batch, WARMUP, REPEATS,
                              channels_last=device.type == "cuda")  # as the trial's GPU evaluates it
    if path is not None:
        layout.write_measured_latency(path, {**key, "latency_ms": latency})
    return latency
