"""Reader of the official NATS-Bench "-simple" folders, through the official `nats_bench` API.

Semantics follow the official API and its `simulate_train_eval`:
- search signal: validation accuracy after `epoch` epochs of the short schedule
  (hp "12"); on cifar10 it comes from `cifar10-valid` (train 25k / valid 25k);
- cost: training time up to that epoch plus one validation pass;
- reported accuracy: test accuracy at the end of the long schedule (hp "200" for
  tss, "90" for sss), averaged over the benchmark's seeds; on cifar10 from `cifar10`
  (trained on train+valid, tested on the official test set).
"""
from __future__ import annotations

import contextlib
import io
import os
from functools import cached_property

from autohas.bench.base import DATASETS, Benchmark, Cost, Evaluation
from autohas.errors import AutohasError
from autohas.spaces import Space

# Folder names of the official releases, per space.
OFFICIAL_FOLDERS = {"nats-tss": "NATS-tss-v1_0-3ffb9-simple", "nats-sss": "NATS-sss-v1_0-50262-simple"}
SEARCH_HP = "12"
REPORT_HP = {"nats-tss": "200", "nats-sss": "90"}


def _check_readable(path: str) -> None:
    """A corrupt (or not bz2) record is one clear line, not a decompression traceback in a trial."""
    import bz2

    try:
        with bz2.open(path, "rb") as handle:
            handle.read(256)
    except (OSError, EOFError, ValueError) as exc:
        raise AutohasError(f"cannot read benchmark file {path}: {exc}") from None


class NatsOfficialBenchmark(Benchmark):
    def __init__(self, folder: str, space: Space):
        self.folder = os.path.abspath(folder)
        self.space = space
        self.report_hp = REPORT_HP[space.name]
        self.source = f"official NATS-Bench files ({os.path.basename(self.folder)})"
        self.signal = (
            f"validation accuracy after each epoch of the {SEARCH_HP}-epoch schedule (hp {SEARCH_HP}; "
            f"cifar10 via cifar10-valid); reported: test accuracy after hp {self.report_hp}, seed mean"
        )
        self.datasets = DATASETS
        meta = os.path.join(self.folder, "meta.pickle.pbz2")
        if not os.path.isfile(meta):
            raise AutohasError(f"{self.folder} has no meta.pickle.pbz2: not an official NATS-Bench folder")
        _check_readable(meta)

    def architectures_present(self) -> int:
        names = set(os.listdir(self.folder))
        return sum(f"{i:06d}.pickle.pbz2" in names for i in range(self.space.size))

    @cached_property
    def api(self):
        from nats_bench import create

        with contextlib.redirect_stdout(io.StringIO()):  # the API prints progress lines
            return create(self.folder, "tss" if self.space.name == "nats-tss" else "sss", fast_mode=True, verbose=False)

    @property
    def fidelities(self) -> tuple[int, ...]:
        return tuple(range(1, int(SEARCH_HP) + 1))

    def _index(self, arch: str) -> int:
        index = self.space.arch_to_index(arch)
        record = os.path.join(self.folder, f"{index:06d}.pickle.pbz2")
        if not os.path.isfile(record):
            raise AutohasError(f"architecture {index} ({arch}) has no record in {self.folder}")
        if index not in self._checked:
            _check_readable(record)
            self._checked.add(index)
        return index

    @cached_property
    def _checked(self) -> set[int]:
        return set()

    def _seed(self, index: int, name: str, hp: str, seed: int | None) -> int | bool:
        """The official API's `is_random`: False averages the seeds, an int names one run."""
        if seed is None:
            return False
        self.api._prepare_info(index)
        runs = sorted(self.api.arch2infos_dict[index][hp].get_dataset_seeds(name))
        return runs[seed % len(runs)]

    def evaluate(self, arch: str, dataset: str, epoch: int, seed: int | None = None) -> Evaluation:
        self.check_dataset(dataset)
        if epoch not in self.fidelities:
            raise AutohasError(f"epoch {epoch} is not in 1..{SEARCH_HP} of {self.source}")
        index = self._index(arch)
        name = "cifar10-valid" if dataset == "cifar10" else dataset
        info = self.api.get_more_info(
            index, name, iepoch=epoch - 1, hp=SEARCH_HP, is_random=self._seed(index, name, SEARCH_HP, seed)
        )
        return Evaluation(
            epoch=epoch,
            valid_acc=float(info["valid-accuracy"]),
            sim_seconds=float(info["train-all-time"] + info["valid-per-time"]),
        )

    def test_acc(self, arch: str, dataset: str) -> float:
        self.check_dataset(dataset)
        info = self.api.get_more_info(self._index(arch), dataset, hp=self.report_hp, is_random=False)
        return float(info["test-accuracy"])

    def cost(self, arch: str, dataset: str) -> Cost:
        self.check_dataset(dataset)
        info = self.api.get_cost_info(self._index(arch), dataset, hp=self.report_hp)
        return Cost(params=float(info["params"]), flops=float(info["flops"]), latency=float(info["latency"]))
