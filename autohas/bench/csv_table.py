"""Reader of a NATS topology table in CSV (format of shared/data/nats-tss/nats-tss-table.csv).

The table has two fidelities: 12 epochs (H0) and 200 epochs (H1). The search signal is
the official one, the 12-epoch validation accuracy (`valid12`); a table without that
column falls back on the 12-epoch *test* accuracy (`acc12`), and says so in its signal
text. The 200-epoch column is a test accuracy (`acc200`): it is the reported accuracy,
never a signal (a budget reaching 200 epochs is refused). The cost of b epochs is
`time12 * b / 12`.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from autohas.bench.base import DATASETS, Benchmark, Cost, Evaluation
from autohas.errors import AutohasError
from autohas.spaces import Space

FIDELITIES = (12, 200)


class CsvTableBenchmark(Benchmark):
    seeded = False  # one number per architecture and column

    def __init__(self, path: str, space: Space):
        self.path = os.path.abspath(path)
        self.space = space
        self.source = f"CSV table {os.path.basename(self.path)}"
        self.test_fidelities = (200,)
        self._load()
        if all(self._has_valid.values()):
            self.signal = "validation accuracy after the 12-epoch schedule (valid12, the official signal); reported: acc200"
        else:
            lacking = ", ".join(d for d, has in self._has_valid.items() if not has)
            self.signal = (
                f"WARNING: the table has no valid12 column for {lacking}, so there the search signal is the 12-epoch "
                "TEST accuracy (acc12), not the official validation signal; reported: acc200"
            )

    def _load(self) -> None:
        try:
            with open(self.path, newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                rows = [row for row in reader if row]  # as csv.DictReader: empty lines are no rows
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise AutohasError(f"cannot read benchmark table {self.path}: {exc}") from None
        if "index" not in header or "arch" not in header:
            raise AutohasError(f"{self.path} is not a NATS table: it lacks the 'index' and 'arch' columns")
        self.datasets = tuple(d for d in DATASETS if all(f"{d}.{k}" in header for k in ("acc12", "acc200", "time12")))
        if not self.datasets:
            raise AutohasError(f"{self.path} has no complete '<dataset>.acc12/acc200/time12' columns")
        n = self.space.size
        self._has_valid = {d: f"{d}.valid12" in header for d in self.datasets}
        keys = {d: ("acc12", "acc200", "time12") + (("valid12",) if self._has_valid[d] else ()) for d in self.datasets}
        self._present = np.zeros(n, dtype=bool)
        self._columns = {(d, k): np.full(n, np.nan) for d in self.datasets for k in keys[d]}
        # the row of each architecture by its official string (what searchers and trainables pass): a
        # look-up without decoding the string
        self._row_of: dict[str, int] = {}
        if not self._load_columns(header, rows):  # something is wrong: find the first bad row, and say what
            self._load_rows(header, rows)

    def _load_columns(self, header: list[str], rows: list[list[str]]) -> bool:
        """Fill the columns from a well-formed table a column at a time (a table of 15,625 rows in a
        small fraction of the row-by-row time); False, leaving the work to `_load_rows`, at the first
        sign of a problem (a short or long row, a bad index or architecture, a repeated index, a
        value that is not a number)."""
        width = len(header)
        if any(len(row) != width for row in rows):
            return False
        position = {name: i for i, name in enumerate(header)}
        if len(position) != width:  # a repeated column name: left to the row-by-row reading
            return False
        if not rows:
            return True
        size = self.space.size
        columns = list(zip(*rows))
        try:
            indices = list(map(int, columns[position["index"]]))
            if len(set(indices)) != len(indices) or any(not 0 <= i < size for i in indices):
                return False
            archs = list(columns[position["arch"]])
            if archs != list(map(self.space.index_to_arch, indices)):
                return False  # (an official string decodes: only a differing one needs a closer look)
            for (d, k), column in self._columns.items():
                column[indices] = list(map(float, columns[position[f"{d}.{k}"]]))
        except (ValueError, AutohasError):
            return False
        self._present[indices] = True
        self._row_of = dict(zip(archs, indices))
        return True

    def _load_rows(self, header: list[str], rows: list[list[str]]) -> None:
        """Row by row, as csv.DictReader reads them: the first bad row is refused with its line."""
        for column in self._columns.values():
            column.fill(np.nan)
        self._present.fill(False)
        self._row_of.clear()
        for line, values in enumerate(rows, start=2):
            row = dict(zip(header, values))
            if len(values) < len(header):
                row.update((name, None) for name in header[len(values):])
            try:
                index = int(row["index"])
                official = self.space.index_to_arch(index)
            except (TypeError, ValueError, AutohasError):
                raise AutohasError(f"{self.path}:{line}: bad index {row['index']!r}") from None
            try:
                self.space.decode(row["arch"])
            except AutohasError:
                raise AutohasError(f"{self.path} is not a {self.space.name} table: row {line} holds {row['arch']!r}") from None
            if row["arch"] != official:
                raise AutohasError(
                    f"{self.path}:{line}: arch {row['arch']!r} is not {self.space.name} index {index} ({official})"
                )
            self._present[index] = True
            self._row_of[official] = index
            for (d, k), column in self._columns.items():
                try:
                    column[index] = float(row[f"{d}.{k}"])
                except (TypeError, ValueError):
                    raise AutohasError(f"{self.path}:{line}: {d}.{k} is not a number") from None

    @property
    def fidelities(self) -> tuple[int, ...]:
        return FIDELITIES

    def architectures_present(self) -> int:
        return int(self._present.sum())

    def total_cost(self, dataset: str, epoch: int) -> float | None:
        self.check_dataset(dataset)
        return float(np.nansum(self._columns[(dataset, "time12")]) * epoch / 12)

    def _row(self, arch: str) -> int:
        index = self._row_of.get(arch)
        if index is not None:
            return index
        index = self.space.arch_to_index(arch)
        if not self._present[index]:
            raise AutohasError(f"architecture {index} ({arch}) has no row in {self.path}")
        return index

    def evaluate(self, arch: str, dataset: str, epoch: int, seed: int | None = None) -> Evaluation:
        self.check_dataset(dataset)
        if epoch not in FIDELITIES:
            raise AutohasError(f"epoch {epoch} is not a fidelity of {self.source} ({FIDELITIES})")
        if epoch in self.test_fidelities:
            raise AutohasError(f"{self.source} has only a test accuracy after {epoch} epochs: it is never a search signal")
        i = self._row(arch)
        acc = self._columns[(dataset, "valid12" if self._has_valid[dataset] else "acc12")][i]
        return Evaluation(epoch=epoch, valid_acc=float(acc), sim_seconds=float(self._columns[(dataset, "time12")][i] * epoch / 12))

    def test_acc(self, arch: str, dataset: str) -> float:
        self.check_dataset(dataset)
        return float(self._columns[(dataset, "acc200")][self._row(arch)])

    def cost(self, arch: str, dataset: str) -> Cost:
        self.check_dataset(dataset)
        self._row(arch)
        return Cost(params=None, flops=None, latency=None)
