"""The prepared Parquet files: an exact round trip, byte-identical reruns, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelgan.config import DatasetConfig
from pixelgan.data.formats import DataFormatError
from pixelgan.data.parquet import read_split, write_split
from pixelgan.data.prepare import prepare_dataset
from pixelgan.data.splits import Split
from tests.formats import balanced_labels, fake_images, write_mnist_folder, write_smallnorb_folder, write_svhn


def test_round_trip_keeps_every_column_and_the_metadata(tmp_path: Path) -> None:
    split = Split(fake_images(9, 3, 5), balanced_labels(9, 10), np.arange(100, 109))
    write_split(tmp_path / "s.parquet", split, {"dataset": "x", "sources": {"f": "abc"}})
    back, metadata = read_split(tmp_path / "s.parquet")
    assert back.images.dtype == np.uint8 and np.array_equal(back.images, split.images)
    for column in ("labels", "index"):
        assert np.array_equal(getattr(back, column), getattr(split, column)), column
    assert metadata == {"dataset": "x", "sources": {"f": "abc"}, "image_shape": [3, 5, 5], "rows": 9}


def test_files_that_are_not_prepared_splits_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"train.parquet: no such file; the prepare stage writes it"):
        read_split(tmp_path / "train.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match=r"junk.parquet: not a readable Parquet file"):
        read_split(tmp_path / "junk.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [b"x"]}), tmp_path / "other.parquet")
    with pytest.raises(DataFormatError, match=r"other.parquet: not a prepared split: no columns \['label'"):
        read_split(tmp_path / "other.parquet")


def test_the_same_parameters_give_byte_identical_files(tmp_path: Path) -> None:
    config = DatasetConfig(name="digits", validation_size=180, test_size=180)
    prepare_dataset(config, tmp_path / "a", tmp_path / "raw")
    prepare_dataset(config, tmp_path / "b", tmp_path / "raw")
    for name in ("train.parquet", "validation.parquet", "test.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    split, metadata = read_split(tmp_path / "a" / "train.parquet")
    assert metadata["dataset"] == "digits" and metadata["image_shape"] == [1, 8, 8]
    assert metadata["sources"] == {"digits.csv.gz": metadata["sources"]["digits.csv.gz"]}
    assert len(metadata["sources"]["digits.csv.gz"]) == 64 and split.images.max() == 255


@pytest.mark.parametrize("name", ["mnist", "svhn", "smallnorb"])
def test_each_raw_format_prepares_end_to_end(tmp_path: Path, name: str) -> None:
    root = tmp_path / "raw"
    if name == "mnist":
        write_mnist_folder(root, train=80, test=20)
        config, shape = DatasetConfig(name=name, root=str(root), validation_size=20, labels=20), (1, 28, 28)
    elif name == "svhn":
        for split, n in (("train", 60), ("test", 20)):
            write_svhn(root / f"{split}_32x32.mat", fake_images(n, 3, 32), balanced_labels(n, 10) + 1)
        config, shape = DatasetConfig(name=name, root=str(root), validation_size=20, labels=10), (3, 32, 32)
    else:
        write_smallnorb_folder(root, train=40, test=10)
        config, shape = DatasetConfig(name=name, root=str(root), validation_size=10, labels=10, image_size=6), (1, 6, 6)
    summary = prepare_dataset(config, tmp_path / name, tmp_path / "download")
    for split in ("train", "validation", "test"):
        data, metadata = read_split(tmp_path / name / f"{split}.parquet")
        assert data.images.shape[1:] == shape and metadata["split"] == split
        assert summary["splits"][split]["count"] == len(data)
    assert (tmp_path / name / "examples.png").stat().st_size > 0
    assert not (tmp_path / "download").exists(), "a local root is read, never downloaded into"


def test_a_run_that_fails_half_way_keeps_the_previous_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = DatasetConfig(name="digits", validation_size=180, test_size=180)
    prepare_dataset(config, tmp_path / "digits", tmp_path / "raw")
    before = {p.name: p.read_bytes() for p in (tmp_path / "digits").iterdir()}
    import pixelgan.data.prepare as prepare

    real_write = prepare.write_split

    def fail_on_test(path: Path, *args: object) -> None:
        if Path(path).name == "test.parquet":
            raise OSError("disk full")
        real_write(path, *args)

    monkeypatch.setattr(prepare, "write_split", fail_on_test)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180, seed=1), tmp_path / "digits", tmp_path / "raw")
    assert {p.name: p.read_bytes() for p in (tmp_path / "digits").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"], "no partial folder is left behind"
