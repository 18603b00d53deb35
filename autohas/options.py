"""The experiment's options, declared once: `OPTIONS` is the schema everything else is derived from.

Each `Option` says its type, default, help, where it applies (which algorithms or evaluations) and
whether a resumed experiment must keep it. From the table come the command line (`build_parser`),
the YAML keys `--config` accepts (`read_yaml`: an unknown key is a one-line error naming it), the
coercion of YAML values, the "is for ..." refusals of options given where they do not apply, the
resume check (`fixed_on_resume`), the options kept in experiment.yaml (`saved_options`) and the
weight-sharing methods' own settings (`method_options`). Adding an option is one `Option(...)` here
plus its use. Nothing here imports Ray or torch: `--help` and bad input stay fast.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Sequence

from autohas.errors import AutohasError

# Where an option applies (`Option.applies`); an option given where none of its places holds is refused.
WEIGHT_SHARING = "weight-sharing"  # some --algo is a weight-sharing method
TRAIN = "train"  # --evaluate train
PLACES = {
    WEIGHT_SHARING: "weight-sharing methods ({methods})",
    TRAIN: "--evaluate train (a tabular benchmark has fixed data and schedules)",
}


UNRECORDED = object()  # Option.absent_means where an absent key is not checked


@dataclass(frozen=True)
class Option:
    """One option: `--name-with-dashes` on the command line, `name_with_underscores` (or dashes) in YAML."""

    name: str
    type: type = str  # str, int, float, bool (a flag) or list (comma-separated names)
    default: Any = None  # None: resolved later (validation says what None means)
    help: str = ""  # may name {algorithms}, {methods}, {spaces}, {selections}
    choices: tuple | None = None
    applies: tuple[str, ...] = ()  # places (WEIGHT_SHARING, TRAIN) it is for; () everywhere
    fixed_on_resume: bool = False  # it defines what the experiment measures: a resumed one keeps it
    saved: bool = True  # kept in experiment.yaml
    method_setting: bool = False  # handed to the weight-sharing methods' Settings (`method_options`)
    cli_only: bool = False  # read by the command line itself (not an experiment option)
    # for an option added after experiment.yaml was first saved: the value an experiment.yaml without it
    # ran with, so that resuming such an experiment with the option set is refused
    absent_means: Any = UNRECORDED

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("algo", list, help="searchers and/or weight-sharing methods, comma-separated: {algorithms}, {methods}"),
    Option("space", help="search space: {spaces}; tss and sss are accepted for nats-tss and nats-sss", fixed_on_resume=True),
    Option("dataset", help="tabular: cifar10 | cifar100 | ImageNet16-120 (default cifar10); train: those, fashion-mnist, "
           "digits or imagefolder (default digits). cifar10's search signal comes from the cifar10-valid split "
           "(train 25k / valid 25k): cifar10-valid names it too", fixed_on_resume=True),
    Option("benchmark", help="a NATS-Bench CSV table, an official '-simple' folder, or a folder holding one "
           "(default: $AUTOHAS_BENCHMARK, else $TORCH_HOME, else ~/.torch)", fixed_on_resume=True),
    Option("evaluate", choices=("tabular", "train"), fixed_on_resume=True,
           help="tabular: look candidates up in the benchmark; train: train each candidate for real "
           "(default: tabular when --benchmark or $AUTOHAS_BENCHMARK is given, else train)"),
    Option("data_dir", applies=(TRAIN, WEIGHT_SHARING), fixed_on_resume=True,
           help="train: the dataset's files (a folder, or a .tar.gz of class folders)"),
    Option("epochs", int, applies=(TRAIN,), fixed_on_resume=True,
           help="train: length of the training schedule in epochs (default 12, NATS-Bench H0)"),
    Option("select", applies=(WEIGHT_SHARING,), fixed_on_resume=True,
           help="weight sharing: how the architecture is derived: {selections} "
           "(default: alpha for darts-v1/v2 and gdas, sampled for rsps, setn and enas)"),
    Option("search_epochs", int, applies=(WEIGHT_SHARING,), fixed_on_resume=True,
           help="weight sharing: epochs of supernet search (default 100, NATS-Bench)"),
    Option("search_batches", int, applies=(WEIGHT_SHARING,), fixed_on_resume=True,
           help="weight sharing: search steps per epoch, for quick runs (default: one pass over the training split)"),
    Option("retrain_epochs", int, applies=(WEIGHT_SHARING,), fixed_on_resume=True,
           help="weight sharing: re-train each final architecture from scratch for this many epochs with H0 "
           "(and AutoHAS' derived hyperparameters); default 12 for autohas and autohas-hp, and for tas, mask-gumbel "
           "and mask-sample without a benchmark; 0 (none) for the others"),
    Option("warmup_ratio", float, applies=(WEIGHT_SHARING,), fixed_on_resume=True, method_setting=True,
           help="nats-sss weight sharing: the first fraction of the search epochs trains the widest network alone "
           "(shared weights only; NATS-Bench's warm-up); default 0"),
    Option("flops_target", float, applies=(WEIGHT_SHARING,), fixed_on_resume=True, method_setting=True,
           help="tas: add TAS' cost loss toward this many MFLOPs (lambda 2, tolerance 5%%); default none, as NATS-Bench"),
    Option("latency_table", fixed_on_resume=True, absent_means=None,
           help="hardware-aware search: a latency table (CSV: arch_index, arch_str, <device>_ms columns), e.g. "
           "../shared/data/nats-tss/nats-tss-latency.csv; records then carry each architecture's latency_ms on --device"),
    Option("device", fixed_on_resume=True, absent_means=None,
           help="with --latency-table: the device whose latency column is read, e.g. pixel3 (a column name without _ms); "
           "without it, in train mode: local-cpu or local-gpu measures each trained network's inference latency on the "
           "trial's machine (warm-up, then the median of timed forwards), kept per architecture in the experiment"),
    Option("latency_batch", int, applies=(TRAIN,), fixed_on_resume=True, absent_means=None,
           help="with --device local-cpu / local-gpu: the inputs of each timed forward (default 1)"),
    Option("latency_limit", float, fixed_on_resume=True, absent_means=None,
           help="with --latency-table and --device: constrained search for the black-box searchers; an architecture "
           "slower than this many ms is never evaluated (no trial, no cost) and the searcher is told it is infeasible"),
    Option("latency_target", float, applies=(WEIGHT_SHARING,), fixed_on_resume=True, absent_means=None,
           help="with --latency-table and --device: weight sharing on nats-tss (darts-v1, darts-v2, gdas, setn, sanas-darts, "
           "sanas-gdas, lease): add TAS' cost loss toward this many ms to the architecture update, the expected latency "
           "from an additive per-op model fitted to the device's column (lambda 2, tolerance 5%%); default none"),
    Option("objectives", list, fixed_on_resume=True, absent_means=["accuracy"],
           help="what the black-box searchers optimise: accuracy (default) or accuracy,latency (multi-objective "
           "search: maximise the search signal, minimise latency_ms on --device; needs --latency-table and --device; "
           "random, rea, nsga2 and tpe support it); each run's outcome is then its Pareto front"),
    Option("cpus_per_trial", float, fixed_on_resume=True,
           help="CPUs each trial reserves (default: the machine's, shared by --concurrency)"),
    Option("gpus_per_trial", float, default=0.0, fixed_on_resume=True,
           help="GPUs each trial reserves, e.g. 0.25 packs four trials on one GPU"),
    Option("time_budget", float, fixed_on_resume=True,
           help="training seconds per run: simulated (tabular; default NATS-Bench's) or measured (train)"),
    Option("num_samples", int, fixed_on_resume=True, help="at most this many trials per run"),
    Option("seed", int, default=0, help="first seed (default 0)"),
    Option("seeds", int, default=1, help="number of seeds: runs seeds S..S+K-1 (default 1)"),
    Option("concurrency", int, fixed_on_resume=True,
           help="trials at once per run (default 1; train: as many as the resources fit)"),
    Option("scheduler", choices=("asha", "hyperband"), fixed_on_resume=True, absent_means=None,
           help="Ray Tune's trial scheduler for the black-box searchers but bohb: asha (ASHAScheduler) stops, hyperband "
           "(HyperBandScheduler) pauses and stops trials at lower epochs; needs several fidelities (the official "
           "NATS-Bench files, or --evaluate train); default none (every trial runs its whole budget)"),
    Option("seed_mode", default="sample", choices=("sample", "mean"), fixed_on_resume=True,
           help="benchmark runs: one per evaluation (default) or their mean"),
    Option("mode", choices=("simulate", "tune"),
           help="simulate: a simulated-clock driver, seeds in parallel (default with --seeds > 1); "
           "tune: every trial a Ray Tune trial (default for one seed)"),
    Option("storage", default="results",
           help="where experiments go: a folder (default ./results) or a URI Ray Tune's storage accepts, e.g. "
           "s3://bucket/autohas; on a cluster it must be reachable from every node (object storage or a shared file system)"),
    Option("address", saved=False,
           help="the Ray cluster to run on, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, which `ray job submit` sets, "
           "else a new local Ray)"),
    Option("connect_timeout", float, default=30.0, saved=False,
           help="give up connecting to --address after this many seconds (default 30)"),
    Option("max_failures", int, default=2,
           help="retry a failed trial (a lost node, a crash, out of GPU memory) this many times from its last checkpoint (default 2)"),
    Option("name", help="experiment name (default <space>-<dataset>)"),
    Option("config", cli_only=True, help="YAML file with any of these options (the command line wins)"),
    Option("resume", bool, default=False, saved=False, help="continue an interrupted experiment"),
    Option("overwrite", bool, default=False, saved=False, help="delete an existing experiment of this name first"),
    Option("quiet", bool, default=False, saved=False,
           help="no progress lines on stderr while the experiment runs (by default one at least every 10 s, at most one a second)"),
)


def declared() -> dict[str, Option]:
    """The experiment options by name (the command line's own, such as --config, left out)."""
    return {o.name: o for o in OPTIONS if not o.cli_only}


class Options:
    """The value of every declared option (defaults filled in); attributes named as the options."""

    def __init__(self, **values: Any) -> None:
        options = declared()
        unknown = [name for name in values if name not in options]
        if unknown:
            raise TypeError(f"unknown option {unknown[0]!r}")
        for name, option in options.items():
            setattr(self, name, values.get(name, option.default))

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in declared()}

    def __repr__(self) -> str:
        return "Options(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"


def fixed_on_resume() -> tuple[str, ...]:
    """The options a resumed experiment must keep (they define what it measures)."""
    return tuple(o.name for o in OPTIONS if o.fixed_on_resume)


def saved_options(options: Options) -> dict[str, Any]:
    """What experiment.yaml keeps of `options`."""
    return {name: getattr(options, name) for name, o in declared().items() if o.saved}


def method_options(options: Any) -> dict[str, Any]:
    """The options the weight-sharing methods' own Settings read (each method takes those it has)."""
    return {name: getattr(options, name) for name, o in declared().items() if o.method_setting}


def _names() -> dict[str, str]:
    """The registries' names for help texts, without importing Ray or torch."""
    from autohas.searchers import ALGORITHMS
    from autohas.spaces import get_space, space_names
    from autohas.trainables.weight_sharing import METHOD_NAMES, SELECTION_NAMES

    spaces = [f"{name} ({get_space(name).summary})" if get_space(name).summary else name for name in space_names()]
    return {"algorithms": ", ".join(ALGORITHMS), "methods": ", ".join(METHOD_NAMES),
            "spaces": ", ".join(spaces), "selections": ", ".join(SELECTION_NAMES)}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise AutohasError(message)


def build_parser() -> argparse.ArgumentParser:
    names = _names()
    p = _Parser(
        prog="python -m autohas.tune",
        description="Run NAS/HPO searchers with Ray Tune and write results in the common schema.",
        argument_default=argparse.SUPPRESS,
        epilog=f"searchers: {names['algorithms']}; weight-sharing methods: {names['methods']}; spaces: {names['spaces']}. "
        "Results: <storage>/<name>/results.jsonl (one JSON record per reported step).",
    )
    for o in OPTIONS:
        text = o.help.format(**names)
        if o.type is bool:
            p.add_argument(o.flag, action="store_true", help=text)
        else:
            p.add_argument(o.flag, type=o.type if o.type in (int, float) else str, choices=o.choices, help=text)
    return p


def read_yaml(path: str) -> dict:
    """The options of a YAML file (keys with dashes or underscores); one-line errors."""
    import yaml

    try:
        with open(path, "rb") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise AutohasError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        reason = str(getattr(exc, "problem", None) or exc).strip().splitlines()[0]
        raise AutohasError(f"malformed YAML in {path}{at}: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AutohasError(f"config {path} must be a mapping of option: value")
    known = declared()
    options = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise AutohasError(f"config {path}: unknown option {key!r}")
        options[name] = value
    return options


def _whole(name: str, value: Any) -> int:
    """An integer option's value; a YAML 2.7 is an error, not a silent 2."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number, not {value!r}")
    return int(value)


def _as_names(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(a).strip() for a in items if str(a).strip()]


def coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Values (from YAML or the command line) as their options' types; AutohasError otherwise."""
    options = declared()
    out = {}
    for name, value in values.items():
        option = options[name]
        if value is None:
            out[name] = None
        elif option.type is list:
            out[name] = _as_names(value)
            if not out[name]:
                raise AutohasError(f"{option.flag} is empty")
            if not isinstance(value, (list, tuple)) and len(out[name]) != len(str(value).split(",")):
                raise AutohasError(f"{option.flag} has an empty entry: {value!r}")
        elif option.type is str:
            if not isinstance(value, str):
                raise AutohasError(f"option {name.replace('_', '-')} must be a single value, not {value!r}")
            out[name] = value
        else:
            try:
                out[name] = _whole(name, value) if option.type is int else option.type(value)
            except (TypeError, ValueError) as exc:
                raise AutohasError(f"bad option value: {exc}") from None
    return out


def refuse_where_not_applicable(options: Options, places: set[str]) -> None:
    """An option given (not None) where none of its places holds is refused, naming what it is for."""
    names = _names()
    for name, option in declared().items():
        if option.applies and getattr(options, name) is not None and not places & set(option.applies):
            raise AutohasError(f"{option.flag} is for {PLACES[option.applies[0]].format(**names)}")


def merge(argv: Sequence[str]) -> dict[str, Any]:
    """Defaults < --config YAML < command line, as raw values (not yet validated)."""
    given = vars(build_parser().parse_args(list(argv)))
    merged: dict[str, Any] = {}
    if "config" in given:
        merged.update(read_yaml(given.pop("config")))
    merged.update(given)
    return merged
