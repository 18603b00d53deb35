"""A trial that runs out of GPU memory says why in one line and is retried from its checkpoint."""
from __future__ import annotations

import json
import os

import pytest
import torch

from autohas.trainables.gpu_memory import GpuOutOfMemory, describe_out_of_memory, is_out_of_memory, out_of_memory_explained


def test_the_message_names_the_share_and_the_remedies():
    packed = describe_out_of_memory(0.25)
    assert packed.startswith("out of GPU memory") and "--gpus-per-trial 0.25 lets 4 trials share one GPU" in packed
    assert "--max-failures" in packed and "\n" not in packed
    alone = describe_out_of_memory(1.0)
    assert "--gpus-per-trial" not in alone and "smaller batch" in alone


def test_only_out_of_memory_is_translated(ray_session):
    # in a driver connected to Ray (as here) there is no GPU share to name, and asking must not fail
    with pytest.raises(GpuOutOfMemory) as caught:
        with out_of_memory_explained():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    with pytest.raises(ValueError):
        with out_of_memory_explained():
            raise ValueError("something else")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as caught:
        with out_of_memory_explained():
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")
    assert not isinstance(caught.value, GpuOutOfMemory)


@pytest.mark.parametrize("text", [
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
])
def test_cuda_library_allocation_failures_are_out_of_memory_too(text):
    # cuDNN and cuBLAS report a failed workspace allocation as a plain RuntimeError
    assert is_out_of_memory(RuntimeError(text)) and not is_out_of_memory(RuntimeError("CUDNN_STATUS_NOT_SUPPORTED"))
    with pytest.raises(GpuOutOfMemory) as caught:
        with out_of_memory_explained():
            raise RuntimeError(text)
    assert str(caught.value).startswith("out of GPU memory") and caught.value.__cause__.args == (text,)


def flaky_train(config: dict, setup, marker: str) -> None:
    """The train trainable, whose second epoch runs out of GPU memory once (a file remembers).

    Every epoch it starts is logged as "pid epoch" in `marker`.log, the evidence of what was trained.
    """
    from autohas.trainables import train

    original = train.Training.train_epoch

    def train_epoch(self):
        with open(marker + ".log", "a") as log:
            log.write(f"{os.getpid()} {self.epoch}\n")
        if self.epoch == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self)

    train.Training.train_epoch = train_epoch
    try:
        train.train_trainable(config, setup)
    finally:
        train.Training.train_epoch = original


def test_out_of_memory_trial_is_retried_from_its_checkpoint(ray_session, tmp_path):
    from ray import tune

    from autohas.results import RESULTS_FILE, ResultWriter
    from autohas.runner import RunSpec, _run_config, train_setup
    from autohas.spaces import get_space

    spec = RunSpec(algo="random", seed=0, space="nats-sss", dataset="digits", benchmark="", experiment_dir=str(tmp_path),
                   time_budget=None, num_samples=1, evaluate="train", epochs=3, max_failures=1)
    resources = {"cpu": 1}
    trainable = tune.with_resources(
        tune.with_parameters(flaky_train, setup=train_setup(spec, resources), marker=str(tmp_path / "failed-once")), resources)
    config = get_space("nats-sss").arch_to_config("8:8:8:8:8")
    grid = tune.Tuner(trainable, param_space=config,
                      run_config=_run_config(spec, "flaky", ResultWriter(spec.driver_file(RESULTS_FILE), [("random", 0)], None))).fit()
    result = grid[0]
    assert result.error is None and (tmp_path / "failed-once").exists()
    started = [line.split() for line in open(tmp_path / "failed-once.log")]
    # epoch 0 trained once; epoch 1 failed, then ran again in a new process restored from the epoch-1 checkpoint
    assert [int(epoch) for _, epoch in started] == [0, 1, 1, 2]
    assert started[0][0] == started[1][0] != started[2][0] == started[3][0]
    records = [json.loads(line) for line in open(tmp_path / RESULTS_FILE)]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    (trial,) = tune.ExperimentAnalysis(str(tmp_path / "flaky")).trials
    assert trial.run_metadata.num_failures == 1
    assert "out of GPU memory" in open(os.path.join(result.path, "error.txt")).read()
