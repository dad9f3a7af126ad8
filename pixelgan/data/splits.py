"""Train / validation / test splits and the labelled subset, deterministic given a seed.

A carved split (the test split of a set without an official one, and the validation split of
all but MNIST) is stratified by class with scikit-learn, so class proportions match; MNIST's
validation split is the last rows of its training set, the classic 50,000 / 10,000 split.

The labelled images of a semi-supervised run are drawn from the training split by the run's
own seed (``labelled_subset``), not fixed by the prepare stage, so seeds differ in their
labels as well as in their weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelgan.config import ConfigError, DatasetConfig
from pixelgan.data.sources import RawData


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    index: np.ndarray  # int64 [N]: the row in the source file it came from

    def __len__(self) -> int:
        return len(self.labels)


def _carve(rows: np.ndarray, labels: np.ndarray, size: int, seed: int, option: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (kept, carved), ``size`` of them carved, stratified by label."""
    if size >= len(rows):
        raise ConfigError(f"{option}={size} leaves no training images (only {len(rows)} to split)")
    from sklearn.model_selection import train_test_split  # here: ~6 s of import every Ray worker would pay

    try:
        kept, carved = train_test_split(rows, test_size=size, stratify=labels, random_state=seed)
    except ValueError as error:
        raise ConfigError(f"{option}={size}: cannot be split by class ({error})") from error
    return np.sort(kept), np.sort(carved)


def labelled_subset(labels: np.ndarray, count: int, classes: int, seed: int, option: str = "dataset.labels") -> np.ndarray:
    """Rows of ``count // classes`` images of every class, sorted: the first of each class in
    one order drawn from ``seed``, so that within a seed 20 labels are among 50, among 100.
    ``option`` names the setting in errors."""
    if count < 0 or count % classes:
        raise ConfigError(f"{option}={count} must be a multiple of the {classes} classes (0 or more), so that every class gets as many labels")
    per_class = count // classes
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == label][:per_class] for label in range(classes)]
    if short := [label for label, rows in enumerate(chosen) if len(rows) < per_class]:
        worst = min(short, key=lambda label: len(chosen[label]))
        raise ConfigError(
            f"{option}={count} needs {per_class} labelled images of each class, but the training "
            f"images have only {len(chosen[worst])} of class {worst}"
        )
    return np.sort(np.concatenate(chosen))


def labelled_rows(labels: np.ndarray, config: DatasetConfig, seed: int) -> np.ndarray:
    """The ``dataset.labels`` rows a semi-supervised run with ``seed`` learns the labels of."""
    return labelled_subset(labels, config.labels, config.classes, seed)


def make_splits(raw: RawData, config: DatasetConfig) -> dict[str, Split]:
    rows = np.arange(len(raw.train_labels))
    if raw.test_images is None:
        rows, test_rows = _carve(rows, raw.train_labels, config.test_size, config.seed, "dataset.test_size")
        test = Split(raw.train_images[test_rows], raw.train_labels[test_rows], test_rows)
    else:
        test = Split(raw.test_images, raw.test_labels, np.arange(len(raw.test_labels)))
    if raw.validation == "tail":
        if config.validation_size >= len(rows):
            raise ConfigError(f"dataset.validation_size={config.validation_size} leaves no training images")
        rows, validation_rows = rows[: -config.validation_size], rows[-config.validation_size :]
    else:
        rows, validation_rows = _carve(
            rows, raw.train_labels[rows], config.validation_size, config.seed + 1, "dataset.validation_size"
        )
    train_labels = raw.train_labels[rows]
    return {
        "train": Split(raw.train_images[rows], train_labels, rows),
        "validation": Split(raw.train_images[validation_rows], raw.train_labels[validation_rows], validation_rows),
        "test": test,
    }
