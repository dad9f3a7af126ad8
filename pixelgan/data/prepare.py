"""Prepare a data set: read its source, split it, and write the files every later stage reads.

The whole output folder is built beside its final place and renamed into it, so a run that
dies half-way leaves either the previous complete folder or none, never a mixture.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.utils import save_image

from pixelgan.config import DatasetConfig
from pixelgan.data.parquet import write_split
from pixelgan.data.sources import RawData, load_source
from pixelgan.data.splits import Split, make_splits
from pixelgan.io import atomic_path, write_json

EXAMPLES_PER_CLASS = 10


def summarise(config: DatasetConfig, splits: dict[str, Split], classes: int) -> dict[str, Any]:
    """Counts per split and class, for ``dvc metrics show``."""
    return {
        "dataset": config.name,
        "image_shape": list(splits["train"].images.shape[1:]),
        "splits": {
            name: {
                "count": len(split),
                "per_class": {str(c): int((split.labels == c).sum()) for c in range(classes)},
            }
            for name, split in splits.items()
        },
    }


def save_examples(path: Path, split: Split, classes: int) -> None:
    """A grid with one row of examples per class."""
    rows = [split.images[split.labels == c][:EXAMPLES_PER_CLASS] for c in range(classes)]
    grid = torch.from_numpy(np.concatenate(rows)).float() / 255
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png", nrow=EXAMPLES_PER_CLASS, padding=1, pad_value=0.5)


def write_prepared(out_dir: Path, config: DatasetConfig, raw: RawData) -> dict[str, Any]:
    splits = make_splits(raw, config)
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for name, split in splits.items():
            metadata = {
                "dataset": config.name,
                "split": name,
                "seed": config.seed,
                "classes": raw.classes,
                "config": config.prepared_settings(),
                "sources": raw.sources,
            }
            write_split(partial / f"{name}.parquet", split, metadata)
        save_examples(partial / "examples.png", splits["train"], raw.classes)
        summary = summarise(config, splits, raw.classes)
        write_json(partial / "summary.json", summary)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    partial.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return summary


def prepare_dataset(config: DatasetConfig, out_dir: Path, raw_dir: Path) -> dict[str, Any]:
    """Write ``out_dir``/{train,validation,test}.parquet, summary.json and examples.png."""
    return write_prepared(Path(out_dir), config, load_source(config, Path(raw_dir)))
