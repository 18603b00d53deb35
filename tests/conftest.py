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


@pytest.fixture(scope="session")
def official_everywhere(official_path, tmp_path_factory) -> Path:
    """The official tss layout with a record for every index: index i links to the real
    record of architecture 0, 11 or 284 (i mod 3), so searchers can roam the whole space
    over real 1..12-epoch curves."""
    root = tmp_path_factory.mktemp("nats")
    source = official_path / "NATS-tss-v1_0-3ffb9-simple"
    folder = root / source.name
    folder.mkdir()
    (folder / "meta.pickle.pbz2").symlink_to(source / "meta.pickle.pbz2")
    real = [source / f"{i:06d}.pickle.pbz2" for i in (0, 11, 284)]
    for index in range(15625):
        (folder / f"{index:06d}.pickle.pbz2").symlink_to(real[index % 3])
    return root
