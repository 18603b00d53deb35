"""The simulated-clock driver against real Tune runs, and BOHB's multi-fidelity budgets."""
import json
import os
from collections import Counter

import pytest

from autohas import searchers
from autohas.layout import read_seal
from autohas.records import seal
from autohas.runner import RunSpec, execute, summarise
from autohas.simulate import SimulatedRun, _Batches, simulate_experiment, simulate_run
from autohas.spaces import get_space


def spec_for(tmp_path, algo, benchmark, budget, seed=0, dataset="cifar100", name="e", concurrency=1):
    return RunSpec(algo=algo, seed=seed, space="nats-tss", dataset=dataset, benchmark=str(benchmark),
                   experiment_dir=str(tmp_path / name), time_budget=budget, num_samples=None, concurrency=concurrency)


def records(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def keyed(recs):
    return [(r["arch"], r["epoch"], round(r["sim_seconds"], 6), r["best_arch"]) for r in recs]


@pytest.mark.parametrize("algo", searchers.ALGORITHMS)
def test_simulate_equals_tune_with_concurrency_one(ray_session, table_path, tmp_path, algo):
    spec = spec_for(tmp_path, algo, table_path, budget=3500.0, seed=2)
    execute(spec)
    tuned = records(spec.results_path)
    simulated, _ = simulate_run(spec)
    assert len(tuned) >= 10
    assert keyed(simulated) == keyed(tuned)


def test_bohb_multi_fidelity_in_both_modes(ray_session, official_everywhere, tmp_path):
    spec = spec_for(tmp_path, "bohb", official_everywhere, budget=3000.0, seed=1)
    simulated, _ = simulate_run(spec)
    again, _ = simulate_run(spec)
    assert keyed(simulated) == keyed(again)  # deterministic per seed
    epochs_per_trial = {}
    for r in simulated:
        epochs_per_trial.setdefault(r["trial_id"], []).append(r["epoch"])
    final_epochs = [max(e) for e in epochs_per_trial.values()]
    assert max(final_epochs) == 12 and min(final_epochs) < 12  # promoted and stopped trials
    assert all(1 <= e <= 12 for e in final_epochs)  # never a budget the benchmark lacks
    # the rungs are 12/9 -> 1, 12/3 = 4 and 12: every bracket ends at the whole schedule (Ray's own
    # rungs would be 1, 3, 9 in the largest bracket)
    assert set(final_epochs) <= {1, 4, 12}
    first_bracket = [max(e) for e in list(epochs_per_trial.values())[:9]]
    assert sorted(first_bracket) == [1] * 6 + [4] * 2 + [12]
    # HyperBand's first rung: several trials stop after 1 epoch
    assert final_epochs.count(1) >= 3
    execute(spec)
    assert keyed(records(spec.results_path)) == keyed(simulated)


def _hpbandster(run):
    searcher = run.searcher
    while not hasattr(searcher, "bohber"):  # the limits wrapper around it
        searcher = searcher.searcher
    return searcher.bohber


@pytest.mark.parametrize("which", ["table", "official"])
def test_bohb_model_sees_every_rungs_result(request, monkeypatch, which, tmp_path):
    """hpbandster receives each trial's result at every rung it reached, the last rung included (Tune
    skips on_trial_result for a result HyperBandForBOHB answers with STOP: before the fix, on the
    one-fidelity table, hpbandster saw nothing and BOHB was random search)."""
    benchmark = request.getfixturevalue("table_path" if which == "table" else "official_everywhere")
    run = SimulatedRun(spec_for(tmp_path, "bohb", benchmark, budget=3000.0 if which == "official" else 20000.0, seed=1))
    bohber, told = _hpbandster(run), []
    new_result = type(bohber).new_result

    def spy(self, job, *args, **kwargs):  # on the class: the searcher's state is copied during a run
        told.append((job.kwargs["budget"], get_space("nats-tss").config_to_arch(job.kwargs["config"]), -job.result["loss"]))
        return new_result(self, job, *args, **kwargs)

    monkeypatch.setattr(type(bohber), "new_result", spy)
    recs = run.run()
    bohber = _hpbandster(run)
    # (official_everywhere's records name the real record's architecture, one of three: compare signals there)
    key = (lambda t: (t[0], t[1], t[2])) if which == "table" else (lambda t: (t[0], t[2]))
    last = {}
    for r in recs:
        last[r["trial_id"]] = r
    finals = Counter(key((r["epoch"], r["arch"], r["valid_acc"])) for r in last.values())
    seen = Counter(key(t) for t in told)
    assert not finals - seen  # every trial's last result, whatever stopped it (a rung's STOP above all)
    assert not seen - Counter(key((r["epoch"], r["arch"], r["valid_acc"])) for r in recs)  # nothing else
    if which == "table":
        assert len(told) == len(last) >= 50 and 12 in bohber.kde_models  # its model is fitted and sampled
    else:
        assert {t[0] for t in told} == {1, 4, 12} and len(told) > len(last)  # the lower rungs too


def test_bohb_promotions_are_charged_from_scratch_and_the_incumbent_never_falls(official_everywhere, tmp_path):
    """Every evaluation costs its epochs from scratch (the official simulate_train_eval): a trial paused
    at epoch 1 and promoted to 4 pays c(1) + c(4); the clock is the sum over trials."""
    from autohas.bench import open_benchmark
    from autohas.trainables.tabular import benchmark_seed

    spec = spec_for(tmp_path, "bohb", official_everywhere, budget=8000.0, seed=1)
    run = SimulatedRun(spec)
    paused = {}  # trial id -> the epochs it was paused at
    on_result = run._on_result

    def watch(trial, result):
        on_result(trial, result)
        if result is not None and trial.status == "PAUSED":
            paused.setdefault(trial.trial_id, []).append(result["epoch"])

    run._on_result = watch
    recs = run.run()
    bench = open_benchmark(str(official_everywhere), "nats-tss")

    def cost(r, epoch):
        return bench.evaluate(r["arch"], "cifar100", epoch, benchmark_seed(spec.seed, r["arch_index"])).sim_seconds

    for r in recs:
        pauses = [e for e in paused.get(r["trial_id"], []) if e < r["epoch"]]
        assert r["trial_sim_seconds"] == pytest.approx(sum(cost(r, e) for e in pauses) + cost(r, r["epoch"]))
    promoted = {r["trial_id"] for r in recs if any(e < r["epoch"] for e in paused.get(r["trial_id"], []))}
    assert len(promoted) >= 3  # trials paused at a rung, resumed later and charged anew (checked above)
    last = {}
    for r in recs:
        last[r["trial_id"]] = r["trial_sim_seconds"]
        assert r["sim_seconds"] == pytest.approx(sum(last.values()))
    # the incumbent is the best signal so far: never falls, and is always one of the evaluations seen
    best = [max(x["valid_acc"] for x in recs[: i + 1]) for i in range(len(recs))]
    signal_of = {}
    for r, b in zip(recs, best):
        signal_of.setdefault(r["arch"], []).append(r["valid_acc"])
        assert max(signal_of[r["best_arch"]]) == b
    # the search goes on past the budget until no later evaluation can be one of the two nearest it
    budget, times = spec.time_budget, [r["sim_seconds"] for r in recs]

    def settled(i):
        distances = sorted(abs(t - budget) for t in times[: i + 1])
        return times[i] >= budget and len(distances) >= 2 and times[i] - budget >= distances[1]

    k = next(i for i in range(len(recs)) if settled(i))
    assert times[k] > budget and k == len(recs) - 1  # it ran past the budget, and ended once it was settled


def test_seeds_differ_and_concurrency_spreads_trials(table_path, tmp_path):
    one, _ = simulate_run(spec_for(tmp_path, "rea", table_path, 20000.0, seed=0))
    other, _ = simulate_run(spec_for(tmp_path, "rea", table_path, 20000.0, seed=1))
    assert [r["arch"] for r in one] != [r["arch"] for r in other]
    run = SimulatedRun(spec_for(tmp_path, "random", table_path, 20000.0, concurrency=4))
    recs = run.run()
    # four workers: the simulated wall clock ends near a quarter of the compute used
    assert run.now < 0.3 * recs[-1]["sim_seconds"]
    # no trial starts once the budget is used; the ones in flight then finish and are recorded
    past = [r for r in recs if r["sim_seconds"] >= 20000.0]
    assert 1 <= len(past) <= 4 and recs[-len(past) - 1]["sim_seconds"] < 20000.0
    clock = [r["sim_seconds"] for r in recs]
    assert clock == sorted(clock)


def test_simulate_experiment_writes_each_run_once_and_resumes(ray_session, table_path, tmp_path):
    specs = [spec_for(tmp_path, algo, table_path, 5000.0, seed=s, name="multi") for algo in ("random", "rea") for s in (0, 1)]
    os.makedirs(specs[0].experiment_dir)
    outcomes = simulate_experiment(specs)
    assert all(o.finished and o.trials > 5 for o in outcomes)
    first = records(specs[0].results_path)
    assert {(r["algo"], r["seed"]) for r in first} == {("random", 0), ("random", 1), ("rea", 0), ("rea", 1)}
    # the outcomes (made from the records in memory) and seals are those the file gives
    assert outcomes == [summarise(s) for s in specs]
    for s in specs:
        assert read_seal(s.run_dir) == seal([r for r in first if (r["algo"], r["seed"]) == (s.algo, s.seed)])
    # a run that was not marked finished is simulated again, its partial records replaced;
    # finished runs are not recomputed (their run.json, which adds up attempts' wall time, stays)
    def walls():
        return [json.loads(open(os.path.join(s.run_dir, "run.json")).read())["wall_seconds"] for s in specs]

    before = walls()
    os.remove(os.path.join(specs[3].run_dir, "search-finished"))
    simulate_experiment(specs, resume=True)
    after = walls()
    assert after[:3] == before[:3] and after[3] > before[3]
    second = records(specs[0].results_path)
    def stable(recs):  # all but the measured wall time
        return sorted(json.dumps({k: v for k, v in r.items() if k != "wall_seconds"}) for r in recs)

    assert len(second) == len(first) and stable(second) == stable(first)


def test_runs_are_batched_per_algorithm_by_their_pace(tmp_path):
    """A task holds one run while an algorithm's pace is unknown, then about TASK_SECONDS of its runs
    (never another algorithm's), in the experiment's order."""
    from autohas import simulate

    specs = [spec_for(tmp_path, algo, "t.csv", 100.0, seed=s) for algo, seeds in (("rea", 40), ("gp", 3)) for s in range(seeds)]
    batches = _Batches(specs)
    handed = [batches.next()]
    assert [s.name for s in handed[0]] == ["rea-seed0"]
    batches.learn(handed[0][0], simulate.TASK_SECONDS / 10)  # a tenth of a task's time: ten runs a task
    handed += [batches.next(), batches.next(), batches.next()]
    assert [len(b) for b in handed] == [1, 10, 10, 10]
    batches.learn(handed[1][0], 1000.0)  # slower: fewer
    assert [len(b) for b in (batches.next(), batches.next())] == [1, 1]
    for _ in range(7):
        handed.append(batches.next())
    assert all(s.algo == "rea" for b in handed for s in b)
    rest = [batches.next() for _ in range(4)]
    assert [[s.name for s in b] for b in rest] == [["gp-seed0"], ["gp-seed1"], ["gp-seed2"], []]
