"""How additive is measured latency? The per-operation model of autohas.latency fitted to every device
of a latency table over nats-tss, and the time one device's column takes to read.

    python benchmarks/latency_model.py                 # ../shared/data/nats-tss/nats-tss-latency.csv
    python benchmarks/latency_model.py --table my-latency.csv

Per device: the in-sample R^2, the held-out R^2 and mean absolute % error of a fixed-seed 5-fold
cross-validation (each cell predicted by a model fitted without it), the in-sample median absolute
% error, and how many cells measure under 1 ms (near-empty graphs some compilers prune: they make
the mean % error large while R^2 stays high). A weight-sharing search's latency loss is only as
good as this fit on its device. Then the reading time: the first column read in this process
(which also builds the space's 15,625 official strings), and the median over the other columns
(each read once: nothing is cached between them); pandas' import is timed apart.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from common import ROOT

DEFAULT_TABLE = os.path.join(ROOT, "..", "shared", "data", "nats-tss", "nats-tss-latency.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=DEFAULT_TABLE, help="a latency table (default: the shared nats-tss one)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.table):
        print(f"latency table {args.table} not found: pass --table", file=sys.stderr)
        return 2

    import numpy as np

    from autohas.errors import AutohasError
    from autohas.latency import device_names, fit_additive_model, read_latency
    from autohas.spaces import get_space

    space = get_space("nats-tss")
    start = time.perf_counter()
    import pandas  # noqa: F401  (timed apart: a simulate worker has it already, through Ray Tune)

    pandas_s = time.perf_counter() - start
    try:
        devices = device_names(args.table)
        reads, latencies = [], {}
        for device in devices:
            start = time.perf_counter()
            latencies[device] = read_latency(args.table, device, space)
            reads.append(time.perf_counter() - start)
        rows, fit_s = [], []
        for device in devices:
            start = time.perf_counter()
            model = fit_additive_model(space, latencies[device])
            fit_s.append(time.perf_counter() - start)
            y = latencies[device]
            ape = np.abs(model.predict(np.arange(space.size)) - y) / y * 100
            rows.append((device, model.r2, model.heldout_r2, model.heldout_mape, float(np.median(ape)), int((y < 1).sum())))
    except AutohasError as exc:
        print(f"latency_model: {exc}", file=sys.stderr)
        return 2

    print(f"additive per-operation latency model on nats-tss ({space.size} cells), {os.path.basename(args.table)}")
    print(f"{'device':<16} {'R^2':>7} {'held-out R^2':>13} {'held-out MAPE %':>16} {'median APE %':>13} {'cells < 1 ms':>13}")
    for device, r2, heldout, mape, median, small in rows:
        print(f"{device:<16} {r2:>7.4f} {heldout:>13.4f} {mape:>16.2f} {median:>13.2f} {small:>13d}")
    heldouts = [row[2] for row in rows]
    print(f"held-out R^2: median {statistics.median(heldouts):.4f}, min {min(heldouts):.4f} "
          f"({rows[heldouts.index(min(heldouts))][0]}); >= 0.95 on {sum(h >= 0.95 for h in heldouts)} of {len(rows)} devices")
    print(f"reading one device column: first {reads[0] * 1e3:.0f} ms (with the official strings), then median "
          f"{statistics.median(reads[1:] or reads) * 1e3:.0f} ms per column; pandas import {pandas_s * 1e3:.0f} ms; "
          f"one fit incl. 5-fold CV: median {statistics.median(fit_s) * 1e3:.0f} ms (first {fit_s[0] * 1e3:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
