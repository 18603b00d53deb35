"""Where experiments live: a local folder, or a URI that Ray Tune's storage accepts (s3://, gs://, ...).

On a cluster every node must reach the storage: Tune writes each run's state there and every
trial uploads its own checkpoints there, from whichever node it runs on. So with a URI, Tune
is given the URI itself. The driver's own files (experiment.yaml, protocol.json,
results.jsonl, run.json, markers, the report) are written to a local working copy of the
experiment and uploaded: after every Tune state save (so that the uploaded results.jsonl is
never older than the uploaded state it belongs to), after every run and at the end. A
resume, possibly from another machine, first downloads them again.

A URI keeps its query for the filesystem's options, e.g.
`s3://bucket/autohas?endpoint_override=http://127.0.0.1:9000` for an S3-compatible server.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from autohas.errors import AutohasError

# Driver files live at most this deep in an experiment (name/file, name/run/file); deeper
# are Tune's trial folders and checkpoints, which the driver never needs locally.
_DRIVER_DEPTH = 2


def is_uri(location: str) -> bool:
    """Whether `location` names remote storage (file:// URIs are local folders)."""
    scheme = urlsplit(location).scheme
    return "://" in location and scheme not in ("", "file")


def join(location: str, *parts: str) -> str:
    """`location`/parts for a folder or a URI (whose query stays at the end)."""
    if not is_uri(location):
        return os.path.join(location, *parts)
    split = urlsplit(location)
    path = "/".join([split.path.rstrip("/")] + [p.strip("/") for p in parts])
    return urlunsplit((split.scheme, split.netloc, path, split.query, ""))


def redact(location: str) -> str:
    """A URI without its query (which may hold credentials), for printing and records."""
    if not is_uri(location):
        return location
    split = urlsplit(location)
    return urlunsplit((split.scheme, split.netloc, split.path, "", ""))


def filesystem(location: str):
    """(pyarrow filesystem, path inside it) of a folder or URI; bad URIs are one clear line."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), os.path.abspath(location.removeprefix("file://"))
    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except Exception as exc:  # pyarrow raises ValueError / OSError / ArrowInvalid
        raise AutohasError(f"cannot use storage {location}: {str(exc).splitlines()[0]}") from None


def _mirror_root(uri: str) -> str:
    """The local working copy of a remote storage: one folder per URI (query excluded)."""
    split = urlsplit(uri)
    key = hashlib.sha1(f"{split.scheme}://{split.netloc}{split.path}".encode()).hexdigest()[:16]
    base = os.environ.get("AUTOHAS_MIRROR") or os.path.join(os.path.expanduser("~"), ".cache", "autohas", "storage")
    return os.path.join(base, key)


class Storage:
    """An experiment store: the local folder the driver writes, and the location Tune writes."""

    def __init__(self, location: str):
        self.remote = is_uri(location)
        self.location = location if self.remote else os.path.abspath(location.removeprefix("file://"))
        self.local_root = _mirror_root(location) if self.remote else self.location
        self._pushed: dict[str, tuple[int, int]] = {}  # uploaded file -> (mtime, size) it had
        if self.remote:
            self.fs, self.base = filesystem(location)

    def local_dir(self, name: str) -> str:
        return os.path.join(self.local_root, name)

    def describe(self, name: str, *parts: str) -> str:
        """Where a user finds a file of the experiment (the URI, without its query, for remote storage)."""
        return redact(join(self.location, name, *parts)) if self.remote else os.path.join(self.local_dir(name), *parts)

    # -- remote only ---------------------------------------------------------------------
    def _remote(self, name: str, relative: str = "") -> str:
        return "/".join(p for p in (self.base.rstrip("/"), name, relative) if p)

    def pull(self, name: str) -> None:
        """Replace the local copy of experiment `name` by the driver files in the storage."""
        if not self.remote:
            return
        import pyarrow.fs

        local = self.local_dir(name)
        shutil.rmtree(local, ignore_errors=True)
        os.makedirs(local, exist_ok=True)
        root = self._remote(name)
        try:
            infos = self.fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise AutohasError(f"cannot read storage {self.location}: {str(exc).splitlines()[0]}") from None
        pulled = {}
        for info in infos:
            relative = info.path[len(root):].strip("/")
            if info.type != pyarrow.fs.FileType.File or relative.count("/") >= _DRIVER_DEPTH:
                continue
            target = os.path.join(local, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pyarrow.fs.copy_files(info.path, target, source_filesystem=self.fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
            stat = os.stat(target)
            pulled[relative] = (stat.st_mtime_ns, stat.st_size)  # already there: not pushed back
        self._pushed = pulled

    def push(self, name: str) -> None:
        """Upload the local copy's files that changed since the last push (whole objects)."""
        if not self.remote:
            return
        import pyarrow.fs

        local = self.local_dir(name)
        pushed = self._pushed
        for folder, _, files in os.walk(local):
            for file in files:
                path = os.path.join(folder, file)
                relative = os.path.relpath(path, local).replace(os.sep, "/")
                stat = os.stat(path)
                if pushed.get(relative) == (stat.st_mtime_ns, stat.st_size):
                    continue
                try:
                    pyarrow.fs.copy_files(path, self._remote(name, relative), source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=self.fs)
                except OSError as exc:
                    raise AutohasError(f"cannot write storage {self.location}: {str(exc).splitlines()[0]}") from None
                pushed[relative] = (stat.st_mtime_ns, stat.st_size)
        self._pushed = pushed

    def delete(self, name: str) -> None:
        """Delete experiment `name` in the storage and its local copy (--overwrite)."""
        shutil.rmtree(self.local_dir(name), ignore_errors=True)
        if self.remote:
            import pyarrow.fs

            if self.fs.get_file_info(self._remote(name)).type != pyarrow.fs.FileType.NotFound:
                self.fs.delete_dir(self._remote(name))
            self._pushed = {}


_OPEN: dict[str, Storage] = {}


def open_storage(location: str) -> Storage:
    """The Storage of `location`, one per process (it remembers what it uploaded)."""
    if location not in _OPEN:
        _OPEN[location] = Storage(location)
    return _OPEN[location]


def push_experiment(location: str, name: str) -> None:
    """Upload experiment `name`'s changed driver files to remote storage `location` (picklable as a partial)."""
    open_storage(location).push(name)


@dataclass(frozen=True)
class LocalCopyFile(os.PathLike):
    """A file of a remote experiment's local copy, found on whichever machine opens it.

    Tune pickles its callbacks and searchers with the experiment; a driver that resumes it
    on another machine (a new head node) must write to its own local copy, not to a path of
    the machine that started it.
    """

    uri: str
    name: str
    relative: str

    def __fspath__(self) -> str:
        return os.path.join(open_storage(self.uri).local_dir(self.name), self.relative)
