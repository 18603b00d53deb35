"""Measured latency (issue 21, `--device local-cpu` / `local-gpu`): the timing itself (forwards counted,
the RNG untouched, a much larger network slower), the per-architecture cache of a train trial, a train
run whose records all carry it with a protocol that says how, and the refusals (one line, exit 2,
before Ray and before any folder)."""
from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from autohas import layout
from autohas.models.latency_measure import describe_device, measure_latency
from autohas.spaces import get_space
from tests.conftest import assert_refused_before_ray

TSS_ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 16 * 16, 10))


def large() -> nn.Module:
    """About 150 MMACs per 32x32 image, against the tiny one's 5 kMACs on 16x16."""
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def test_measure_latency_times_warmup_plus_repeats_forwards_in_eval_mode_without_grad():
    model = tiny()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_grad_enabled(), tuple(i[0].shape))))
    ms = measure_latency(model, (3, 16, 16), "cpu", batch=4, warmup=3, repeats=7)
    assert ms > 0
    assert len(seen) == 3 + 7
    assert all(s == (False, False, (4, 3, 16, 16)) for s in seen)  # eval mode, no grad, the stated batch
    assert model.training  # its mode is restored
    with pytest.raises(ValueError):
        measure_latency(model, (3, 16, 16), "cpu", batch=0)
    with pytest.raises(ValueError):
        measure_latency(model, (1, 3, 16, 16), "cpu")


def test_measuring_leaves_the_global_rng_and_batch_norm_statistics_alone():
    model = large()
    stats = [t.clone() for t in (model[1].running_mean, model[1].running_var)]
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    measure_latency(model, (3, 8, 8), "cpu", warmup=1, repeats=2)
    assert torch.equal(torch.rand(3), expected)  # the trial's initialisation does not depend on being measured
    assert torch.equal(model[1].running_mean, stats[0]) and torch.equal(model[1].running_var, stats[1])


def test_a_network_thousands_of_times_larger_measures_slower():
    torch.set_num_threads(1)
    small = measure_latency(tiny(), (3, 16, 16), "cpu", warmup=3, repeats=15)
    big = measure_latency(large(), (3, 32, 32), "cpu", warmup=2, repeats=9)
    assert big > 5 * small, (small, big)


def test_the_device_description_names_the_cpu_and_torch_threads():
    text = describe_device("cpu")
    assert text.endswith(f", torch threads {torch.get_num_threads()}") and len(text) > len(", torch threads 1")


# -- a train trial's latency: measured once per architecture, kept in the experiment -----------------
@pytest.fixture
def counted(monkeypatch):
    """The measurements trials make (measure_latency spied on, not changed)."""
    from autohas.trainables import measured_latency

    calls = []
    real = measured_latency.measure_latency

    def spy(model, *args, **kwargs):
        calls.append(args)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(measured_latency, "measure_latency", spy)
    return calls


def setup_for(tmp_path, space="nats-tss", batch=1, device="local-cpu"):
    from autohas.trainables.train import Recipe, TrainSetup

    return TrainSetup(space=space, dataset="digits", data_dir=None, budget=1, seed=0, algo="test", recipe=Recipe(epochs=12),
                      threads=1, cache_dir=str(tmp_path / "data"), device=device, latency_batch=batch,
                      latency_cache=str(tmp_path / "experiment"))


def test_a_second_trial_of_the_same_network_reads_the_kept_measurement(tmp_path, counted):
    from autohas.trainables.measured_latency import trial_latency
    from autohas.trainables.train import Training

    setup = setup_for(tmp_path)
    first = trial_latency(setup, Training(setup, TSS_ARCH, seed=1), TSS_ARCH)
    assert first > 0 and len(counted) == 1
    index = get_space("nats-tss").arch_to_index(TSS_ARCH)
    path = layout.measured_latency_file(setup.latency_cache, "nats-tss", index, "local-cpu", 1)
    kept = json.loads(open(path).read())
    assert kept["latency_ms"] == first and kept["arch"] == TSS_ARCH and kept["input_shape"] == [3, 16, 16]
    assert "torch threads 1" in kept["machine"]
    again = trial_latency(setup, Training(setup, TSS_ARCH, seed=2), TSS_ARCH)
    assert again == first and len(counted) == 1  # not measured a second time
    # another batch is another measurement; a damaged file is measured again and replaced
    eight = setup_for(tmp_path, batch=8)
    assert trial_latency(eight, Training(eight, TSS_ARCH, seed=1), TSS_ARCH) > 0 and len(counted) == 2
    assert counted[-1][2] == 8
    with open(path, "w") as handle:
        handle.write('{"latency_ms": 3')
    trial_latency(setup, Training(setup, TSS_ARCH, seed=1), TSS_ARCH)
    assert len(counted) == 3 and json.loads(open(path).read())["arch"] == TSS_ARCH
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(os.path.basename(p) for p in (
        path, layout.measured_latency_file(setup.latency_cache, "nats-tss", index, "local-cpu", 8)))  # no temporary left
    gpu = setup_for(tmp_path, device="local-gpu")
    with pytest.raises(RuntimeError, match="local-gpu measures on the trial's GPU, but this trial has none"):
        trial_latency(gpu, Training(gpu, TSS_ARCH, seed=1), TSS_ARCH)


def test_a_measurement_kept_by_another_machine_is_measured_again_here(tmp_path, counted):
    """A resume on another machine, or a mixed cluster, must not reuse another machine's number."""
    from autohas.trainables.measured_latency import latency_key, trial_latency
    from autohas.trainables.train import Training

    setup = setup_for(tmp_path)
    here = describe_device("cpu")
    space, index, key = latency_key(setup, TSS_ARCH, (3, 16, 16), "Another CPU, torch threads 64")
    path = layout.measured_latency_file(setup.latency_cache, space, index, "local-cpu", 1)
    layout.write_measured_latency(path, {**key, "latency_ms": 123.0})
    assert layout.read_measured_latency(path, {**key, "machine": here}) is None
    assert layout.read_measured_latency(path, key)["latency_ms"] == 123.0  # the same key, machine included, reads it
    ms = trial_latency(setup, Training(setup, TSS_ARCH, seed=1), TSS_ARCH)
    assert len(counted) == 1 and ms != 123.0
    kept = json.loads(open(path).read())
    assert kept["machine"] == here and kept["latency_ms"] == ms  # replaced by this machine's measurement
    assert trial_latency(setup, Training(setup, TSS_ARCH, seed=2), TSS_ARCH) == ms and len(counted) == 1


def test_has_candidates_with_one_cell_share_its_measurement(tmp_path, counted):
    """The latency is the network's: AutoHAS' learning rate and weight decay do not change it."""
    from autohas.trainables.measured_latency import trial_latency
    from autohas.trainables.train import Training

    import numpy as np

    space = get_space("has")
    setup = setup_for(tmp_path, space="has")
    config = space.arch_to_config(space.sample(np.random.default_rng(0)))
    lr = next(d for d in space.decisions if d.name == "lr")
    other = {**config, "lr": next(c for c in lr.choices if c != config["lr"])}
    first, second = space.config_to_arch(config), space.config_to_arch(other)
    assert first != second and space.architecture(first) == space.architecture(second)
    a = trial_latency(setup, Training(setup, first, seed=1), first)
    b = trial_latency(setup, Training(setup, second, seed=1), second)
    assert a == b and len(counted) == 1


@pytest.mark.slow  # two epochs of training: 5-7 s on the shared 2-core machine; the CLI test below covers the records
def test_a_trained_candidate_reports_its_measured_latency_every_epoch(tmp_path, counted):
    from autohas.trainables.train import Recipe, TrainSetup, train_results

    setup = TrainSetup(space="nats-tss", dataset="digits", data_dir=None, budget=2, seed=0, algo="test",
                       recipe=Recipe(epochs=12, batch_size=256), threads=1, cache_dir=str(tmp_path / "data"),
                       device="local-cpu", latency_cache=str(tmp_path / "experiment"))
    results = [r for r, _ in train_results(setup, get_space("nats-tss").arch_to_config(TSS_ARCH), "t1")]
    assert [r["epoch"] for r in results] == [1, 2]
    assert len(counted) == 1 and results[0]["latency_ms"] > 0
    assert results[0]["latency_ms"] == results[1]["latency_ms"]  # measured before training: not per epoch


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_local_gpu_measures_on_the_trials_gpu_and_local_cpu_on_a_cpu_copy(tmp_path, counted):
    from dataclasses import replace

    from autohas.trainables.measured_latency import trial_latency
    from autohas.trainables.train import Training

    gpu = replace(setup_for(tmp_path, device="local-gpu"), gpu=True)
    training = Training(gpu, TSS_ARCH, seed=1)
    on_gpu = trial_latency(gpu, training, TSS_ARCH)
    assert on_gpu > 0 and counted[-1][1].type == "cuda"
    cpu = replace(setup_for(tmp_path, device="local-cpu"), gpu=True)
    assert trial_latency(cpu, training, TSS_ARCH) > 0 and counted[-1][1].type == "cpu"
    assert next(training.model.parameters()).device.type == "cuda"  # the trial's own network stays on its GPU
    kept = {e["device"]: e["machine"] for e in layout.measured_latencies(gpu.latency_cache)}
    assert kept["local-gpu"] == torch.cuda.get_device_name() and "torch threads" in kept["local-cpu"]


# -- the command line ------------------------------------------------------------------------------
def run_measured(tmp_path, *extra: str) -> int:
    """A two-trial, one-epoch train run on digits with a measured latency (the experiment `measured`)."""
    from autohas.tune import main

    old = os.environ.get("AUTOHAS_DATA_CACHE")
    os.environ["AUTOHAS_DATA_CACHE"] = str(tmp_path / "data")
    try:
        return main(["--algo", "random", "--space", "nats-tss", "--evaluate", "train", "--dataset", "digits",
                     "--num-samples", "2", "--epochs", "1", "--storage", str(tmp_path), "--name", "measured", "--quiet",
                     *extra])
    finally:
        if old is None:
            os.environ.pop("AUTOHAS_DATA_CACHE")
        else:
            os.environ["AUTOHAS_DATA_CACHE"] = old


def test_a_train_run_measures_every_candidate_and_says_so(ray_session, tmp_path, capsys):
    code = run_measured(tmp_path, "--device", "local-cpu", "--cpus-per-trial", "1")  # one thread: no OpenMP spinning beside other work
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "measured"
    recs = [json.loads(line) for line in open(folder / "results.jsonl")]
    assert len({r["trial_id"] for r in recs}) == 2
    kept = {e["arch"]: e for e in layout.measured_latencies(str(folder))}
    assert len(kept) == len({r["arch"] for r in recs})  # one measurement per architecture
    for r in recs:
        assert r["latency_ms"] > 0 and r["latency_ms"] == kept[r["arch"]]["latency_ms"]
    protocol = json.loads((folder / "protocol.json").read_text())
    latency = protocol["latency"]
    assert latency["device"] == "local-cpu" and latency["batch"] == 1 and latency["table"] is None
    machine = kept[recs[0]["arch"]]["machine"]
    assert latency["machines"] == [machine] and machine.endswith(", torch threads 1")
    assert latency["measured"] == f"measured on local-cpu ({machine}), batch 1, median of 50 after 10 warm-up forwards, before training"
    md = (folder / "report" / "report.md").read_text()
    assert f"Latency: {latency['measured']}" in md and "| latency (ms) |" in md


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_train_run_on_a_gpu_measures_on_it(ray_session, tmp_path, capsys):
    code = run_measured(tmp_path, "--device", "local-gpu", "--gpus-per-trial", "1", "--latency-batch", "8")
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "measured"
    recs = [json.loads(line) for line in open(folder / "results.jsonl")]
    assert len(recs) == 2 and all(r["latency_ms"] > 0 for r in recs)
    latency = json.loads((folder / "protocol.json").read_text())["latency"]
    assert latency["measured"].startswith(f"measured on local-gpu ({torch.cuda.get_device_name()}), batch 8, ")


def test_bad_measured_latency_options_are_one_line_exit_2_before_ray_and_any_folder(tmp_path):
    out = ["--storage", str(tmp_path / "out"), "--name", "x"]
    train = ["--algo", "rea", "--space", "nats-tss", "--evaluate", "train", "--dataset", "digits", *out]
    table = tmp_path / "table.csv"
    table.write_text("arch_index,arch_str,pixel3_ms\n")
    cases = [
        (["--algo", "rea", "--space", "nats-tss", "--benchmark", str(tmp_path / "t.csv"), "--device", "local-cpu", *out],
         "--device local-cpu measures the networks that --evaluate train builds; a tabular benchmark builds none: "
         "use --latency-table PATH --device NAME"),
        (train + ["--device", "local-cpu", "--latency-table", str(table)], "--device local-cpu measures on the trial's "
         "machine and reads no table"),
        (train + ["--device", "local-cpu", "--latency-limit", "5"], "--latency-limit cannot be used with --device "
         "local-cpu: a measured latency is known only once a trial has built its network"),
        (train + ["--device", "local-gpu"], "--device local-gpu measures on each trial's GPU: add --gpus-per-trial"),
        (train[:1] + ["rea,gdas"] + train[2:] + ["--device", "local-cpu"], "the weight-sharing methods (gdas) are not measured"),
        (train + ["--device", "local-cpu", "--latency-batch", "0"], "--latency-batch must be from 1 to 4,096"),
        (train + ["--device", "local-cpu", "--latency-batch", "100000000"], "--latency-batch must be from 1 to 4,096"),
        (train + ["--latency-batch", "4"], "--latency-batch is for --device local-cpu / local-gpu"),
        (["--algo", "rea", "--space", "nats-tss", "--benchmark", str(tmp_path / "t.csv"), "--latency-batch", "4", *out],
         "--latency-batch is for --evaluate train"),
        (train + ["--device", "pixel3"], "--device needs --latency-table PATH"),
        (train + ["--objectives", "accuracy,latency"], "--objectives accuracy,latency needs --latency-table PATH and "
         "--device NAME (the latency it minimises), or --device local-cpu / local-gpu with --evaluate train"),
        (["--algo", "rea", "--space", "nats-tss", "--benchmark", str(tmp_path / "t.csv"), "--device", "local-cpu",
          "--objectives", "accuracy,latency", *out], "--device local-cpu measures the networks that --evaluate train builds"),
    ]
    assert_refused_before_ray(cases, tmp_path / "out")


def test_a_measured_latency_is_an_objective_of_nsga2_with_a_reference_from_the_runs(ray_session, tmp_path, capsys):
    """Train mode with --device local-cpu and two objectives: every record carries the measured latency,
    optuna's NSGA-II reads it from the results (two metrics; rea's Pareto variant reads the same results,
    tests/test_multi_objective.py), and the report, with no table to
    compute a true front from, states a reference point taken from the runs' own evaluations."""
    from autohas.tune import main

    old = os.environ.get("AUTOHAS_DATA_CACHE")
    os.environ["AUTOHAS_DATA_CACHE"] = str(tmp_path / "data")
    try:
        code = main(["--algo", "nsga2", "--space", "nats-tss", "--evaluate", "train", "--dataset", "digits",
                     "--objectives", "accuracy,latency", "--device", "local-cpu", "--num-samples", "2", "--epochs", "1",
                     "--cpus-per-trial", "1", "--storage", str(tmp_path), "--name", "mo", "--quiet"])
    finally:
        if old is None:
            os.environ.pop("AUTOHAS_DATA_CACHE")
        else:
            os.environ["AUTOHAS_DATA_CACHE"] = old
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "mo"
    recs = [json.loads(line) for line in open(folder / "results.jsonl")]
    assert {r["algo"] for r in recs} == {"nsga2"} and len({r["trial_id"] for r in recs}) == 2
    assert all(r["latency_ms"] > 0 for r in recs)
    kept = {e["arch"]: e["latency_ms"] for e in layout.measured_latencies(str(folder))}
    assert all(r["latency_ms"] == kept[r["arch"]] for r in recs)
    protocol = json.loads((folder / "protocol.json").read_text())
    assert protocol["objectives"] == ["accuracy", "latency"] and protocol["latency"]["device"] == "local-cpu"
    assert protocol["latency"]["measured"].startswith("measured on local-cpu (")
    md = (folder / "report" / "report.md").read_text()
    section = md[md.index("### Pareto fronts"):]
    assert "the worst accuracy and the slowest latency any run evaluated" in section
    assert "| algorithm | runs | mean HV |" in section and "| nsga2 | 1 |" in section
    worst = min(r["test_acc"] for r in recs if r.get("test_acc") is not None)
    slowest = max(r["latency_ms"] for r in recs)
    assert f"reference point ({worst:.2f} %, {slowest:.4g} ms)" in section  # taken from the runs' own evaluations
