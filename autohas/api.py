"""The Python API for a user's own Ray Tune script (exported from `autohas`): an autohas searcher
for a space, the space's Tune param_space, and an experiment's records as a pandas DataFrame. The
tabular trainable is `autohas.tabular_trainable` (autohas.trainables.tabular.trainable_for).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from autohas import layout
from autohas.errors import AutohasError
from autohas.records import scan
from autohas.schema import RECORD_KEYS
from autohas.spaces import Space, get_space

if TYPE_CHECKING:
    import pandas
    from ray.tune.search import Searcher


def _space(space: Space | str) -> Space:
    return space if isinstance(space, Space) else get_space(space)


def searcher(algo: str, space: Space | str = "nats-tss", seed: int = 0, metric: str | list[str] | None = None,
             mode: str | list[str] | None = None, **options: Any) -> Searcher:
    """A seeded autohas searcher (`algo`: random, rea, reinforce, gp, bohb, ...) over `space`, as a Tune
    Searcher for `TuneConfig(search_alg=...)`. It follows the TuneConfig's metric and mode (with or
    without a param_space; else `metric` / `mode` here, else valid_acc / max); its configs hold the
    space's decisions and the architecture string under "arch" (also `space.config_to_arch(config)`).
    A param_space may add constants; other searched keys are refused. bohb needs Tune's
    HyperBandForBOHB scheduler beside it. With `objectives=("accuracy", "latency")` (random, rea, nsga2,
    tpe) it searches two: `metric` and `mode` are then lists of two in that order, given here (Tune's
    TuneConfig takes one metric); left out, ["valid_acc", "latency_ms"] and ["max", "min"]. The
    trainable reports both (autohas.tabular_trainable reports no latency)."""
    from autohas import searchers
    from autohas.searchers.user import UserSearcher

    the_space = _space(space)
    if options.get("objectives") is not None:
        given = options["objectives"]
        options["objectives"] = searchers.canonical_objectives(given, "objectives")
        as_given = tuple(o.strip() for o in given.split(",")) if isinstance(given, str) else tuple(given)
        if as_given != options["objectives"]:
            raise AutohasError(f"give objectives as {options['objectives']}: metric and mode follow that order")
    objectives = len(options.get("objectives") or searchers.SINGLE_OBJECTIVE)
    return UserSearcher(searchers.create(algo, the_space, seed, **options), the_space, metric=metric, mode=mode,
                        objectives=objectives)


def param_space(space: Space | str) -> dict:
    """The space as a Tune param_space (one `tune.choice` per decision), for Tune's own searchers."""
    return _space(space).param_space()


def load_records(location: str | os.PathLike, name: str | None = None) -> pandas.DataFrame:
    """An experiment's records, one row each, in the order written, with autohas's record columns
    (autohas.schema.RECORD_KEYS) and `mode` (how the run was executed: tune, simulate, ...; None if
    unknown). `location` is the experiment's folder (or its results.jsonl); with `name`, the storage
    it ran in (`--storage`: a folder or a URI, whose copy is pulled first) and the experiment's
    `--name`. Both modes write the same records, so simulate-mode experiments read like tune-mode
    ones, without Tune's ExperimentAnalysis. A damaged line is refused in one line (a torn last line
    of a running or killed experiment is skipped)."""
    import pandas

    path = os.fspath(location)
    if name is not None:
        from autohas.storage import open_storage

        storage = open_storage(path)
        storage.pull(name)
        path = storage.local_dir(name)
    if os.path.isdir(path):
        path = os.path.join(path, layout.RESULTS_FILE)
    if not os.path.isfile(path):
        raise AutohasError(f"{path} does not exist: not an autohas experiment")
    found = scan(path)
    if found.bad_lines:
        raise AutohasError(f"{path} line {found.bad_lines[0]}: not a JSON record; repair the experiment with --resume")
    rows = sorted((line, record) for runs in found.runs.values() for line, record in runs)
    folder = os.path.dirname(os.path.abspath(path))
    modes = {run: layout.read_run(os.path.join(folder, layout.run_name(*run))).get("mode") for run in found.runs}
    records = [{**record, "mode": modes[(record.get("algo"), record.get("seed"))]} for _, record in rows]
    extra = [k for k in dict.fromkeys(k for r in records for k in r) if k not in RECORD_KEYS and k != "mode"]
    return pandas.DataFrame.from_records(records, columns=[*RECORD_KEYS, "mode", *extra])
