"""The one device set-up of a training trial and of a supernet search: the trial's GPU (checked) or
the CPU with the trial's threads, the decoded splits (cached per process), the seed."""
from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=2)
def cached_splits(dataset: str, data_dir: str | None, cache_dir: str | None):
    """Decoded splits, kept per process: with reused actors, trials after the first skip loading."""
    from autohas.data import load_splits

    return load_splits(dataset, data_dir=data_dir, cache_dir=cache_dir)


def prepare_trial(setup, seed: int, splits=None, load=cached_splits):
    """(device, splits) for a trial of `setup` (a TrainSetup or SearchSetup: gpu, threads, dataset,
    data_dir, cache_dir), with torch seeded by `seed`; `load(dataset, data_dir, cache_dir)` decodes
    the splits when none are given."""
    if setup.gpu and not torch.cuda.is_available():
        raise RuntimeError("this trial was given a GPU, but torch sees no CUDA device here")
    device = torch.device("cuda" if setup.gpu else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, setup.threads))
    splits = splits or load(setup.dataset, setup.data_dir, setup.cache_dir)
    torch.manual_seed(seed)
    return device, splits
