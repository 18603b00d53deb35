"""The command line: `python -m autohas.tune --algo rea --space nats-tss ...`.

Options come from three places, later ones winning: built-in defaults, `--config
FILE.yaml`, the command line (the schema: autohas.options; validation: autohas.validate).
Bad input ends with one line on stderr and exit 2, before Ray starts and before any folder
is made; an interrupted experiment ends with exit 130 and continues with `--resume`.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from autohas.errors import AutohasError
from autohas.layout import RESULTS_FILE
from autohas.options import Options, build_parser
from autohas.validate import DEFAULT_TIME_BUDGETS, parse_options, validate

__all__ = ["DEFAULT_TIME_BUDGETS", "Options", "build_parser", "main", "parse_options", "run", "validate"]


def _print_outcomes(outcomes: list) -> None:
    """One line per run, or per algorithm when there are many seeds."""
    import statistics

    if len(outcomes) <= 10:
        for o in outcomes:
            best = f"{o.best_test_acc:.2f}" if o.best_test_acc is not None else "-"
            print(
                f"{o.algo} seed {o.seed}: {o.trials} trials, {o.sim_seconds:.0f} {'simulated' if o.simulated else 'training'} s, "
                f"{o.wall_seconds:.1f} s wall; best test acc {best} {o.best_arch or ''}",
                flush=True,
            )
        return
    for algo in dict.fromkeys(o.algo for o in outcomes):
        mine = [o for o in outcomes if o.algo == algo]
        accs = [o.best_test_acc for o in mine if o.best_test_acc is not None]
        spread = f"{statistics.fmean(accs):.2f} +- {statistics.pstdev(accs):.2f}" if accs else "-"
        trials = statistics.fmean(o.trials for o in mine)
        print(f"{algo}: {len(mine)} runs, final test acc {spread}, {trials:.0f} trials per run", flush=True)


def run(options: Options) -> int:
    """Run every (algorithm, seed) of the experiment; the process exit code."""
    from autohas.experiment import check_experiment, create_experiment, run_specs, start_ray
    from autohas.storage import open_storage

    store = open_storage(options.storage)
    local = check_experiment(options)  # refused before Ray starts
    from autohas.report import write_report
    from autohas.runner import execute, execute_weight_sharing, trial_resources
    from autohas.simulate import simulate_experiment

    started = start_ray(options.address)
    status = 0
    folder = None
    try:
        # resources the cluster cannot give fail now, before the experiment folder exists
        trial_resources(run_specs(options, local)[0])
        folder = create_experiment(options)
        specs = run_specs(options, folder)
        searches = [s for s in specs if s.weight_sharing]
        specs_bb = [s for s in specs if not s.weight_sharing]
        outcomes = []
        if specs_bb and options.mode == "simulate":
            outcomes = simulate_experiment(specs_bb, resume=options.resume)
        else:
            for spec in specs_bb:
                outcome = execute(spec, resume=options.resume)
                outcomes.append(outcome)
                store.push(options.name)
                if not outcome.finished:
                    break
        if searches and all(o.finished for o in outcomes) and len(outcomes) == len(specs_bb):
            outcomes += execute_weight_sharing(searches, resume=options.resume)
        _print_outcomes(outcomes)
        for o in outcomes:
            if o.errored:
                print(f"warning: {o.errored} trial(s) of {o.algo} seed {o.seed} failed: {o.error}", file=sys.stderr)
                status = 1
        if status == 0 and (len(outcomes) < len(specs) or not all(o.finished for o in outcomes)):
            print(f"interrupted: continue with the same command plus --resume ({store.describe(options.name)})", file=sys.stderr)
            return 130
    finally:
        if folder is not None:  # what was done is in the storage, also after an interruption
            store.push(options.name)
        if started:
            import ray

            ray.shutdown()
    print(f"results: {store.describe(options.name, RESULTS_FILE)}")
    try:
        report = write_report([folder])
        store.push(options.name)
        print(f"report: {store.describe(options.name, os.path.relpath(report, folder))}")
    except AutohasError as exc:  # e.g. no result fit in the budget
        print(f"report: not written ({exc})")
    if store.remote:
        print(f"local copy: {folder}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(sys.argv[1:] if argv is None else argv))
    except AutohasError as exc:
        print(f"autohas.tune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: continue with the same command plus --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
