"""Ray Tune's own algorithms from the command line: `--algo tpe` (OptunaSearch + TPESampler) and
`--scheduler asha|hyperband`, in tune and simulate mode; the aliases NATS-Bench users type."""
import json
import os

import pytest

from autohas import searchers
from autohas.experiment import write_protocol
from autohas.runner import RunSpec, build_scheduler, build_searcher, execute
from autohas.searchers import schedulers
from autohas.simulate import SimulatedRun, simulate_run
from autohas.validate import canonical, parse_options
from tests.conftest import main_in_one_process


def spec_for(tmp_path, algo, benchmark, budget, seed=0, scheduler=None, name="e"):
    return RunSpec(algo=algo, seed=seed, space="nats-tss", dataset="cifar100", benchmark=str(benchmark),
                   experiment_dir=str(tmp_path / name), time_budget=budget, num_samples=None, concurrency=1, scheduler=scheduler)


def records(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def keyed(recs):
    return [(r["arch"], r["epoch"], round(r["sim_seconds"], 6), r["best_arch"]) for r in recs]


def trial_ends(recs):
    """The last epoch each trial reported, in the order the trials started."""
    ends = {}
    for r in recs:
        ends[r["trial_id"]] = r["epoch"]
    return list(ends.values())


def test_tpe_is_tunes_optuna_search_with_a_seeded_tpe_sampler(table_path, tmp_path):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    searcher = build_searcher(spec_for(tmp_path, "tpe", table_path, 4000.0, seed=7), mark_finished=False)
    inner = searcher.searcher.inner
    assert isinstance(inner, OptunaSearch) and inner.metric == "valid_acc" and inner.mode == "max"
    sampler = inner._ot_study.sampler
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert (sampler._n_startup_trials, sampler._multivariate, sampler._constant_liar) == (10, True, True)
    assert "TPESampler" in searchers.describe("tpe") and "10 random starts" in searchers.describe("tpe")


def test_tpe_in_simulate_mode_is_deterministic_per_seed_and_learns(table_path, tmp_path):
    one, _ = simulate_run(spec_for(tmp_path, "tpe", table_path, 12000.0, seed=3))
    again, _ = simulate_run(spec_for(tmp_path, "tpe", table_path, 12000.0, seed=3))
    other, _ = simulate_run(spec_for(tmp_path, "tpe", table_path, 12000.0, seed=4))
    assert len(one) >= 40 and keyed(one) == keyed(again)
    assert [r["arch"] for r in one] != [r["arch"] for r in other]
    # after its 10 random starts TPE samples where the good signals were: its later proposals score well
    # above random search's (measured: about 52 vs 41 % valid accuracy on cifar100)
    uniform, _ = simulate_run(spec_for(tmp_path, "random", table_path, 12000.0, seed=3))
    mean = lambda recs: sum(r["valid_acc"] for r in recs) / len(recs)  # noqa: E731
    assert mean(one[10:]) > mean(one[:10]) + 5 and mean(one[10:]) > mean(uniform) + 5


def test_asha_stops_trials_early_in_tune_and_simulate_mode_alike(ray_session, official_everywhere, tmp_path):
    spec = spec_for(tmp_path, "tpe", official_everywhere, 1000.0, seed=1, scheduler="asha")
    simulated, _ = simulate_run(spec)
    again, _ = simulate_run(spec)
    assert keyed(simulated) == keyed(again)
    ends = trial_ends(simulated)
    rungs = schedulers.asha_rungs(list(range(1, 13)))
    assert rungs == [1, 3, 9]
    assert max(ends) == 12 and min(ends) < 12 and set(ends) <= set(rungs) | {12}  # stopped early, only at a rung
    # every trial reports each epoch up to where it stopped (the scheduler decides after each)
    per_trial = {}
    for r in simulated:
        per_trial.setdefault(r["trial_id"], []).append(r["epoch"])
    assert all(epochs == list(range(1, len(epochs) + 1)) for epochs in per_trial.values())
    execute(spec)
    assert keyed(records(spec.results_path)) == keyed(simulated)


def test_hyperband_pauses_and_resumes_any_searcher_with_concurrency_held_by_resources(official_everywhere, tmp_path):
    spec = spec_for(tmp_path, "rea", official_everywhere, 2500.0, seed=1, scheduler="hyperband")
    assert searchers.pauses_trials("rea", "hyperband") and not searchers.pauses_trials("rea")
    assert build_searcher(spec, mark_finished=False).max_concurrent is None  # HyperBand must keep queueing
    assert not build_searcher(spec, mark_finished=False).settle_past_budget  # that is BOHB's protocol alone
    run = SimulatedRun(spec)
    paused = set()
    on_result = run._on_result

    def watch(trial, result):
        on_result(trial, result)
        if trial.status == "PAUSED":
            paused.add(trial.trial_id)

    run._on_result = watch
    recs = run.run()
    ends = trial_ends(recs)
    assert paused and max(ends) == 12 and min(ends) < 12
    # Tune's HyperBand over 12 epochs, eta 3: brackets 3 x 12, 5 x 4 -> 12, 9 x 1 -> 3 -> 9 epochs
    assert set(ends) <= {1, 3, 4, 9, 12}
    clock = [r["sim_seconds"] for r in recs]
    assert clock == sorted(clock)
    assert type(build_scheduler(spec)).__name__ == "HyperBandScheduler"


def test_tunes_scheduler_names_and_settings_come_from_the_evaluations_epochs():
    asha = schedulers.create("asha", list(range(1, 13)))
    assert type(asha).__name__ == "AsyncHyperBandScheduler"
    assert (asha._max_t, asha._reduction_factor, asha._time_attr) == (12, 3, "epoch")
    assert sorted(m for m, _ in asha._brackets[0]._rungs) == [1, 3, 9]  # Tune's own rungs = the documented ones
    assert schedulers.asha_rungs(list(range(1, 5))) == [1, 3]
    assert searchers.evaluation_ends("rea", [1, 2, 3], "asha") == (1, 2, 3)
    assert searchers.evaluation_ends("rea", [1, 2, 3]) == (3,)
    assert searchers.scheduler_for("rea", [12]) is None


def test_protocol_states_the_searchers_settings_and_the_scheduler(official_everywhere, tmp_path):
    options = parse_options(["--algo", "tpe,rea", "--space", "tss", "--dataset", "cifar10-valid", "--benchmark",
                             str(official_everywhere), "--num-samples", "3", "--scheduler", "asha", "--storage", str(tmp_path)])
    write_protocol(str(tmp_path), options)
    protocol = json.loads((tmp_path / "protocol.json").read_text())
    assert set(protocol["searchers"]) == {"tpe", "rea"}
    assert protocol["searchers"]["tpe"] == searchers.describe("tpe")
    assert "OptunaSearch" in protocol["searchers"]["tpe"] and "population 10" in protocol["searchers"]["rea"]
    assert protocol["scheduler"] == ("asha: Tune's ASHAScheduler (async_hyperband), grace 1, reduction factor 3, "
                                     "max 12 epochs (may stop a trial after epoch 1, 3, 9)")
    plain = parse_options(["--algo", "random", "--space", "nats-tss", "--benchmark", str(official_everywhere),
                           "--num-samples", "3", "--storage", str(tmp_path)])
    write_protocol(str(tmp_path), plain)
    assert json.loads((tmp_path / "protocol.json").read_text())["scheduler"] is None


def test_aliases_are_accepted_and_stored_canonically(table_path, tmp_path):
    from autohas.experiment import check_experiment, create_experiment, run_specs

    argv = ["--algo", "rea", "--space", "tss", "--dataset", "cifar10-valid", "--benchmark", str(table_path),
            "--num-samples", "2", "--storage", str(tmp_path)]
    options = parse_options(argv)
    assert (options.space, options.dataset, options.name) == ("nats-tss", "cifar10", "nats-tss-cifar10")
    folder = create_experiment(options)
    saved = (tmp_path / "nats-tss-cifar10" / "experiment.yaml").read_text()
    assert "space: nats-tss" in saved and "dataset: cifar10\n" in saved
    assert {(s.space, s.dataset) for s in run_specs(options, folder)} == {("nats-tss", "cifar10")}
    check_experiment(parse_options(argv + ["--resume"]))  # the alias resumes the canonical experiment
    assert canonical({"space": "sss", "dataset": "cifar10-valid"}) == {"space": "nats-sss", "dataset": "cifar10"}
    assert canonical({"space": "has", "dataset": "digits"}) == {"space": "has", "dataset": "digits"}


def test_a_scheduler_where_it_cannot_work_is_one_line_before_ray_and_any_folder(table_path, official_everywhere, tmp_path):
    storage = tmp_path / "store"
    ts = ["--space", "nats-tss", "--storage", str(storage), "--num-samples", "4"]
    cases = [
        (["--algo", "tpe", "--benchmark", str(table_path), "--scheduler", "asha"] + ts,
         "--scheduler asha stops trials at fewer epochs, but the benchmark nats-tss-table.csv has one fidelity only (12 epochs)"),
        (["--algo", "rea,bohb", "--benchmark", str(official_everywhere), "--scheduler", "hyperband"] + ts,
         "cannot run with bohb, which has its own HyperBand"),
        (["--algo", "random", "--evaluate", "train", "--epochs", "1", "--scheduler", "asha"] + ts,
         "but --epochs 1 has one fidelity only"),
        (["--algo", "random", "--benchmark", str(official_everywhere), "--scheduler", "median"] + ts,
         "--scheduler: invalid choice: 'median'"),
        (["--algo", "gdas", "--benchmark", str(official_everywhere), "--scheduler", "asha"] + ts,
         "--scheduler asha schedules the trials of black-box searchers"),
    ]
    answer = main_in_one_process([argv for argv, _ in cases], {**os.environ, "AUTOHAS_DATA_CACHE": str(tmp_path / "cache")},
                                 timeout=300)
    assert not answer["ray_started"]
    for (argv, phrase), (rc, err) in zip(cases, answer["results"]):
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (argv, err)
        assert lines[0].startswith("autohas.tune: error: ") and phrase in lines[0], (argv, lines[0])
    assert not storage.exists()


@pytest.mark.parametrize("algo", searchers.ALGORITHMS)
def test_tunes_own_save_and_restore_continue_the_same_sequence(algo, tmp_path):
    """What Tune does on --resume: SearchGenerator.save_to_dir / restore_from_dir (the wrappers' get_state,
    the base searcher's save into the one file Tune keeps)."""
    from ray.tune.search import SearchGenerator

    from autohas.searchers.limits import LimitedSearcher
    from autohas.spaces import get_space
    from tests.test_searchers import drive

    space = get_space("nats-tss")
    whole = drive(LimitedSearcher(searchers.create(algo, space, seed=9)), space, 24)
    first = SearchGenerator(LimitedSearcher(searchers.create(algo, space, seed=9)))
    head = drive(first.searcher, space, 12)
    first.save_to_dir(str(tmp_path), session_str="s")
    assert sorted(os.listdir(tmp_path)) == ["search_gen_state-s.json", "searcher-state-s.pkl"]  # nothing left aside
    second = SearchGenerator(LimitedSearcher(searchers.create(algo, space, seed=123)))
    second.restore_from_dir(str(tmp_path))
    tail = drive(second.searcher, space, 12, prefix="u")
    assert head + tail == whole


def test_tpe_adopts_tunes_metric_and_mode_and_refuses_keys_it_does_not_search():
    from ray import tune

    from autohas.errors import AutohasError
    from autohas.spaces import get_space

    space = get_space("nats-tss")
    searcher = searchers.create("tpe", space, seed=0)
    assert searcher.set_search_properties("loss", "min", space.param_space())
    assert (searcher.metric, searcher.inner.metric) == ("loss", "loss")
    assert searcher.inner._ot_study.direction.name == "MINIMIZE"
    config = searcher.suggest("a")
    assert set(config) == {d.name for d in space.decisions}
    with pytest.raises(AutohasError, match="does not search 'lr'"):
        searchers.create("tpe", space, seed=0).set_search_properties(None, None, {"lr": tune.uniform(0.1, 1)})


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["rea", "tpe"])
def test_hyperband_gives_the_same_trials_in_tune_and_simulate_mode(ray_session, official_everywhere, tmp_path, algo):
    spec = spec_for(tmp_path, algo, official_everywhere, 1500.0, seed=1, scheduler="hyperband")
    simulated, _ = simulate_run(spec)
    assert min(trial_ends(simulated)) < 12
    outcome = execute(spec)
    assert outcome.finished and not outcome.errored
    assert keyed(records(spec.results_path)) == keyed(simulated)
