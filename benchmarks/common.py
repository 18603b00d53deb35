"""What the measurement scripts share: where the reference table is, and a quiet local Ray."""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
DEFAULT_TABLE = os.path.join(ROOT, "..", "shared", "data", "nats-tss", "nats-tss-table.csv")


def require(path: str) -> str:
    """The absolute path of an existing benchmark, or exit 2 with one line."""
    if not os.path.exists(path):
        print(f"benchmark {path} not found: pass --benchmark", file=sys.stderr)
        sys.exit(2)
    return os.path.abspath(path)


def start_ray() -> float:
    """Start a local Ray on this machine's CPUs; the seconds it took."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return time.perf_counter() - start
