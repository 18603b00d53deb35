"""autohas: a Ray Tune-based orchestrator for neural architecture and hyperparameter search.

The public names, imported on first use (so that `import autohas` costs neither Ray nor torch):

    from autohas import get_space, register_space, create_searcher, parse_options, run
    space = get_space("nats-tss")                        # or a Space of your own, register_space(...)
    searcher = create_searcher("rea", space, seed=0)     # a ray.tune Searcher over the space
    options = parse_options(["--algo", "rea", "--space", "nats-tss", "--benchmark", "table.csv"])
    run(options)                                         # what `python -m autohas.tune` does

In a Tune script of your own (README, "Python"): `searcher(algo, space)` (a Tune Searcher that follows
TuneConfig's metric and mode), `tabular_trainable(benchmark, dataset)`, `param_space(space)`, and
`load_records(experiment_folder)` (results.jsonl as a pandas DataFrame, both modes).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# searchers/ and trainables/ lie at the top of the repository; an installation maps them into this
# package (pyproject's package-dir). Run from a checkout that is not installed (Ray's working_dir,
# PYTHONPATH=.), the folder beside this package serves them instead: still never the current folder.
_here = os.path.dirname(os.path.abspath(__file__))
_beside = os.path.dirname(_here)
if not os.path.isdir(os.path.join(_here, "searchers")) and os.path.isfile(os.path.join(_beside, "searchers", "__init__.py")):
    __path__.append(_beside)  # noqa: F821 (a package's own __path__)

# public name -> (module, attribute)
_EXPORTS = {
    "AutohasError": ("autohas.errors", "AutohasError"),
    "Decision": ("autohas.spaces", "Decision"),
    "Space": ("autohas.spaces", "Space"),
    "get_space": ("autohas.spaces", "get_space"),
    "register_space": ("autohas.spaces", "register_space"),
    "space_names": ("autohas.spaces", "space_names"),
    "open_benchmark": ("autohas.bench", "open_benchmark"),
    "create_searcher": ("autohas.searchers", "create"),
    "LimitedSearcher": ("autohas.searchers.limits", "LimitedSearcher"),
    "Option": ("autohas.options", "Option"),
    "Options": ("autohas.options", "Options"),
    "parse_options": ("autohas.validate", "parse_options"),
    "run": ("autohas.tune", "run"),
    "RunSpec": ("autohas.runner", "RunSpec"),
    "write_report": ("autohas.report", "write_report"),
    # for a user's own Tune script (README, "Python")
    "searcher": ("autohas.api", "searcher"),
    "param_space": ("autohas.api", "param_space"),
    "tabular_trainable": ("autohas.trainables.tabular", "trainable_for"),
    "load_records": ("autohas.api", "load_records"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autohas' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
