"""Consistent copies of Tune's experiment state, so that a run killed at any instant resumes.

Tune writes its experiment state, searcher state and callback state into a local staging
folder (each file atomically), then copies that folder into the run directory in the
background. A SIGKILL during that copy leaves a truncated file (seen: an empty
`search_gen_state-*.json`, and `Tuner.restore` fails) or a mix of old and new files. The
snapshot callback copies the staged files as one set right after Tune saves them (Tune calls
`get_state` of callbacks at the end of each save) and publishes the set with one atomic
rename; `restore_snapshot` puts the newest complete set back before a resume.

Trial checkpoints have the same hazard: Tune deletes a trial's older checkpoint as soon as a
newer one registers (`num_to_keep`), while the saved experiment state still names the older
one until its next save; a kill in between leaves a state whose checkpoint is gone (seen:
`FileNotFoundError` on resume). So runs keep every checkpoint in Tune (`num_to_keep=None`)
and the snapshot callback deletes a trial's older checkpoints only once a snapshot naming
a newer one is published (`prune_checkpoints`).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import uuid
from typing import Iterable

from ray.tune import Callback

SNAPSHOT_DIR = ".autohas-state"
CURRENT = "CURRENT"
# Tune's driver-side state files (experiment, search generator, searcher, callbacks).
STATE_PREFIXES = ("experiment_state-", "search_gen_state-", "searcher-state-", "callback-states-")


def _is_state_file(name: str) -> bool:
    return name.startswith(STATE_PREFIXES) and name.endswith((".json", ".pkl"))


def take_snapshot(staging_dir: str, run_dir: str) -> str | None:
    """Copy the state files of `staging_dir` into a new snapshot of `run_dir`; publish it atomically."""
    names = [n for n in sorted(os.listdir(staging_dir)) if _is_state_file(n)]
    if not names:
        return None
    root = os.path.join(run_dir, SNAPSHOT_DIR)
    os.makedirs(root, exist_ok=True)
    target = tempfile.mkdtemp(prefix="snap-", dir=root)
    for name in names:
        shutil.copyfile(os.path.join(staging_dir, name), os.path.join(target, name))
    pointer = os.path.join(root, f".{uuid.uuid4().hex}-{CURRENT}")
    with open(pointer, "w") as handle:
        handle.write(os.path.basename(target))
    os.replace(pointer, os.path.join(root, CURRENT))
    for other in os.listdir(root):
        if other.startswith("snap-") and other != os.path.basename(target):
            shutil.rmtree(os.path.join(root, other), ignore_errors=True)
    return target


def prune_checkpoints(latest: Iterable[str]) -> int:
    """For each trial's latest checkpoint folder (a local path), delete that trial's older ones.

    Tune names them checkpoint_000000, checkpoint_000001, ...: zero-padded, so name order is age.
    Returns how many folders were deleted.
    """
    removed = 0
    for path in latest:
        folder, name = os.path.split(path.rstrip(os.sep))
        if not name.startswith("checkpoint_") or not os.path.isdir(folder):
            continue
        for other in os.listdir(folder):
            if other.startswith("checkpoint_") and other < name:
                shutil.rmtree(os.path.join(folder, other), ignore_errors=True)
                removed += 1
    return removed


def _loads(path: str) -> bool:
    """Whether a state file can be read back (Tune reads .json experiment state as JSON, the rest by pickle)."""
    try:
        with open(path, "rb") as handle:
            if os.path.basename(path).startswith("experiment_state-"):
                json.load(handle)
            else:
                pickle.load(handle)
        return True
    except Exception:
        return False


def restore_snapshot(run_dir: str) -> bool:
    """Put the newest complete snapshot's files back into `run_dir`; drop unreadable state files.

    Returns whether a snapshot was restored. Files of the snapshot replace their namesakes
    (possibly torn copies); any other state file that cannot be read is removed so that Tune
    does not pick it as the newest.
    """
    root = os.path.join(run_dir, SNAPSHOT_DIR)
    try:
        with open(os.path.join(root, CURRENT)) as handle:
            source = os.path.join(root, handle.read().strip())
        names = sorted(os.listdir(source))
    except OSError:
        names, source = [], ""
    for name in names:
        temporary = os.path.join(run_dir, f".{uuid.uuid4().hex}-{name}")
        shutil.copyfile(os.path.join(source, name), temporary)
        os.replace(temporary, os.path.join(run_dir, name))
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if _is_state_file(name) and name not in names and not _loads(path):
            os.remove(path)
    return bool(names)


class StateSnapshot(Callback):
    """Tune callback: after every experiment-state save, snapshot the saved files into the run directory,
    then delete the trial checkpoints older than those the snapshot names (local runs)."""

    def __init__(self) -> None:
        self._paths: tuple[str, str] | None = None  # (staging folder, run directory)
        self._trials: list = []

    def _learn_paths(self, trial) -> None:
        storage = trial.storage
        # object stores write whole objects, only a local run directory can be torn
        if storage.storage_filesystem.type_name == "local" and self._paths is None:
            self._paths = (storage.experiment_driver_staging_path, storage.experiment_fs_path)
            # Tune saved its state once before any trial (when the paths were not known yet) and
            # saves next only after its period (10 s or more): snapshot that first save now, so
            # that a run killed in its first seconds has a consistent state to resume from too.
            if os.path.isdir(self._paths[0]):
                take_snapshot(*self._paths)

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        self._trials = trials
        if trials and self._paths is None:
            self._learn_paths(trials[0])

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._learn_paths(trial)

    def get_state(self) -> None:
        # Tune calls this right after writing the experiment and searcher state to staging.
        if self._paths and os.path.isdir(self._paths[0]) and take_snapshot(*self._paths):
            prune_checkpoints(t.checkpoint.path for t in self._trials if t.checkpoint is not None)
        return None

    def __getstate__(self) -> dict:
        # pickled with the experiment; the paths and trials belong to one driver session
        return {"_paths": None, "_trials": []}
