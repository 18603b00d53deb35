"""The command line: `python -m autohas.tune --algo rea --space nats-tss ...`.

Options come from three places, later ones winning: built-in defaults, `--config
FILE.yaml`, the command line (the schema: autohas.options; validation: autohas.validate).
Bad input ends with one line on stderr and exit 2, before Ray starts and before any folder
is made; an interrupted experiment ends with exit 130 and continues with `--resume`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Sequence

from autohas.errors import AutohasError
from autohas.layout import DRIVER_LOG, RESULTS_FILE
from autohas.options import Options, build_parser
from autohas.validate import DEFAULT_TIME_BUDGETS, parse_options, validate

__all__ = ["DEFAULT_TIME_BUDGETS", "Options", "build_parser", "main", "parse_options", "run", "validate"]


def _print_outcomes(outcomes: list) -> None:
    """One line per run, or per algorithm when there are many seeds."""
    import statistics

    if len(outcomes) <= 10:
        for o in outcomes:
            best = f"{o.best_test_acc:.2f}" if o.best_test_acc is not None else "-"
            front = ""
            if o.front:  # two objectives: the run's Pareto front, fastest and most accurate end
                ends = f"{o.front[0]['test_acc']:.2f} % at {o.front[0]['latency_ms']:.3g} ms .. " \
                       f"{o.front[-1]['test_acc']:.2f} % at {o.front[-1]['latency_ms']:.3g} ms"
                front = f"; front of {len(o.front)} ({ends})"
            print(
                f"{o.algo} seed {o.seed}: {o.trials} trials, {o.sim_seconds:.0f} {'simulated' if o.simulated else 'training'} s, "
                f"{o.wall_seconds:.1f} s wall; best test acc {best} {o.best_arch or ''}{front}",
                flush=True,
            )
        return
    for algo in dict.fromkeys(o.algo for o in outcomes):
        mine = [o for o in outcomes if o.algo == algo]
        accs = [o.best_test_acc for o in mine if o.best_test_acc is not None]
        spread = f"{statistics.fmean(accs):.2f} +- {statistics.pstdev(accs):.2f}" if accs else "-"
        trials = statistics.fmean(o.trials for o in mine)
        fronts = f", {statistics.fmean(len(o.front) for o in mine):.1f} points per front" if any(o.front for o in mine) else ""
        print(f"{algo}: {len(mine)} runs, final test acc {spread}, {trials:.0f} trials per run{fronts}", flush=True)


def run(options: Options) -> int:
    """Run every (algorithm, seed) of the experiment; the process exit code. One driver at a time."""
    from autohas.experiment import driver_lock

    with driver_lock(options):
        return _run(options)


def _run(options: Options) -> int:
    from autohas.experiment import check_experiment, create_experiment, note_measuring_machines, run_specs, start_ray
    from autohas.storage import open_storage

    store = open_storage(options.storage)
    local = check_experiment(options)  # refused before Ray starts
    from autohas.report import write_report
    from autohas.runner import execute, execute_weight_sharing, repair, trial_resources
    from autohas.simulate import simulate_experiment

    started = start_ray(options.address, options.connect_timeout)
    _interrupt_on_sigterm()  # ray.init installs its own handler, which aborts the driver
    status = 0
    folder = None
    stack = contextlib.ExitStack()
    try:
        # resources the cluster cannot give fail now, before the experiment folder exists
        trial_resources(run_specs(options, local)[0])
        folder = create_experiment(options)
        specs = run_specs(options, folder)
        if options.resume:
            for note in repair(specs):
                print(note, file=sys.stderr)
        stack.enter_context(_tune_log_in(folder))
        from autohas import progress

        stack.enter_context(progress.quiet(options.quiet))  # the progress lines on stderr (autohas.progress)
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
                print(f"warning: {o.errored} trial(s) of {o.algo} seed {o.seed} failed: {o.error} "
                      f"(details: {DRIVER_LOG} in the experiment)", file=sys.stderr)
                status = 1
        if status == 0 and (len(outcomes) < len(specs) or not all(o.finished for o in outcomes)):
            print(f"interrupted: continue with the same command plus --resume ({store.describe(options.name)})", file=sys.stderr)
            return 130
    finally:
        stack.close()
        if folder is not None:  # what was done is in the storage, also after an interruption
            store.push(options.name)
        if started:
            # Not in a thread beside the report: Python code that frees a Ray object while Ray's core
            # worker is shutting down ends the process with exit code 1 and no traceback (seen in CI).
            import ray

            ray.shutdown()
    print(f"results: {store.describe(options.name, RESULTS_FILE)}")
    try:
        note_measuring_machines(folder)  # measured latencies (--device local-*): which machines measured them
        report = write_report([folder])
        store.push(options.name)
        print(f"report: {store.describe(options.name, os.path.relpath(report, folder))}")
    except AutohasError as exc:  # e.g. no result fit in the budget
        print(f"report: not written ({exc})")
    if store.remote:
        print(f"local copy: {folder}")
    return status


@contextlib.contextmanager
def _tune_log_in(folder: str):
    """Tune's own log (a failed trial's traceback, retries) goes to <experiment>/driver.log, not the
    terminal: the run reports each failed run in one line, the details stay at hand."""
    import logging

    class AppendEach(logging.FileHandler):  # the file is open only while a line is written
        def emit(self, record):
            super().emit(record)
            self.close()

        def handleError(self, record):  # a log that cannot be written (storage full) is not worth a traceback
            pass

    logger = logging.getLogger("ray.tune")
    handler = AppendEach(os.path.join(folder, DRIVER_LOG), delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        handler.close()


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError that `exc` is, or was raised from (Tune re-raises a callback's error as its own)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _storage_fault(exc: OSError) -> str:
    """One line for a storage that fails mid-run (read-only, full): what was recorded is intact."""
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    return (f"autohas.tune: error: cannot write{where}: {exc.strerror or exc}; what was recorded is intact: "
            "fix the storage, then rerun the same command with --resume")


def _interrupt_on_sigterm() -> object:
    """SIGTERM (a scheduler, `kill`, a container stop) stops the run as Ctrl-C does: Tune saves its
    state and the experiment resumes. The previous handler, to put back."""
    def as_sigint(signum, frame):
        signal.raise_signal(signal.SIGINT)

    try:
        return signal.signal(signal.SIGTERM, as_sigint)
    except ValueError:  # not the main thread: leave signals alone
        return None


def main(argv: Sequence[str] | None = None) -> int:
    previous = _interrupt_on_sigterm()
    try:
        return run(parse_options(sys.argv[1:] if argv is None else argv))
    except AutohasError as exc:
        print(f"autohas.tune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: continue with the same command plus --resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a storage fault, however Tune wrapped it
        fault = _os_error_in(exc)
        if fault is None:
            raise
        print(_storage_fault(fault), file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
