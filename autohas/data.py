"""Datasets for real training runs: the NATS-Bench splits as uint8 tensors, cached on disk.

Why this shape: a trial must not spend its budget decoding images or running
per-sample Python. Every dataset is decoded once into ``N x 3 x H x W`` uint8
arrays, split by fixed rules (NATS-Bench's where they exist, see METHODS.md 8.2),
and stored in one ``.npz`` per dataset and source; later loads only read that file.
``Batches`` then keeps a split on the training device and builds every batch by
tensor indexing, with random crop and flip done on the whole batch at once.

Every seeded split uses ``numpy.random.RandomState(SPLIT_SEED)``, whose stream NumPy
keeps frozen across versions, so the splits do not move when packages are upgraded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import math
import os
import pickle
import socket
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from autohas.errors import AutohasError

log = logging.getLogger(__name__)

TRAIN_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120", "fashion-mnist", "digits", "imagefolder")

_SPLIT_NOTES = {
    "cifar10": "cifar10-valid: train 25k / valid 25k of the training images, test = the 10k test images",
    "cifar100": "train = the 50k training images; valid / test = seeded halves of the 10k test images",
    "ImageNet16-120": "train = all training images of classes 1-120; valid / test = seeded halves of their val images",
    "fashion-mnist": "train = the 60k training images; valid / test = seeded halves of the 10k test images",
    "digits": "scikit-learn's 1,797 8x8 digits upsampled to 16x16; stratified train 898 / valid 449 / test 450",
    "imagefolder": "train / valid = seeded per-class halves of train/, test = test/",
}


def split_note(name: str) -> str:
    """One line on how a dataset is split, for the report's protocol note."""
    return _SPLIT_NOTES.get(name, "")


SPLIT_SEED = 0
"""Seed of every seeded split (class halves, test halves, the digits split)."""

_CACHE_FORMAT = 1  # bump when a split rule or the file layout changes: old cache files are then ignored
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")
_ARCHIVE_HINT = "a folder or .tar.gz holding train/<class>/*.jpg|png and test/<class>/..."
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs the original idx files."""
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IMAGENET16_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11)) + ("val_data",)

# NATS-Bench's normalisation constants, in 0..1 units.
_CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
_CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
_CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
_CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)
_IMAGENET16_MEAN = (122.68 / 255, 116.66 / 255, 104.01 / 255)
_IMAGENET16_STD = (63.22 / 255, 61.26 / 255, 65.09 / 255)


@dataclass(frozen=True)
class Split:
    """One split: uint8 images ``N x 3 x H x W`` (grayscale replicated) and int64 labels ``N``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Split images must be uint8 N x 3 x H x W, got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"Split labels must be int64 of length {images.shape[0]}, got {labels.dtype} {tuple(labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DataSpec:
    """What a model and the batcher need to know: classes, size, normalisation, augmentation."""

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad: int
    flip: bool


@dataclass(frozen=True)
class Splits:
    """A dataset as train / valid / test, with its spec."""

    spec: DataSpec
    train: Split
    valid: Split
    test: Split


# ---------------------------------------------------------------------------------------------
# Sources: where a dataset comes from, and the key that names its cache file.


@dataclass(frozen=True)
class _Source:
    kind: str  # "folder", "archive", "torchvision", "idx", "imagenet16", "sklearn"
    path: Path | None
    key: str  # identifies the source's content, so two sources never share a cache file
    download: bool = False


def default_cache_dir() -> Path:
    """``$AUTOHAS_DATA_CACHE``, else ``~/.cache/autohas/data``."""
    env = os.environ.get("AUTOHAS_DATA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autohas" / "data"


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _is_archive(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def _folder_root(path: Path) -> Path | None:
    """The folder holding ``train/`` and ``test/``: ``path`` itself or its only such subfolder
    (an unpacked archive usually adds one level, e.g. ``cifar10-jpeg/``)."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        return path
    found = [sub for sub in sorted(path.iterdir()) if sub.is_dir() and (sub / "train").is_dir() and (sub / "test").is_dir()]
    return found[0] if len(found) == 1 else None


def _image_folder_source(name: str, path: Path) -> _Source | None:
    """A folder or archive source, or None when ``path`` is neither."""
    if path.is_file():
        if not _is_archive(path):
            raise AutohasError(f"{name}: {path} is a file but not a tar archive; --data-dir must be {_ARCHIVE_HINT}")
        return _Source("archive", path, "archive:" + _file_stamp(path))
    if not path.is_dir():
        return None
    root = _folder_root(path)
    if root is None:
        return None
    digest = hashlib.sha256()
    for part in ("train", "test"):
        for file in sorted((root / part).rglob("*")):
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return _Source("folder", root, f"folder:{root.resolve()}:{digest.hexdigest()}")


def _idx_files(folder: Path) -> list[Path] | None:
    """The four Fashion-MNIST idx files in ``folder`` (plain or ``.gz``), or None if any is missing."""
    files = []
    for stem in _FASHION_FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                files.append(candidate)
                break
        else:
            return None
    return files


def _resolve(name: str, data_dir: str | None, cache: Path, download: bool) -> _Source:
    path = Path(data_dir).expanduser() if data_dir else None
    if path is not None and not path.exists() and name in ("ImageNet16-120", "imagefolder", "fashion-mnist"):
        raise AutohasError(f"{name}: --data-dir {path} does not exist")
    if name == "digits":
        import sklearn

        return _Source("sklearn", None, f"sklearn:{sklearn.__version__}")
    if name == "imagefolder":
        if path is None:
            raise AutohasError(f"imagefolder needs --data-dir: {_ARCHIVE_HINT}")
        source = _image_folder_source(name, path)
        if source is None:
            raise AutohasError(f"imagefolder: {path} has no train/ and test/ folders; --data-dir must be {_ARCHIVE_HINT}")
        return source
    if name in ("cifar10", "cifar100"):
        if path is not None:
            source = _image_folder_source(name, path)
            if source is not None:
                return source
        root = path if path is not None else cache / "downloads"
        return _Source("torchvision", root, f"torchvision:{root.resolve()}", download)
    if name == "ImageNet16-120":
        if path is None:
            raise AutohasError(
                "ImageNet16-120 cannot be downloaded automatically; pass --data-dir with the official "
                "files train_data_batch_1..10 and val_data"
            )
        folder = path if (path / "val_data").exists() or not (path / "ImageNet16").is_dir() else path / "ImageNet16"
        missing = [file for file in _IMAGENET16_FILES if not (folder / file).is_file()]
        if missing:
            raise AutohasError(
                f"ImageNet16-120: {folder} lacks {', '.join(missing)}; pass --data-dir with the official "
                "downsampled files train_data_batch_1..10 and val_data"
            )
        key = "imagenet16:" + ";".join(_file_stamp(folder / file) for file in _IMAGENET16_FILES)
        return _Source("imagenet16", folder, key)
    if name == "fashion-mnist":
        if path is not None:
            for folder in (path, path / "FashionMNIST" / "raw"):
                files = _idx_files(folder)
                if files:
                    return _Source("idx", folder, "idx:" + ";".join(_file_stamp(file) for file in files))
            raise AutohasError(
                f"fashion-mnist: {path} lacks the idx files {', '.join(_FASHION_FILES)} (plain or .gz); "
                f"pass --data-dir with them, or install the Debian package dataset-fashion-mnist"
            )
        files = _idx_files(FASHION_MNIST_SYSTEM_DIR)
        if files:
            return _Source("idx", FASHION_MNIST_SYSTEM_DIR, "idx:" + ";".join(_file_stamp(file) for file in files))
        root = cache / "downloads"
        return _Source("torchvision", root, f"torchvision:{root.resolve()}", download)
    raise AutohasError(f"unknown dataset {name!r}; choose one of {', '.join(TRAIN_DATASETS)}")


# ---------------------------------------------------------------------------------------------
# Split rules.


def _halves(n: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random half (``n // 2`` items) and the rest, each in original order."""
    order = np.random.RandomState(SPLIT_SEED + salt).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _class_halves(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded random half (the larger one when odd) and the rest: a folder source
    is stored class by class, so "the first half" would hold only the first classes."""
    rng = np.random.RandomState(SPLIT_SEED)
    first, second = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = len(members) - len(members) // 2
        first.append(members[:cut])
        second.append(members[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _split(images: np.ndarray, labels: np.ndarray, index: np.ndarray | None = None) -> Split:
    if index is not None:
        images, labels = images[index], labels[index]
    images = np.ascontiguousarray(images, dtype=np.uint8)
    return Split(torch.from_numpy(images), torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std (0..1 units) of a uint8 ``N x 3 x H x W`` array, in chunks to bound memory."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), 1024):
        chunk = images[start : start + 1024].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std = np.maximum(std, 1.0)  # a constant channel would otherwise divide by zero
    return tuple(float(v) / 255 for v in mean), tuple(float(v) / 255 for v in std)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Image folders and archives.


def _image_parts(relative: str) -> tuple[str, str] | None:
    """``(part, class)`` for ``.../train|test/<class>/<file>`` image paths, else None (README, ._ files)."""
    parts = relative.split("/")
    if len(parts) < 3 or parts[-3] not in ("train", "test"):
        return None
    base = parts[-1]
    if base.startswith(".") or not base.lower().endswith(_IMAGE_SUFFIXES):
        return None
    return parts[-3], parts[-2]


def _decode(blobs: list[bytes], names: list[str]) -> np.ndarray:
    """Decode encoded images with PIL into one uint8 ``N x 3 x H x W`` array (all one size, RGB).

    Single-threaded on purpose: for small images the cost is PIL's per-call Python overhead,
    which holds the GIL, so threads measured no faster; worker processes would each import torch.
    """
    from PIL import Image, UnidentifiedImageError

    out: np.ndarray | None = None
    for i, (blob, name) in enumerate(zip(blobs, names)):
        try:
            with Image.open(io.BytesIO(blob)) as image:
                if image.mode != "RGB":
                    image = image.convert("RGB")
                pixels = np.asarray(image)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise AutohasError(f"cannot decode image {name}: {exc}") from exc
        if out is None:
            if pixels.shape[0] != pixels.shape[1]:  # the NATS networks and their FLOP counts take square images
                raise AutohasError(f"image {name} is {pixels.shape[1]}x{pixels.shape[0]}; images must be square")
            out = np.empty((len(blobs),) + pixels.shape, dtype=np.uint8)
        elif pixels.shape != out.shape[1:]:
            raise AutohasError(
                f"image {name} is {pixels.shape[1]}x{pixels.shape[0]} but the first image was "
                f"{out.shape[2]}x{out.shape[1]}; all images of a dataset must have one size"
            )
        out[i] = pixels
    if out is None:
        return np.empty((0, 3, 0, 0), dtype=np.uint8)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _read_image_folder(name: str, source: _Source) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Train and test images and labels of a folder or archive source; labels follow sorted class names."""
    assert source.path is not None
    entries: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    prefixes: set[str] = set()
    if source.kind == "archive":
        try:
            with tarfile.open(source.path, "r|*") as archive:  # streaming: memory holds only the encoded images
                for member in archive:
                    found = _image_parts(member.name) if member.isfile() else None
                    if found is None:
                        continue
                    handle = archive.extractfile(member)
                    assert handle is not None
                    entries[found[0]].append((found[1], member.name, handle.read()))
                    prefixes.add(member.name.rsplit("/", 3)[0] if member.name.count("/") >= 3 else "")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise AutohasError(f"{name}: cannot read archive {source.path}: {exc}") from exc
    else:
        for part in ("train", "test"):
            for folder in sorted((source.path / part).iterdir()):
                if not folder.is_dir():
                    continue
                for file in sorted(folder.iterdir()):
                    if file.is_file() and _image_parts(f"{part}/{folder.name}/{file.name}") is not None:
                        entries[part].append((folder.name, str(file), file.read_bytes()))
    if len(prefixes) > 1:
        raise AutohasError(f"{name}: {source.path} holds several train/test trees ({', '.join(sorted(prefixes))}); keep one")
    classes = sorted({cls for cls, _, _ in entries["train"]})
    where = f"{source.path}"
    if not classes:
        raise AutohasError(f"{name}: no images under train/<class>/ in {where}; --data-dir must be {_ARCHIVE_HINT}")
    if not entries["test"]:
        raise AutohasError(f"{name}: no images under test/<class>/ in {where}; --data-dir must be {_ARCHIVE_HINT}")
    stray = sorted({cls for cls, _, _ in entries["test"]} - set(classes))
    if stray:
        raise AutohasError(f"{name}: test classes {', '.join(stray)} in {where} have no train/ folder with images")
    label_of = {cls: i for i, cls in enumerate(classes)}
    arrays = []
    for part in ("train", "test"):
        ordered = sorted(entries[part], key=lambda entry: (label_of[entry[0]], entry[1]))
        log.info("decoding %d %s images of %s from %s", len(ordered), part, name, where)
        images = _decode([blob for _, _, blob in ordered], [file for _, file, _ in ordered])
        labels = np.array([label_of[cls] for cls, _, _ in ordered], dtype=np.int64)
        arrays += [images, labels]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise AutohasError(f"{name}: train images are {arrays[0].shape[1:]} but test images {arrays[2].shape[1:]} in {where}")
    return arrays[0], arrays[1], arrays[2], arrays[3], classes


# ---------------------------------------------------------------------------------------------
# Per-dataset builders.


def _torchvision(name: str, source: _Source, train: bool) -> Any:
    """A torchvision dataset object, downloading only when allowed and the host answers."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "fashion-mnist": datasets.FashionMNIST}[name]
    root = str(source.path)
    try:
        return cls(root, train=train, download=False)
    except RuntimeError:
        pass
    if name == "fashion-mnist":
        hint = "pass --data-dir with the four idx files, or install the Debian package dataset-fashion-mnist"
    else:
        hint = f"pass --data-dir ({_ARCHIVE_HINT}, or a folder holding torchvision's copy)"
    if not source.download:
        raise AutohasError(f"{name}: not found in {root} and download is off; {hint}")
    url = getattr(cls, "url", None) or cls.mirrors[0]
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:  # torchvision's download has no timeout: an offline machine would wait forever
        socket.create_connection((host, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=5).close()
    except OSError as exc:
        raise AutohasError(f"{name}: not found in {root} and {host} cannot be reached ({exc}); {hint}") from exc
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return cls(root, train=train, download=True)
    except Exception as exc:  # network and archive errors come in many types
        raise AutohasError(f"{name}: download into {root} failed ({exc}); {hint}") from exc


def _build_cifar(name: str, source: _Source) -> Splits:
    classes = 10 if name == "cifar10" else 100
    if source.kind == "torchvision":
        train_set, test_set = _torchvision(name, source, True), _torchvision(name, source, False)
        train_x = np.ascontiguousarray(train_set.data.transpose(0, 3, 1, 2))
        test_x = np.ascontiguousarray(test_set.data.transpose(0, 3, 1, 2))
        train_y = np.asarray(train_set.targets, dtype=np.int64)
        test_y = np.asarray(test_set.targets, dtype=np.int64)
        first, second = np.arange(len(train_y) // 2), np.arange(len(train_y) // 2, len(train_y))
    else:
        train_x, train_y, test_x, test_y, found = _read_image_folder(name, source)
        if len(found) != classes:
            raise AutohasError(
                f"{name}: {source.path} has {len(found)} class folders under train/, expected {classes}; "
                f"use --dataset imagefolder for other data"
            )
        first, second = _class_halves(train_y)
    size = int(train_x.shape[2])
    if name == "cifar10":
        spec = DataSpec(name, classes, size, _CIFAR10_MEAN, _CIFAR10_STD, pad=4, flip=True)
        return Splits(spec, _split(train_x, train_y, first), _split(train_x, train_y, second), _split(test_x, test_y))
    spec = DataSpec(name, classes, size, _CIFAR100_MEAN, _CIFAR100_STD, pad=4, flip=True)
    valid, test = _halves(len(test_y), salt=1)
    return Splits(spec, _split(train_x, train_y), _split(test_x, test_y, valid), _split(test_x, test_y, test))


def _read_imagenet16_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Keep labels 1..120 of one official pickle, as images ``N x 3 x 16 x 16`` and labels 0..119.

    The files are Python pickles, as published; load only files you trust."""
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise AutohasError(
            f"ImageNet16-120: {path} is not an official ImageNet16 pickle (a dict with 'data' and 'labels'): {exc}"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3 * 16 * 16 or len(labels) != len(data):
        raise AutohasError(
            f"ImageNet16-120: {path} holds data {data.shape} and {len(labels)} labels; expected N x 768 and N labels"
        )
    keep = (labels >= 1) & (labels <= 120)
    return data[keep].reshape(-1, 3, 16, 16), labels[keep] - 1


def _build_imagenet16(source: _Source) -> Splits:
    assert source.path is not None
    parts = [_read_imagenet16_file(source.path / f"train_data_batch_{i}") for i in range(1, 11)]
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    val_x, val_y = _read_imagenet16_file(source.path / "val_data")
    valid, test = _halves(len(val_y), salt=2)
    spec = DataSpec("ImageNet16-120", 120, 16, _IMAGENET16_MEAN, _IMAGENET16_STD, pad=2, flip=True)
    return Splits(spec, _split(train_x, train_y), _split(val_x, val_y, valid), _split(val_x, val_y, test))


def _read_idx(path: Path) -> np.ndarray:
    """One idx file (the MNIST format: zero bytes, type 0x08 = uint8, rank, big-endian sizes, data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise AutohasError(f"fashion-mnist: cannot read {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise AutohasError(f"fashion-mnist: {path} is not a uint8 idx file")
    rank = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    start = 4 + 4 * rank
    if len(raw) - start != math.prod(shape):
        raise AutohasError(f"fashion-mnist: {path} is truncated ({len(raw) - start} bytes for shape {shape})")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(shape)


def _build_fashion_mnist(source: _Source) -> Splits:
    if source.kind == "idx":
        assert source.path is not None
        files = _idx_files(source.path)
        assert files is not None
        train_x, train_y, test_x, test_y = (_read_idx(file) for file in files)
    else:
        train_set, test_set = (_torchvision("fashion-mnist", source, train) for train in (True, False))
        train_x, train_y = train_set.data.numpy(), train_set.targets.numpy()
        test_x, test_y = test_set.data.numpy(), test_set.targets.numpy()
    if train_x.ndim != 3 or len(train_x) != len(train_y) or len(test_x) != len(test_y):
        shapes = ", ".join(str(array.shape) for array in (train_x, train_y, test_x, test_y))
        raise AutohasError(f"fashion-mnist: idx files in {source.path} do not fit together: shapes {shapes}")
    train_x = np.repeat(train_x[:, None], 3, axis=1)
    test_x = np.repeat(test_x[:, None], 3, axis=1)
    mean, std = _channel_stats(train_x)
    valid, test = _halves(len(test_y), salt=3)
    spec = DataSpec("fashion-mnist", 10, int(train_x.shape[2]), mean, std, pad=2, flip=True)
    return Splits(spec, _split(train_x, train_y), _split(test_x, test_y, valid), _split(test_x, test_y, test))


def _build_digits() -> Splits:
    """sklearn's 1,797 digits: 0..16 scaled to 0..255, each pixel repeated 2x2 (nearest, so no
    blur of an 8x8 glyph) to 16x16, 3 channels; stratified 898 train / 449 valid / 450 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    big = small.repeat(2, axis=1).repeat(2, axis=2)
    images = np.repeat(big[:, None], 3, axis=1)
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train, rest = train_test_split(index, test_size=0.5, stratify=labels, random_state=SPLIT_SEED)
    valid, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=SPLIT_SEED)
    train, valid, test = np.sort(train), np.sort(valid), np.sort(test)
    mean, std = _channel_stats(images[train])
    spec = DataSpec("digits", 10, 16, mean, std, pad=2, flip=False)
    return Splits(spec, _split(images, labels, train), _split(images, labels, valid), _split(images, labels, test))


def _build_image_folder(source: _Source) -> Splits:
    train_x, train_y, test_x, test_y, classes = _read_image_folder("imagefolder", source)
    train, valid = _class_halves(train_y)
    mean, std = _channel_stats(train_x[train])
    size = int(train_x.shape[2])
    spec = DataSpec("imagefolder", len(classes), size, mean, std, pad=size // 8, flip=True)
    return Splits(spec, _split(train_x, train_y, train), _split(train_x, train_y, valid), _split(test_x, test_y))


def _build(name: str, source: _Source) -> Splits:
    """Decode a dataset from its source and split it (the slow path the cache avoids)."""
    if name in ("cifar10", "cifar100"):
        return _build_cifar(name, source)
    if name == "ImageNet16-120":
        return _build_imagenet16(source)
    if name == "fashion-mnist":
        return _build_fashion_mnist(source)
    if name == "digits":
        return _build_digits()
    return _build_image_folder(source)


# ---------------------------------------------------------------------------------------------
# The disk cache.

_PARTS = ("train", "valid", "test")


def _cache_path(name: str, source: _Source, cache: Path) -> Path:
    key = json.dumps([_CACHE_FORMAT, SPLIT_SEED, name, source.kind, source.key])
    return cache / f"{name}-{source.kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _read_cache(path: Path) -> Splits | None:
    """The cached splits, or None when absent or unreadable (then the caller rebuilds them)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            spec_fields = json.loads(str(stored["spec"]))
            spec_fields["mean"] = tuple(spec_fields["mean"])
            spec_fields["std"] = tuple(spec_fields["std"])
            spec = DataSpec(**spec_fields)
            parts = [
                Split(torch.from_numpy(stored[f"{part}_images"]), torch.from_numpy(stored[f"{part}_labels"])) for part in _PARTS
            ]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("ignoring unreadable data cache %s (%s); rebuilding it", path, exc)
        return None
    return Splits(spec, *parts)


def _write_cache(path: Path, splits: Splits) -> None:
    """Write to a temporary file beside ``path`` and rename it, so readers never see half a file."""
    arrays: dict[str, np.ndarray] = {"spec": np.array(json.dumps(dataclasses.asdict(splits.spec)))}
    for part in _PARTS:
        split: Split = getattr(splits, part)
        arrays[f"{part}_images"] = split.images.numpy()
        arrays[f"{part}_labels"] = split.labels.numpy()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock, so that concurrent trials decode a dataset once, not each."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks: concurrent builders then only waste time (writes stay atomic)
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_splits(name: str, data_dir: str | None = None, cache_dir: str | None = None, download: bool = True) -> Splits:
    """Load ``name``'s train / valid / test splits, decoding once and caching the uint8 arrays.

    ``data_dir``: the source (folder, archive, idx or pickle files; see the module docs and
    ``TRAIN_DATASETS``). ``cache_dir``: where decoded arrays live (default
    ``default_cache_dir()``). ``download``: allow torchvision to fetch CIFAR / Fashion-MNIST.

    Splits (NATS-Bench's where defined; seeded ones use ``SPLIT_SEED``):

    - cifar10 ("cifar10-valid"): train / valid = the two halves of the 50,000 training images,
      test = the 10,000 test images. From torchvision's files the halves are the first and last
      25,000 images; from an image folder or archive (stored class by class) each class's
      images are halved by a seeded permutation instead (2,500 + 2,500 per class).
    - cifar100: train = 50,000; valid / test = seeded halves (5,000 each) of the 10,000 test images.
    - ImageNet16-120: labels 1..120 only (as 0..119); train = all kept training images,
      valid / test = seeded halves of the kept val_data images.
    - fashion-mnist: train = 60,000; valid / test = seeded halves of the 10,000 test images.
    - digits: stratified 898 / 449 / 450 of sklearn's 1,797 images.
    - imagefolder: train / valid = seeded per-class halves of train/, test = test/.

    digits needs no ``data_dir`` (scikit-learn ships it) and ignores one.
    """
    if name not in TRAIN_DATASETS:
        raise AutohasError(f"unknown dataset {name!r}; choose one of {', '.join(TRAIN_DATASETS)}")
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    source = _resolve(name, data_dir, cache, download)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("data cache %s is not writable (%s); decoding without a cache", cache, exc)
        return _build(name, source)
    path = _cache_path(name, source, cache)
    splits = _read_cache(path)
    if splits is not None:
        return splits
    with _exclusive(path.with_suffix(".lock")):
        splits = _read_cache(path)  # another process may have built it while this one waited
        if splits is None:
            splits = _build(name, source)
            try:
                _write_cache(path, splits)
            except OSError as exc:
                log.warning("could not write data cache %s (%s)", path, exc)
    return splits


# ---------------------------------------------------------------------------------------------
# Batches.


def crop_flip(
    images: torch.Tensor, pad: int, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Random crop with zero padding, then horizontal flip, of a whole uint8 batch by gathering.

    Image ``i`` is zero-padded by ``pad`` on every side, cropped back to ``H x W`` at row
    ``top[i]`` and column ``left[i]`` of the padded image (0..2*pad; ``pad`` = no shift), then
    mirrored where ``flip[i]``: torchvision's ``RandomCrop(size, padding=pad)`` followed by
    ``RandomHorizontalFlip``, for the whole batch at once.
    """
    count, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    device = images.device
    rows = top.view(-1, 1) + torch.arange(height, device=device)
    rows = padded.gather(2, rows.view(count, 1, height, 1).expand(count, channels, height, padded.shape[3]))
    columns = torch.arange(width, device=device)
    if flip is not None:
        columns = torch.where(flip.view(-1, 1), (width - 1) - columns, columns)
    columns = left.view(-1, 1) + columns
    # two gathers (rows, then columns): measured faster on CPU than one 4-index advanced indexing
    return rows.gather(3, columns.view(count, 1, 1, width).expand(count, channels, height, width))


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit seed for one epoch, so any epoch's randomness is reproducible from (seed, epoch)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest(), "little")


class Batches:
    """Iterate over one split in batches of normalised float32 tensors on ``device``.

    The split is copied to ``device`` once (on a GPU the whole split stays resident and the
    augmentation runs there); a batch is a slice of a per-epoch permutation used as an index.
    Create one per split and run; each ``iter()`` is one epoch.

    Randomness: epoch ``e`` reseeds a ``torch.Generator`` on ``device`` from ``(seed, e)`` and
    draws that epoch's permutation, crop offsets and flips up front. ``get_state()`` is therefore
    just ``{"seed", "epoch"}`` (small, JSON-friendly); take it between epochs, and ``set_state``
    on a new instance on the same kind of device resumes the same sequence of batches (CPU and
    CUDA generators draw different streams from one seed).
    """

    def __init__(
        self,
        split: Split,
        spec: DataSpec,
        batch_size: int,
        device: torch.device | str = "cpu",
        augment: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise AutohasError(f"batch size must be at least 1, got {batch_size}")
        self.spec = spec
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.augment = augment
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.epoch = 0
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self._mean = torch.tensor(spec.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._generator = torch.Generator(device=self.device)

    def __len__(self) -> int:
        count = int(self.labels.shape[0])
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 ``(x / 255 - mean) / std``."""
        return images.float().div_(255).sub_(self._mean).div_(self._std)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = int(self.labels.shape[0])
        generator = self._generator
        generator.manual_seed(_epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        order = torch.randperm(count, generator=generator, device=self.device) if self.shuffle else None
        top = left = flip = None
        pad = self.spec.pad if self.augment else 0
        if self.augment and pad > 0:
            top = torch.randint(0, 2 * pad + 1, (count,), generator=generator, device=self.device)
            left = torch.randint(0, 2 * pad + 1, (count,), generator=generator, device=self.device)
        if self.augment and self.spec.flip:
            flip = torch.rand(count, generator=generator, device=self.device) < 0.5
        return self._batches(count, order, pad, top, left, flip)

    def _batches(
        self,
        count: int,
        order: torch.Tensor | None,
        pad: int,
        top: torch.Tensor | None,
        left: torch.Tensor | None,
        flip: torch.Tensor | None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, count), self.batch_size):
            end = min(start + self.batch_size, count)
            if order is None:
                images, labels = self.images[start:end], self.labels[start:end]
            else:
                index = order[start:end]
                images, labels = self.images[index], self.labels[index]
            if top is not None or flip is not None:
                zeros = None
                if top is None:
                    zeros = torch.zeros(end - start, dtype=torch.int64, device=self.device)
                images = crop_flip(
                    images,
                    pad,
                    top[start:end] if top is not None else zeros,
                    left[start:end] if left is not None else zeros,
                    flip[start:end] if flip is not None else None,
                )
            yield self.normalise(images), labels

    def get_state(self) -> dict[str, int]:
        """Where the batch sequence stands: the next epoch and the seed."""
        return {"seed": self.seed, "epoch": self.epoch}

    def set_state(self, state: dict[str, int]) -> None:
        """Resume from ``get_state()``: the next epoch yields what it would have yielded then."""
        try:
            seed, epoch = int(state["seed"]), int(state["epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AutohasError(f"bad Batches state {state!r}: expected {{'seed': int, 'epoch': int}}") from exc
        if epoch < 0:
            raise AutohasError(f"bad Batches state {state!r}: epoch must be >= 0")
        self.seed, self.epoch = seed, epoch
