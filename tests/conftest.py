"""Shared fixtures: the reference data beside the checkout, and one small Ray per session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
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


_ONE_PROCESS_PROBE = (
    "import contextlib, io, json, sys\n"
    "from autohas.tune import main\n"
    "out = []\n"
    "for argv in json.loads(sys.argv[1]):\n"
    "    err = io.StringIO()\n"
    "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
    "        rc = main(argv)\n"
    "    out.append([rc, err.getvalue()])\n"
    "ray = sys.modules.get('ray')\n"
    "print(json.dumps({'results': out, 'ray_started': bool(ray and ray.is_initialized())}))\n"
)


def main_in_one_process(argvs: list[list[str]], env: dict, timeout: int) -> dict:
    """Run `autohas.tune.main` on each argv in one fresh process: {"results": [[rc, stderr], ...],
    "ray_started": whether Ray was ever started} (bad inputs must never start it)."""
    done = subprocess.run([sys.executable, "-c", _ONE_PROCESS_PROBE, json.dumps(argvs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_refused_before_ray(cases: list[tuple[list[str], str]], never_made: Path, timeout: int = 120) -> None:
    """Each (argv, phrase) of `cases`, run in one fresh process, ends with exit code 2 and one stderr line
    holding the phrase; Ray never started and the folder `never_made` was never made."""
    answer = main_in_one_process([argv for argv, _ in cases], {**os.environ, "AUTOHAS_BENCHMARK": ""}, timeout=timeout)
    for (argv, phrase), (rc, err) in zip(cases, answer["results"]):
        assert rc == 2, (argv, err)
        assert phrase in err and len(err.strip().splitlines()) == 1, (phrase, err)
    assert not answer["ray_started"]
    assert not never_made.exists()
