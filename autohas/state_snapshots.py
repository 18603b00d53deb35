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

Both work on any pyarrow filesystem: a local run folder, or a run in object storage
(`--storage s3://...`), where the snapshot is uploaded before Tune's own asynchronous upload
of the same save starts, so a resume never needs a checkpoint that was pruned.
"""

from __future__ import annotations

import json
import pickle
import uuid
from typing import TYPE_CHECKING, Iterable

from ray.tune import Callback

if TYPE_CHECKING:
    import pyarrow.fs

SNAPSHOT_DIR = ".autohas-state"
CURRENT = "CURRENT"
# Tune's driver-side state files (experiment, search generator, searcher, callbacks).
STATE_PREFIXES = ("experiment_state-", "search_gen_state-", "searcher-state-", "callback-states-")


def _is_state_file(name: str) -> bool:
    return name.startswith(STATE_PREFIXES) and name.endswith((".json", ".pkl"))


def _local():
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def _entries(fs, folder: str) -> dict[str, bool]:
    """Names in `folder` of filesystem `fs` -> whether each is a folder ({} if it is missing)."""
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    return {info.base_name: info.type == pyarrow.fs.FileType.Directory for info in infos}


def _write(fs, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as handle:
        handle.write(data)


def _read(fs, path: str) -> bytes:
    with fs.open_input_stream(path) as handle:
        return handle.read()


def take_snapshot(staging_dir: str, run_dir: str, fs=None) -> str | None:
    """Copy the state files of the local `staging_dir` into a new snapshot of `run_dir` (a path
    in `fs`, default the local disk) and publish it by replacing one pointer file."""
    fs = fs or _local()
    local = _local()
    names = sorted(n for n, folder in _entries(local, staging_dir).items() if not folder and _is_state_file(n))
    if not names:
        return None
    root = f"{run_dir.rstrip('/')}/{SNAPSHOT_DIR}"
    snapshot = f"snap-{uuid.uuid4().hex}"
    fs.create_dir(f"{root}/{snapshot}")
    for name in names:
        _write(fs, f"{root}/{snapshot}/{name}", _read(local, f"{staging_dir}/{name}"))
    pointer = f"{root}/.{uuid.uuid4().hex}-{CURRENT}"
    _write(fs, pointer, snapshot.encode())
    fs.move(pointer, f"{root}/{CURRENT}")  # a rename on disk; one whole object in a store
    for other, folder in _entries(fs, root).items():
        if folder and other.startswith("snap-") and other != snapshot:
            fs.delete_dir(f"{root}/{other}")
    return f"{root}/{snapshot}"


def prune_checkpoints(latest: Iterable[str], fs=None) -> int:
    """For each trial's latest checkpoint folder (a path in `fs`), delete that trial's older ones.

    Tune names them checkpoint_000000, checkpoint_000001, ...: zero-padded, so name order is age.
    Returns how many folders were deleted.
    """
    fs = fs or _local()
    removed = 0
    for path in latest:
        folder, _, name = path.rstrip("/").rpartition("/")
        if not name.startswith("checkpoint_"):
            continue
        for other, is_folder in _entries(fs, folder).items():
            if is_folder and other.startswith("checkpoint_") and other < name:
                fs.delete_dir(f"{folder}/{other}")
                removed += 1
    return removed


def _loads(name: str, data: bytes) -> bool:
    """Whether a state file can be read back (Tune reads .json experiment state as JSON, the rest by pickle)."""
    try:
        json.loads(data) if name.startswith("experiment_state-") else pickle.loads(data)
        return True
    except Exception:
        return False


def _published(fs: pyarrow.fs.FileSystem, run_dir: str) -> str | None:
    """Path of the snapshot the pointer names (None before the first one is published)."""
    root = f"{run_dir.rstrip('/')}/{SNAPSHOT_DIR}"
    try:
        return f"{root}/{_read(fs, f'{root}/{CURRENT}').decode().strip()}"
    except OSError:  # FileNotFoundError included
        return None


def published_experiment_state(run_dir: str, fs: pyarrow.fs.FileSystem | None = None) -> str:
    """Text of the experiment state a resume starts from: in the published snapshot of `run_dir` (a
    path in `fs`, default the local disk), the newest experiment_state file, as Tune picks it ('' if
    none yet). A snapshot folder still being written, or one replaced, is not it."""
    fs = fs or _local()
    source = _published(fs, run_dir)
    if source is None:
        return ""
    try:
        names = [n for n, folder in _entries(fs, source).items()
                 if not folder and n.startswith("experiment_state-") and n.endswith(".json")]
        return _read(fs, f"{source}/{max(names)}").decode(errors="replace") if names else ""
    except OSError:  # replaced by a newer snapshot between the pointer's read and these reads
        return ""


def restore_snapshot(run_location: str) -> bool:
    """Put the newest complete snapshot's files back into a run (a folder or a URI); drop
    unreadable state files.

    Returns whether a snapshot was restored. Files of the snapshot replace their namesakes
    (possibly torn copies); any other state file that cannot be read is removed so that Tune
    does not pick it as the newest.
    """
    from autohas.storage import filesystem

    fs, run_dir = filesystem(run_location)
    source = _published(fs, run_dir)
    try:
        names = sorted(n for n, folder in _entries(fs, source).items() if not folder) if source else []
    except OSError:
        names = []
    for name in names:
        temporary = f"{run_dir}/.{uuid.uuid4().hex}-{name}"
        fs.copy_file(f"{source}/{name}", temporary)
        fs.move(temporary, f"{run_dir}/{name}")
    for name, folder in _entries(fs, run_dir).items():
        if not folder and _is_state_file(name) and name not in names and not _loads(name, _read(fs, f"{run_dir}/{name}")):
            fs.delete_file(f"{run_dir}/{name}")
    return bool(names)


class StateSnapshot(Callback):
    """Tune callback: after every experiment-state save, snapshot the saved files into the run
    (on disk or in object storage), then delete the trial checkpoints older than those the
    snapshot names. `before_snapshot` runs first (e.g. uploading the driver's results)."""

    def __init__(self, before_snapshot=None) -> None:
        self.before_snapshot = before_snapshot
        self._where: tuple | None = None  # (filesystem, staging folder, run path in the filesystem)
        self._trials: list = []

    def _learn_paths(self, trial) -> None:
        if self._where is not None:
            return
        storage = trial.storage
        self._where = (storage.storage_filesystem, storage.experiment_driver_staging_path, storage.experiment_fs_path)
        # Tune saved its state once before any trial (when the paths were not known yet) and
        # saves next only after its period (10 s or more): snapshot that first save now, so
        # that a run killed in its first seconds has a consistent state to resume from too.
        self._snapshot()

    def _snapshot(self) -> bool:
        fs, staging, run = self._where
        if self.before_snapshot is not None:
            self.before_snapshot()
        return bool(_entries(_local(), staging)) and take_snapshot(staging, run, fs) is not None

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        self._trials = trials
        if trials:
            self._learn_paths(trials[0])

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._learn_paths(trial)

    def get_state(self) -> None:
        # Tune calls this right after writing the experiment and searcher state to staging,
        # before it starts uploading them.
        if self._where and self._snapshot():
            prune_checkpoints((t.checkpoint.path for t in self._trials if t.checkpoint is not None), self._where[0])
        return None

    def __getstate__(self) -> dict:
        # pickled with the experiment; the paths and trials belong to one driver session
        return {"before_snapshot": self.before_snapshot, "_where": None, "_trials": []}
