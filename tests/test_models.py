"""The rebuilt NATS-Bench networks against the official records, plus their forward contract."""
from __future__ import annotations

import bz2
import pickle

import pytest
import torch

from autohas.bench import open_benchmark
from autohas.errors import AutohasError
from autohas.models import build_network, count_flops, count_params
from autohas.models.cells import InferCell
from autohas.models.ops import AvgPool, FactorizedReduce, Zero

FOLDERS = {"nats-tss": "NATS-tss-v1_0-3ffb9-simple", "nats-sss": "NATS-sss-v1_0-50262-simple"}
# dataset -> (classes, input side)
DATASETS = {"cifar10": (10, 32), "cifar100": (100, 32), "ImageNet16-120": (120, 16)}
TSS_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
# Every kind of edge, and an sss plan whose cells change width (32 -> 40 inside a cell).
TSS_MIXED = "|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
TSS_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SSS_ARCH = "8:8:40:32:40"


@pytest.fixture(scope="module")
def benchmarks(official_path):
    return {space: open_benchmark(str(official_path), space) for space in FOLDERS}


@pytest.fixture(scope="module")
def raw_records(official_path):
    """(space, index) -> the raw record, loaded once per module."""
    records = {}

    def load(space: str, index: int) -> dict:
        if (space, index) not in records:
            with bz2.open(official_path / FOLDERS[space] / f"{index:06d}.pickle.pbz2", "rb") as handle:
                records[space, index] = pickle.load(handle)
        return records[space, index]

    return load


# -- exact costs ---------------------------------------------------------------------------
@pytest.mark.parametrize("space", list(FOLDERS))
@pytest.mark.parametrize("index", [0, 11, 284])
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_params_and_flops_equal_the_official_records(benchmarks, raw_records, space, index, dataset):
    bench = benchmarks[space]
    arch = bench.space.index_to_arch(index)
    classes, side = DATASETS[dataset]
    model = build_network(space, arch, classes)
    params, flops = count_params(model), count_flops(model, (1, 3, side, side))
    cost = bench.cost(arch, dataset)
    # rel 1e-12: equal up to the last bit or two of the records' own float division
    assert params == pytest.approx(cost.params, rel=1e-12, abs=0)
    assert flops == pytest.approx(cost.flops, rel=1e-12, abs=0)
    record = raw_records(space, index)
    runs = [run for hp in record for (name, _), run in record[hp]["all_results"].items() if name == dataset]
    assert runs and record[next(iter(record))]["arch_str"] == arch
    for run in runs:  # every schedule and seed of the raw record agrees too
        assert params == pytest.approx(float(run["params"]), rel=1e-12, abs=0)
        assert flops == pytest.approx(float(run["flop"]), rel=1e-12, abs=0)


def test_flops_are_per_sample_and_leave_the_model_alone():
    model = build_network("nats-sss", SSS_ARCH, 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_flops(model, (3, 32, 32)) == count_flops(model, (4, 3, 32, 32))
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# -- forward contract ----------------------------------------------------------------------
@pytest.mark.parametrize("space, arch", [("nats-tss", TSS_ARCH), ("nats-tss", TSS_MIXED), ("nats-sss", SSS_ARCH)])
@pytest.mark.parametrize("classes, side", [(10, 32), (120, 16)])
def test_output_shape(space, arch, classes, side):
    model = build_network(space, arch, classes)
    out = model(torch.randn(3, 3, side, side))
    assert out.shape == (3, classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.classifier.parameters())


def test_none_only_cells_still_run():
    model = build_network("nats-tss", TSS_NONE, 10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # the first cell zeroes its input, so from there on every sample looks the same
    assert torch.allclose(out[0], out[1])


@pytest.mark.parametrize("space, arch", [("nats-tss", TSS_MIXED), ("nats-sss", SSS_ARCH)])
def test_bf16_autocast_with_channels_last(space, arch):
    torch.manual_seed(0)
    model = build_network(space, arch, 100).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(model(x_cl), reference, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x_cl)
    assert out.shape == (2, 100) and out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()


def test_first_hop_edges_change_the_width():
    cell = InferCell(["avg_pool_3x3", "none", "skip_connect", "none", "avg_pool_3x3", "skip_connect"], 8, 16)
    assert isinstance(cell.layers[0], AvgPool) and cell.layers[0].preprocess is not None
    assert isinstance(cell.layers[1], Zero) and isinstance(cell.layers[3], Zero)
    assert isinstance(cell.layers[2], torch.nn.Identity) and isinstance(cell.layers[5], torch.nn.Identity)
    assert cell.layers[4].preprocess is None
    x = torch.randn(2, 8, 8, 8).contiguous(memory_format=torch.channels_last)
    assert cell(x).shape == (2, 16, 8, 8)
    reduce = FactorizedReduce(8, 15, stride=2)
    assert reduce(torch.randn(2, 8, 8, 8)).shape == (2, 15, 4, 4)


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "space, arch, classes, message",
    [
        ("nats-tss", "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", 10, "nats-tss"),
        ("nats-tss", "|nor_conv_3x3~0|+|none~0|none~1|", 10, "nats-tss"),
        ("nats-tss", SSS_ARCH, 10, "nats-tss"),
        ("nats-sss", "8:8:8:8:9", 10, "nats-sss"),
        ("nats-sss", TSS_ARCH, 10, "nats-sss"),
        ("darts", TSS_ARCH, 10, "unknown space"),
        ("nats-tss", TSS_ARCH, 0, "num_classes"),
    ],
)
def test_bad_input_raises_a_one_line_error(space, arch, classes, message):
    with pytest.raises(AutohasError, match=message) as caught:
        build_network(space, arch, classes)
    assert "\n" not in str(caught.value)
