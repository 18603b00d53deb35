"""What only a CUDA GPU exercises (marker `gpu`, outside the default run): `pytest -m gpu`.

GPU-resident data, bf16 autocast and channels_last in real training, a checkpoint written on
the GPU and resumed from a CPU load (as Tune's restore does), a search whose device memory is
released before re-training, and Tune packing fractional-GPU trials.
`AUTOHAS_GPU_CHECKS_ON=cpu pytest -m gpu tests/test_gpu.py` runs the same checks on the CPU
(all but the fractional-GPU one), to check the checks on a machine without a GPU.
"""
from __future__ import annotations

import io
import os

import pytest
import torch

from autohas.spaces import get_space
from autohas.trainables.train import Training, TrainSetup, recipe_for, train_results

DEVICE = os.environ.get("AUTOHAS_GPU_CHECKS_ON", "cuda")
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu() -> bool:
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return DEVICE == "cuda"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("data-cache"))


def digits_setup(gpu: bool, cache: str, budget: int) -> TrainSetup:
    return TrainSetup(space="nats-sss", dataset="digits", data_dir=None, budget=budget, seed=0, algo="gpu-check",
                      recipe=recipe_for("digits", 6), threads=2, gpu=gpu, cache_dir=cache)


def test_training_on_the_device_learns_and_its_checkpoint_resumes_from_a_cpu_load(gpu, cache):
    config = get_space("nats-sss").arch_to_config("16:16:16:16:16")
    straight = []
    for result, training in train_results(digits_setup(gpu, cache, 6), config, "a"):
        straight.append(result)
    assert training.train.images.is_cuda == gpu and next(training.model.parameters()).is_cuda == gpu
    conv = next(p for p in training.model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) == gpu
    assert training.bf16 == (gpu and torch.cuda.get_device_capability()[0] >= 8)
    assert straight[-1]["valid_acc"] > 80.0 and straight[-1]["valid_acc"] > straight[0]["valid_acc"]

    for _, first_half in train_results(digits_setup(gpu, cache, 3), config, "a"):
        buffer = io.BytesIO()
        torch.save(first_half.state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=False)  # as restore_state reads a checkpoint
    resumed = [result for result, _ in train_results(digits_setup(gpu, cache, 6), config, "a", state=state)]
    assert [r["epoch"] for r in resumed] == [4, 5, 6]
    # cuDNN's kernel choice and atomic adds make a GPU resume equal only up to noise
    assert abs(resumed[-1]["valid_acc"] - straight[-1]["valid_acc"]) <= 5.0

    # the device's weights, loaded on the CPU, classify the test split as they did there
    on_cpu = Training(digits_setup(False, cache, 3), "16:16:16:16:16", 0)
    on_cpu.model.load_state_dict(state["model"])
    assert abs(on_cpu.accuracy(on_cpu.test) - first_half.accuracy(first_half.test)) <= 1.0


@pytest.mark.parametrize("space, algo", [("nats-tss", "gdas"), ("nats-sss", "tas")])
def test_search_on_the_device_frees_its_memory_before_re_training(gpu, cache, monkeypatch, space, algo):
    from autohas.data import load_splits
    import autohas.trainables.weight_sharing.search as search_module
    from autohas.trainables import train
    from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, search_results

    digits = load_splits("digits", cache_dir=cache)
    monkeypatch.setattr(search_module, "cached_splits", lambda *a: digits)
    monkeypatch.setattr(train, "cached_splits", lambda *a: digits)
    recipe = SearchRecipe(epochs=2, channels=8, cells_per_stage=1, steps_per_epoch=3, eval_batches=1, candidates=4,
                          batch_size=32, eval_batch_size=128, retrain_epochs=1)
    setup = SearchSetup(space, "digits", None, algo, 0, recipe=recipe, gpu=gpu)
    epochs, held = [], []
    for result, state in search_results(setup, "s"):
        del state  # it refers to the search's tensors; only the generator should keep them
        epochs.append(result["epoch"])
        held.append(torch.cuda.memory_allocated() if gpu else 0)
        assert 0.0 <= result["valid_acc"] <= 100.0 and get_space(space).arch_to_index(result["arch"]) >= 0
    assert epochs == [1, 2, 3]
    if gpu:
        assert held[2] < min(held[:2]), held  # re-training: the supernet, its optimisers and data are gone


def test_tune_packs_fractional_gpu_trials_on_one_gpu(gpu, ray_session, cache, tmp_path, monkeypatch):
    from autohas.tune import main
    from tests.test_train_cli import by_trial, records

    if not gpu:
        pytest.skip("needs a real GPU: Ray schedules GPU fractions only where it sees one")
    monkeypatch.setenv("AUTOHAS_DATA_CACHE", cache)
    code = main(["--algo", "random", "--space", "nats-sss", "--evaluate", "train", "--dataset", "digits",
                 "--num-samples", "4", "--epochs", "2", "--gpus-per-trial", "0.5", "--cpus-per-trial", "1",
                 "--storage", str(tmp_path), "--name", "packed"])
    assert code == 0
    rows = records(tmp_path / "packed")
    trials = by_trial(rows)
    assert len(trials) == 4 and all(epochs == [1, 2] for epochs in trials.values())
    assert all(row["valid_acc"] > 10.0 for row in rows if row["epoch"] == 2)  # above chance: they trained
