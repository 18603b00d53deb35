"""Shared fixtures: the reference data beside the checkout, and one small Ray per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TABLE = SHARED_DATA / "nats-tss" / "nats-tss-table.csv"
OFFICIAL = SHARED_DATA / "nats-official-sample"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def table_path() -> Path:
    return _need(TABLE)


@pytest.fixture(scope="session")
def official_path() -> Path:
    return _need(OFFICIAL)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
