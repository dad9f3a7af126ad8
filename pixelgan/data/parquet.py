"""The Parquet files that the prepare stage writes and every later stage reads.

One file per split. Columns: ``image`` (fixed-size binary, the uint8 C x H x W bytes),
``label`` (int64) and ``index`` (the row in the source file, int64).
The schema's metadata, under the key ``pixelgan``, holds JSON with the image shape, the data
set, the split, the seed, the dataset config and the sha256 of every source file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pixelgan.config import DatasetConfig, ImageConfig
from pixelgan.data.formats import DataFormatError
from pixelgan.data.splits import Split
from pixelgan.io import atomic_path

METADATA_KEY = b"pixelgan"
COLUMNS = ("image", "label", "index")
T = TypeVar("T")


def split_table(split: Split, metadata: dict[str, Any]) -> pa.Table:
    n, *shape = split.images.shape
    width = int(np.prod(shape))
    images = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(np.ascontiguousarray(split.images).tobytes())]
    )
    table = pa.table({
        "image": images,
        "label": pa.array(split.labels, pa.int64()),
        "index": pa.array(split.index, pa.int64()),
    })
    described = metadata | {"image_shape": shape, "rows": n}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(described, sort_keys=True)})


def write_split(path: str | os.PathLike[str], split: Split, metadata: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(split_table(split, metadata), tmp, compression="zstd")


def _open(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, with a missing or unreadable file reported by name."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; the prepare stage writes it (dvc repro prepare)")
    try:
        return read(path)
    except (pa.ArrowException, OSError) as error:
        raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from error


def _prepared_metadata(path: Path, schema: pa.Schema) -> dict[str, Any]:
    """The metadata of one of our splits, refusing a file that is not one."""
    missing = [c for c in COLUMNS if c not in schema.names]
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if missing or raw is None:
        what = f"columns {missing}" if missing else f"the {METADATA_KEY.decode()!r} schema metadata"
        raise DataFormatError(f"{path}: not a prepared split: no {what}")
    return json.loads(raw)


def read_metadata(path: str | os.PathLike[str], dataset: DatasetConfig | None = None) -> dict[str, Any]:
    """A prepared split's metadata, from its footer alone (no image is read); with
    ``dataset``, checked to come from its settings (``check_prepared_from``)."""
    path = Path(path)
    metadata = _prepared_metadata(path, _open(path, pq.read_schema))
    if dataset is not None:
        check_prepared_from(path, metadata, dataset)
    return metadata


def check_prepared_from(path: Path, metadata: dict[str, Any], dataset: DatasetConfig) -> None:
    """Refuse a split prepared with other data set settings than ``dataset``'s, naming each
    on both sides: a run would otherwise train on one split and record another."""
    had, wanted = metadata.get("config", {}), dataset.prepared_settings()
    if changed := [f"dataset.{key} {had.get(key)!r} there, {value!r} now"
                   for key, value in sorted(wanted.items()) if had.get(key) != value]:
        raise DataFormatError(
            f"{path} was prepared with other settings ({'; '.join(changed)}): prepare it again with "
            "these (dvc repro prepare, after setting them in params.yaml; python -m pixelgan prepares "
            "a folder that is missing), or set paths.data to another folder"
        )


def read_split(path: str | os.PathLike[str], dataset: DatasetConfig | None = None) -> tuple[Split, dict[str, Any]]:
    """Read one split back, checking the file is one of ours (and with ``dataset``, that it
    was prepared with its settings); errors name the file."""
    path = Path(path)
    table = _open(path, pq.read_table)
    metadata = _prepared_metadata(path, table.schema)
    if dataset is not None:
        check_prepared_from(path, metadata, dataset)
    shape = tuple(metadata["image_shape"])
    column = table.column("image").combine_chunks()
    width = int(np.prod(shape))
    if column.type != pa.binary(width):
        raise DataFormatError(f"{path}: image column is {column.type}, not {width}-byte images of shape {shape}")
    images = np.frombuffer(column.buffers()[1], np.uint8, count=len(column) * width, offset=column.offset * width)
    split = Split(  # copies: Arrow's buffers are read-only
        images.reshape(len(column), *shape).copy(),
        table.column("label").to_numpy().copy(),
        table.column("index").to_numpy().copy(),
    )
    return split, metadata


def training_rows(path: str | os.PathLike[str]) -> int:
    """How many images a prepared split holds, from its Parquet footer (no image is read)."""
    return _open(Path(path), lambda found: pq.ParquetFile(found).metadata.num_rows)


@dataclass(frozen=True)
class Splits:
    """The prepared splits of one data set (uint8 images [N, C, H, W], labels); ``test`` is
    None where only training reads them, so the test split never reaches a trainer."""

    train: Split
    validation: Split
    test: Split | None

    @property
    def image(self) -> ImageConfig:
        return ImageConfig(*self.train.images.shape[1:])


def read_prepared(folder: Path, test: bool = True, dataset: DatasetConfig | None = None) -> Splits:
    """The prepare stage's Parquet splits in ``folder`` (data/mnist, say); ``test=False``
    leaves the test split unread (training). With ``dataset``, splits prepared with other
    settings are refused by name."""
    train, validation = (read_split(folder / f"{name}.parquet", dataset)[0] for name in ("train", "validation"))
    return Splits(train, validation, read_split(folder / "test.parquet", dataset)[0] if test else None)
