"""The raw-format readers on files written in the real formats, including every corrupt case."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pixelgan.config import DatasetConfig
from pixelgan.data.formats import DataFormatError, read_idx, read_norb, read_svhn_mat
from pixelgan.data.sources import load_source
from tests.formats import (
    NORB_NAME,
    balanced_labels,
    fake_images,
    write_idx,
    write_mnist_folder,
    write_norb,
    write_smallnorb_folder,
    write_svhn,
)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    images = fake_images(7, 1, 28)[:, 0]
    assert np.array_equal(read_idx(write_idx(tmp_path / name, images)), images)
    ints = np.arange(12, dtype=">i4").reshape(3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "ints", ints)), ints)


def test_idx_corruptions_name_the_file(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good", fake_images(5, 1, 28)[:, 0]).read_bytes()
    cases = {
        "truncated": (good[:-10], "truncated"),
        "header-only": (good[:6], "truncated inside its header"),
        "magic": (b"\x01\x02" + good[2:], "wrong magic number"),
        "trailing": (good + b"\0\0", "bytes more than its header"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError, match=f"{name}: .*{message}"):
            read_idx(tmp_path / name)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(DataFormatError, match="cut.gz: not a complete gzip file"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataFormatError, match="absent: no such file"):
        read_idx(tmp_path / "absent")


def test_mnist_folder_loads_and_checks_labels(tmp_path: Path) -> None:
    raw = load_source(DatasetConfig(name="mnist", root=str(write_mnist_folder(tmp_path, gz=True))), tmp_path / "raw")
    assert raw.train_images.shape == (60, 1, 28, 28) and raw.test_images.shape == (20, 1, 28, 28)
    assert set(raw.sources) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(60, 11, dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"train-labels-idx1-ubyte.gz: label 11 at row 0 is out of range 0\.\.9"):
        load_source(DatasetConfig(name="mnist", root=str(tmp_path)), tmp_path / "raw")
    write_mnist_folder(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match=r"dataset\.root=.*: no t10k-images-idx3-ubyte"):
        load_source(DatasetConfig(name="mnist", root=str(tmp_path)), tmp_path / "raw")


def test_svhn_mat_maps_label_10_to_digit_0(tmp_path: Path) -> None:
    images = fake_images(12, 3, 32)
    labels = balanced_labels(12, 10) + 1  # 1..10, as SVHN stores them
    got_images, got_labels = read_svhn_mat(write_svhn(tmp_path / "train_32x32.mat", images, labels))
    assert np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels % 10)


def test_svhn_corruptions_name_the_file(tmp_path: Path) -> None:
    path = write_svhn(tmp_path / "train_32x32.mat", fake_images(4, 3, 32), np.array([1, 2, 3, 4]))
    (tmp_path / "cut.mat").write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataFormatError, match="cut.mat: not a readable MATLAB .mat file"):
        read_svhn_mat(tmp_path / "cut.mat")
    write_svhn(tmp_path / "zero.mat", fake_images(4, 3, 32), np.array([1, 0, 3, 4]))
    with pytest.raises(DataFormatError, match=r"zero.mat: label 0 at row 1 is out of range 1\.\.10"):
        read_svhn_mat(tmp_path / "zero.mat")
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(DataFormatError, match="other.mat: no variable 'X'"):
        read_svhn_mat(tmp_path / "other.mat")


def test_svhn_folder_with_extra(tmp_path: Path) -> None:
    for split, n in (("train", 20), ("test", 10), ("extra", 30)):
        write_svhn(tmp_path / f"{split}_32x32.mat", fake_images(n, 3, 32), balanced_labels(n, 10) + 1)
    raw = load_source(DatasetConfig(name="svhn", root=str(tmp_path), svhn_extra=True, labels=10), tmp_path)
    assert raw.train_images.shape == (50, 3, 32, 32) and len(raw.test_labels) == 10
    assert "extra_32x32.mat" in raw.sources


def test_norb_round_trip_and_corruptions(tmp_path: Path) -> None:
    pairs = fake_images(3, 2, 6)
    assert np.array_equal(read_norb(write_norb(tmp_path / "dat.mat.gz", pairs)), pairs)
    labels = np.array([0, 4, 2], dtype="<i4")  # 1-D: the header still holds three sizes
    assert np.array_equal(read_norb(write_norb(tmp_path / "cat.mat", labels)), labels)
    good = (tmp_path / "cat.mat").read_bytes()
    (tmp_path / "magic.mat").write_bytes(b"\x00\x00\x00\x00" + good[4:])
    with pytest.raises(DataFormatError, match="magic.mat: wrong magic number"):
        read_norb(tmp_path / "magic.mat")
    (tmp_path / "cut.mat").write_bytes(good[:-4])
    with pytest.raises(DataFormatError, match="cut.mat: truncated"):
        read_norb(tmp_path / "cut.mat")


def test_smallnorb_folder_takes_the_left_camera_resized(tmp_path: Path) -> None:
    write_smallnorb_folder(tmp_path, size=12)
    raw = load_source(DatasetConfig(name="smallnorb", root=str(tmp_path), image_size=4, labels=5), tmp_path)
    assert raw.train_images.shape == (30, 1, 4, 4) and raw.test_images.shape == (10, 1, 4, 4)
    assert raw.classes == 5
    left = read_norb(tmp_path / (NORB_NAME.format(split="training", kind="dat") + ".gz"))[:, 0].astype(float)
    expected = left.reshape(30, 4, 3, 4, 3).mean(axis=(2, 4))  # 3x3 area means
    assert np.abs(raw.train_images[:, 0] - expected).max() <= 0.5
    write_norb(tmp_path / NORB_NAME.format(split="testing", kind="cat"), np.full(10, 5, dtype="<i4"))
    with pytest.raises(DataFormatError, match=r"testing-cat.mat: label 5 at row 0 is out of range 0\.\.4"):
        load_source(DatasetConfig(name="smallnorb", root=str(tmp_path), image_size=4, labels=5), tmp_path)
