"""Datasets and batches: exact split sizes and rules, the disk cache, vectorised augmentation."""
from __future__ import annotations

import dataclasses
import gzip
import pickle
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from autohas import data
from autohas.data import Batches, DataSpec, Split, crop_flip, load_splits
from autohas.errors import AutohasError

from .conftest import SHARED_DATA

CIFAR10_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"


def rows(split: Split) -> list[bytes]:
    """Each sample as bytes (image then label), to compare splits as multisets."""
    flat = split.images.reshape(len(split), -1).numpy()
    return [image.tobytes() + int(label).to_bytes(8, "little") for image, label in zip(flat, split.labels.numpy())]


def write_folder(root: Path, classes: int, train: int, test: int, size: int = 8, mode: str = "RGB", seed: int = 0) -> Path:
    """An image-folder dataset of PNGs whose pixels are random (so every image differs)."""
    rng = np.random.default_rng(seed)
    for part, count in (("train", train), ("test", test)):
        for cls in range(classes):
            folder = root / part / f"class{cls:03d}"
            folder.mkdir(parents=True)
            for i in range(count):
                shape = (size, size) if mode == "L" else (size, size, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i:04d}.png")
    return root


def write_tar(folder: Path, target: Path, prefix: str) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return target


# -- digits ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_splits("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_digits_splits_exact(digits):
    from sklearn.datasets import load_digits

    assert [len(digits.train), len(digits.valid), len(digits.test)] == [898, 449, 450]
    for split in (digits.train, digits.valid, digits.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 16, 16)
        assert split.labels.dtype == torch.int64
        assert torch.bincount(split.labels, minlength=10).min() > 0
        assert torch.equal(split.images[:, 0], split.images[:, 2])  # grayscale replicated
    # together the whole set, each sample once (as multisets of image + label)
    raw = load_digits()
    small = np.rint(raw.images * 255 / 16).astype(np.uint8)
    whole = np.repeat(small.repeat(2, 1).repeat(2, 2)[:, None], 3, axis=1)
    expected = Split(torch.from_numpy(whole), torch.from_numpy(raw.target.astype(np.int64)))
    assert sorted(rows(digits.train) + rows(digits.valid) + rows(digits.test)) == sorted(rows(expected))
    spec = digits.spec
    assert (spec.num_classes, spec.image_size, spec.pad, spec.flip) == (10, 16, 2, False)
    mean = digits.train.images.double().mean() / 255
    assert spec.mean == pytest.approx((float(mean),) * 3)


def test_digits_stratified(digits):
    counts = [torch.bincount(s.labels, minlength=10).double() for s in (digits.train, digits.valid, digits.test)]
    whole = sum(counts)
    assert torch.all((counts[0] - whole / 2).abs() <= 1)
    assert torch.all((counts[1] - whole / 4).abs() <= 1)


# -- the cache ---------------------------------------------------------------------------
def test_cache_second_load_does_not_decode(tmp_path, monkeypatch):
    first = load_splits("digits", cache_dir=str(tmp_path))
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data, "_build", refuse)
    second = load_splits("digits", cache_dir=str(tmp_path))
    assert second.spec == first.spec
    for part in ("train", "valid", "test"):
        assert torch.equal(getattr(second, part).images, getattr(first, part).images)
        assert torch.equal(getattr(second, part).labels, getattr(first, part).labels)


def test_cache_env_default_and_corrupt_file_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOHAS_DATA_CACHE", str(tmp_path / "env"))
    first = load_splits("digits")
    (cached,) = (tmp_path / "env").glob("*.npz")
    cached.write_bytes(b"not a zip file")
    again = load_splits("digits")
    assert torch.equal(again.train.images, first.train.images)
    assert cached.stat().st_size > 1000


def test_cache_keys_separate_sources(tmp_path):
    one = write_folder(tmp_path / "one", classes=2, train=3, test=2, seed=1)
    two = write_folder(tmp_path / "two", classes=2, train=3, test=2, seed=2)
    cache = str(tmp_path / "cache")
    a = load_splits("imagefolder", data_dir=str(one), cache_dir=cache)
    b = load_splits("imagefolder", data_dir=str(two), cache_dir=cache)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert not torch.equal(a.test.images, b.test.images)


def test_concurrent_loads_decode_once(tmp_path, monkeypatch):
    builds = []
    real_build = data._build

    def counting(*args):
        builds.append(1)
        time.sleep(0.3)  # hold the lock long enough for the other loader to queue behind it
        return real_build(*args)

    monkeypatch.setattr(data, "_build", counting)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: load_splits("digits", cache_dir=str(tmp_path)), range(2)))
    assert len(builds) == 1
    assert torch.equal(results[0].test.images, results[1].test.images)


# -- cifar10 -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cifar10_real(tmp_path_factory):
    if not CIFAR10_TARBALL.exists():
        pytest.skip(f"reference data {CIFAR10_TARBALL} is absent (it lives in ../shared/data beside the checkout)")
    cache = tmp_path_factory.mktemp("cifar10-cache")
    start = time.perf_counter()
    splits = load_splits("cifar10", data_dir=str(CIFAR10_TARBALL), cache_dir=str(cache))
    print(f"cifar10 tarball decoded in {time.perf_counter() - start:.1f} s")
    return splits, cache


def test_cifar10_tarball_official_sizes(cifar10_real):
    splits, cache = cifar10_real
    assert [len(splits.train), len(splits.valid), len(splits.test)] == [25000, 25000, 10000]
    assert splits.train.images.shape[1:] == (3, 32, 32)
    assert torch.bincount(splits.train.labels).tolist() == [2500] * 10
    assert torch.bincount(splits.valid.labels).tolist() == [2500] * 10
    assert torch.bincount(splits.test.labels).tolist() == [1000] * 10
    assert (splits.spec.num_classes, splits.spec.pad, splits.spec.flip) == (10, 4, True)
    assert splits.spec.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    # the real pixel statistics are close to NATS-Bench's constants
    mean = splits.train.images[::5].double().mean(dim=(0, 2, 3)) / 255  # every class: stored class by class
    assert mean.tolist() == pytest.approx(list(splits.spec.mean), abs=0.01)
    start = time.perf_counter()
    again = load_splits("cifar10", data_dir=str(CIFAR10_TARBALL), cache_dir=str(cache))
    assert time.perf_counter() - start < 5
    assert torch.equal(again.valid.images, splits.valid.images)


def test_cifar10_folder_class_halves_and_archive_agree(tmp_path):
    folder = write_folder(tmp_path / "c10" / "inner", classes=10, train=5, test=2)
    archive = write_tar(tmp_path / "c10" / "inner", tmp_path / "c10.tar.gz", "cifar-images")
    a = load_splits("cifar10", data_dir=str(tmp_path / "c10"), cache_dir=str(tmp_path / "cache"))  # one level up
    b = load_splits("cifar10", data_dir=str(archive), cache_dir=str(tmp_path / "cache"))
    assert folder.exists() and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    for part in ("train", "valid", "test"):
        assert torch.equal(getattr(a, part).images, getattr(b, part).images)
        assert torch.equal(getattr(a, part).labels, getattr(b, part).labels)
    assert torch.bincount(a.train.labels).tolist() == [3] * 10  # the larger half of 5
    assert torch.bincount(a.valid.labels).tolist() == [2] * 10
    assert len(a.test) == 20
    assert set(rows(a.train)).isdisjoint(rows(a.valid))


def test_cifar_torchvision_source_splits(tmp_path, monkeypatch):
    """torchvision's files keep the official order, so cifar10 uses its first and last halves."""
    rng = np.random.default_rng(0)
    fake = {
        True: SimpleNamespace(data=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), targets=list(np.arange(40) % 10)),
        False: SimpleNamespace(data=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), targets=list(np.arange(12) % 10)),
    }
    monkeypatch.setattr(data, "_torchvision", lambda name, source, train: fake[train])
    c10 = load_splits("cifar10", data_dir=str(tmp_path / "tv"), cache_dir=str(tmp_path / "cache"))
    channel_first = torch.from_numpy(fake[True].data).permute(0, 3, 1, 2)
    assert torch.equal(c10.train.images, channel_first[:20]) and torch.equal(c10.valid.images, channel_first[20:])
    assert torch.equal(c10.test.labels, torch.arange(12) % 10)
    c100 = load_splits("cifar100", data_dir=str(tmp_path / "tv"), cache_dir=str(tmp_path / "cache"))
    assert [len(c100.train), len(c100.valid), len(c100.test)] == [40, 6, 6]
    assert set(rows(c100.valid)).isdisjoint(rows(c100.test))


def test_cifar100_test_halves(tmp_path):
    write_folder(tmp_path / "c100", classes=100, train=1, test=2)
    splits = load_splits("cifar100", data_dir=str(tmp_path / "c100"), cache_dir=str(tmp_path / "cache"))
    assert [len(splits.train), len(splits.valid), len(splits.test)] == [100, 100, 100]
    assert splits.spec.num_classes == 100 and splits.spec.std == pytest.approx((68.2 / 255, 65.4 / 255, 70.4 / 255))
    whole = load_splits("imagefolder", data_dir=str(tmp_path / "c100"), cache_dir=str(tmp_path / "cache")).test
    assert set(rows(splits.valid)).isdisjoint(rows(splits.test))
    assert sorted(rows(splits.valid) + rows(splits.test)) == sorted(rows(whole))


def test_cifar_wrong_class_count(tmp_path):
    write_folder(tmp_path / "few", classes=3, train=1, test=1)
    with pytest.raises(AutohasError, match="3 class folders.*expected 100"):
        load_splits("cifar100", data_dir=str(tmp_path / "few"), cache_dir=str(tmp_path / "cache"))


# -- ImageNet16-120 ----------------------------------------------------------------------
def test_imagenet16_official_format(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "ImageNet16"  # the official folder name; --data-dir may point at its parent
    folder.mkdir()
    kept_train = []
    for i in range(1, 11):
        labels = rng.integers(1, 1001, 40)
        labels[:3] = [1, 120, 121]
        images = rng.integers(0, 256, (40, 768), dtype=np.uint8)
        kept_train += [(img, lab - 1) for img, lab in zip(images, labels) if lab <= 120]
        with open(folder / f"train_data_batch_{i}", "wb") as handle:
            pickle.dump({"data": images, "labels": labels.tolist(), "mean": np.zeros(768)}, handle)
    val_labels = np.array([1, 2, 119, 120, 121, 500, 1000] * 4)
    val_images = rng.integers(0, 256, (len(val_labels), 768), dtype=np.uint8)
    with open(folder / "val_data", "wb") as handle:
        pickle.dump({"data": val_images, "labels": val_labels.tolist()}, handle)

    splits = load_splits("ImageNet16-120", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert splits.spec.num_classes == 120 and splits.spec.image_size == 16 and splits.spec.pad == 2
    assert splits.spec.mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))
    assert len(splits.train) == len(kept_train)
    assert splits.train.labels.tolist() == [int(lab) for _, lab in kept_train]
    assert splits.train.labels.min() == 0 and splits.train.labels.max() <= 119
    # channel-major 3 x 16 x 16 layout
    assert torch.equal(splits.train.images[0].reshape(-1), torch.from_numpy(kept_train[0][0]))
    assert len(splits.valid) == len(splits.test) == 8  # 16 kept val images, halved
    kept = val_labels <= 120
    kept_val = Split(torch.from_numpy(val_images[kept].reshape(-1, 3, 16, 16)), torch.from_numpy(val_labels[kept] - 1))
    assert sorted(rows(splits.valid) + rows(splits.test)) == sorted(rows(kept_val))


def test_imagenet16_subfolder_and_missing_files(tmp_path):
    (tmp_path / "ImageNet16").mkdir()
    (tmp_path / "ImageNet16" / "val_data").write_bytes(b"")
    with pytest.raises(AutohasError, match=r"ImageNet16 lacks train_data_batch_1, .*--data-dir") as info:
        load_splits("ImageNet16-120", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert "\n" not in str(info.value)
    with pytest.raises(AutohasError, match="cannot be downloaded"):
        load_splits("ImageNet16-120", cache_dir=str(tmp_path / "cache"))


# -- fashion-mnist -----------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, (11, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(30) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_x)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(11) % 10)
    splits = load_splits("fashion-mnist", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert [len(splits.train), len(splits.valid), len(splits.test)] == [30, 5, 6]
    assert torch.equal(splits.train.images[:, 1], torch.from_numpy(train_x))
    assert (splits.spec.pad, splits.spec.flip, splits.spec.image_size) == (2, True, 28)
    whole = Split(torch.from_numpy(np.repeat(test_x[:, None], 3, 1)), torch.arange(11) % 10)
    assert sorted(rows(splits.valid) + rows(splits.test)) == sorted(rows(whole))


def test_fashion_mnist_system_copy(tmp_path):
    if data._idx_files(data.FASHION_MNIST_SYSTEM_DIR) is None:
        pytest.skip(f"{data.FASHION_MNIST_SYSTEM_DIR} is absent (apt-get install dataset-fashion-mnist)")
    splits = load_splits("fashion-mnist", cache_dir=str(tmp_path), download=False)
    assert [len(splits.train), len(splits.valid), len(splits.test)] == [60000, 5000, 5000]
    assert torch.bincount(splits.train.labels).tolist() == [6000] * 10
    assert splits.spec.mean[0] == pytest.approx(0.2860, abs=1e-3) and splits.spec.std[0] == pytest.approx(0.3530, abs=1e-3)


# -- imagefolder -------------------------------------------------------------------------
def test_imagefolder_grayscale_odd_counts(tmp_path):
    write_folder(tmp_path / "set", classes=3, train=5, test=2, size=12, mode="L")
    (tmp_path / "set" / "train" / "README.txt").write_text("ignored")
    (tmp_path / "set" / "train" / "class000" / ".hidden.png").write_bytes(b"ignored")
    splits = load_splits("imagefolder", data_dir=str(tmp_path / "set"), cache_dir=str(tmp_path / "cache"))
    spec = splits.spec
    assert (spec.num_classes, spec.image_size, spec.pad, spec.flip) == (3, 12, 1, True)
    assert torch.bincount(splits.train.labels).tolist() == [3, 3, 3]
    assert torch.bincount(splits.valid.labels).tolist() == [2, 2, 2]
    assert len(splits.test) == 6 and torch.equal(splits.test.images[:, 0], splits.test.images[:, 1])
    mean = splits.train.images.double().mean(dim=(0, 2, 3)) / 255
    assert list(spec.mean) == pytest.approx(mean.tolist())


def test_imagefolder_errors(tmp_path):
    cache = str(tmp_path / "cache")
    write_folder(tmp_path / "mixed", classes=2, train=2, test=1, size=8)
    Image.new("RGB", (9, 9)).save(tmp_path / "mixed" / "train" / "class001" / "big.png")
    with pytest.raises(AutohasError, match="big.png is 9x9 but the first image was 8x8"):
        load_splits("imagefolder", data_dir=str(tmp_path / "mixed"), cache_dir=cache)
    write_folder(tmp_path / "broken", classes=2, train=2, test=1)
    (tmp_path / "broken" / "test" / "class000" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(AutohasError, match="cannot decode image .*bad.jpg"):
        load_splits("imagefolder", data_dir=str(tmp_path / "broken"), cache_dir=cache)
    write_folder(tmp_path / "stray", classes=2, train=1, test=1)
    (tmp_path / "stray" / "test" / "extra").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "stray" / "test" / "extra" / "x.png")
    with pytest.raises(AutohasError, match="test classes extra"):
        load_splits("imagefolder", data_dir=str(tmp_path / "stray"), cache_dir=cache)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(AutohasError, match="not a tar archive"):
        load_splits("imagefolder", data_dir=str(tmp_path / "notes.txt"), cache_dir=cache)
    with pytest.raises(AutohasError, match="needs --data-dir"):
        load_splits("imagefolder", cache_dir=cache)


# -- errors ------------------------------------------------------------------------------
def test_unknown_dataset():
    with pytest.raises(AutohasError, match="unknown dataset 'mnist'; choose one of cifar10, cifar100"):
        load_splits("mnist")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "fashion-mnist", "imagefolder", "ImageNet16-120"])
def test_data_dir_without_expected_files(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutohasError, match="--data-dir") as info:
        load_splits(name, data_dir=str(tmp_path / "empty"), cache_dir=str(tmp_path / "cache"), download=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "empty") in message


def test_missing_data_dir(tmp_path):
    with pytest.raises(AutohasError, match="does not exist"):
        load_splits("imagefolder", data_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache"))


# -- Batches -----------------------------------------------------------------------------
SPEC = DataSpec("toy", 10, 8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), pad=2, flip=True)


def toy_split(count: int = 50, size: int = 8) -> Split:
    """Random images; label i marks sample i, so batches can be traced back."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
    return Split(images, torch.arange(count))


def normalised(images: torch.Tensor, spec: DataSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def epoch(batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def test_batches_shapes_and_exact_normalisation():
    split = toy_split(50)
    batches = Batches(split, SPEC, batch_size=16)
    assert len(batches) == 4
    shapes = [(tuple(x.shape), tuple(y.shape), x.dtype, y.dtype) for x, y in batches]
    assert shapes[0] == ((16, 3, 8, 8), (16,), torch.float32, torch.int64)
    assert shapes[-1][:2] == ((2, 3, 8, 8), (2,))
    x, y = epoch(batches)
    assert torch.equal(y, split.labels)
    assert torch.equal(x, normalised(split.images, SPEC))
    assert len(Batches(split, SPEC, batch_size=16, drop_last=True)) == 3
    assert len(list(Batches(split, SPEC, batch_size=16, drop_last=True))) == 3
    with pytest.raises(AutohasError):
        Batches(split, SPEC, batch_size=0)


def test_shuffled_epoch_is_a_permutation():
    split = toy_split(50)
    batches = Batches(split, SPEC, batch_size=16, shuffle=True, seed=3)
    x, y = epoch(batches)
    assert sorted(y.tolist()) == list(range(50)) and y.tolist() != list(range(50))
    assert torch.equal(x, normalised(split.images[y], SPEC))
    _, y2 = epoch(batches)
    assert y2.tolist() != y.tolist()  # a new order each epoch


def test_crop_flip_identities():
    images = toy_split(6).images
    pad = 3
    centre = torch.full((6,), pad)
    assert torch.equal(crop_flip(images, pad, centre, centre), images)
    flips = torch.tensor([True, False, True, True, False, False])
    once = crop_flip(images, 0, torch.zeros(6, dtype=torch.int64), torch.zeros(6, dtype=torch.int64), flips)
    assert torch.equal(once[flips], images[flips].flip(-1)) and torch.equal(once[~flips], images[~flips])
    zeros = torch.zeros(6, dtype=torch.int64)
    assert torch.equal(crop_flip(once, 0, zeros, zeros, flips), images)
    # the top-left crop: pad rows and columns of zeros, then the image shifted
    corner = crop_flip(images, pad, zeros, zeros)
    assert corner[:, :, :pad].eq(0).all() and corner[:, :, :, :pad].eq(0).all()
    assert torch.equal(corner[:, :, pad:, pad:], images[:, :, :-pad, :-pad])


def test_crop_flip_matches_torchvision():
    from torchvision.transforms.v2 import functional as tvf

    images = toy_split(5).images
    pad = 2
    top = torch.tensor([0, 1, 2, 3, 4])
    left = torch.tensor([4, 0, 3, 2, 1])
    flip = torch.tensor([True, False, False, True, True])
    ours = crop_flip(images, pad, top, left, flip)
    for i in range(5):
        theirs = tvf.crop(tvf.pad(images[i], [pad]), int(top[i]), int(left[i]), 8, 8)
        if flip[i]:
            theirs = tvf.horizontal_flip(theirs)
        assert torch.equal(ours[i], theirs)


def test_augmentation_pads_with_normalised_zero():
    white = Split(torch.full((64, 3, 8, 8), 255, dtype=torch.uint8), torch.zeros(64, dtype=torch.int64))
    x, _ = epoch(Batches(white, SPEC, batch_size=20, augment=True, shuffle=True, seed=1))
    zero = normalised(torch.zeros(1, 3, 1, 1, dtype=torch.uint8), SPEC)
    full = normalised(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8), SPEC)
    is_zero = torch.isclose(x, zero.expand_as(x))
    assert torch.all(is_zero | torch.isclose(x, full.expand_as(x)))
    assert is_zero.any()  # some crops reach into the padding
    assert not is_zero[:, :, 2:-2, 2:-2].any()  # the centre never does (pad 2)
    assert is_zero[:, 0].sum() < 64 * 64 * 0.5


def test_augmentation_is_a_crop_of_the_padded_image():
    split = toy_split(40)
    x, y = epoch(Batches(split, SPEC, batch_size=16, augment=True, shuffle=True, seed=5))
    padded = normalised(torch.nn.functional.pad(split.images, (2, 2, 2, 2)), SPEC)
    flipped = 0
    for image, label in zip(x, y):
        crops = [padded[label, :, t : t + 8, l : l + 8] for t in range(5) for l in range(5)]
        plain = any(torch.equal(image, crop) for crop in crops)
        mirrored = any(torch.equal(image, crop.flip(-1)) for crop in crops)
        assert plain or mirrored, f"sample {int(label)} is no crop of its padded image"
        flipped += mirrored and not plain
    assert 5 < flipped < 35  # about half are flipped


def test_no_pad_no_flip_augmentation_is_identity():
    split = toy_split(30)
    spec = dataclasses.replace(SPEC, pad=0, flip=False)
    plain = epoch(Batches(split, spec, batch_size=7, shuffle=True, seed=2))
    augmented = epoch(Batches(split, spec, batch_size=7, shuffle=True, seed=2, augment=True))
    assert torch.equal(plain[0], augmented[0]) and torch.equal(plain[1], augmented[1])


def test_seeds_reproduce_and_differ():
    split = toy_split(60)

    def run(seed: int) -> list[torch.Tensor]:
        batches = Batches(split, SPEC, batch_size=16, augment=True, shuffle=True, seed=seed)
        return [x for _ in range(2) for x in epoch(batches)]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_state_resumes_the_same_sequence():
    split = toy_split(60)
    first = Batches(split, SPEC, batch_size=16, augment=True, shuffle=True, seed=11)
    epoch(first)
    state = first.get_state()
    assert state == {"seed": 11, "epoch": 1}
    expected = [epoch(first) for _ in range(2)]
    resumed = Batches(split, SPEC, batch_size=16, augment=True, shuffle=True, seed=0)
    resumed.set_state(state)
    for x, y in expected:
        x2, y2 = epoch(resumed)
        assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(AutohasError, match="bad Batches state"):
        resumed.set_state({"epoch": 1})


def test_cifar10_batches_epoch(cifar10_real):
    splits, _ = cifar10_real
    batches = Batches(splits.train, splits.spec, batch_size=256, augment=True, shuffle=True)
    start = time.perf_counter()
    count = sum(len(y) for _, y in batches)
    print(f"one augmented cifar10 epoch (25,000 images, batch 256, cpu) in {time.perf_counter() - start:.2f} s")
    assert count == 25000 and len(batches) == 98


@pytest.mark.gpu
def test_batches_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    split = toy_split(100)
    batches = Batches(split, SPEC, batch_size=32, device="cuda", augment=True, shuffle=True, seed=4)
    assert batches.images.is_cuda
    x, y = epoch(batches)
    assert x.is_cuda and y.is_cuda and x.shape == (100, 3, 8, 8)
    assert sorted(y.tolist()) == list(range(100))
    resumed = Batches(split, SPEC, batch_size=32, device="cuda", augment=True, shuffle=True)
    resumed.set_state({"seed": 4, "epoch": 0})
    assert torch.equal(epoch(resumed)[0], x)
    plain, labels = epoch(Batches(split, SPEC, batch_size=32, device="cuda"))
    assert torch.equal(plain.cpu(), normalised(split.images, SPEC)) and torch.equal(labels.cpu(), split.labels)
