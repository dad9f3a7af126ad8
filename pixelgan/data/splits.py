"""Train / validation / test splits and the labelled subset, deterministic given a seed.

A carved split (the test split of a set without an official one, and the validation split of
all but MNIST) is stratified by class with scikit-learn, so class proportions match; MNIST's
validation split is the last rows of its training set, the classic 50,000 / 10,000 split. The
labelled subset of the training split has the same number of rows in every class.
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
    labelled: np.ndarray  # bool [N]: in the labelled subset (training split only)

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


def labelled_subset(labels: np.ndarray, count: int, classes: int, seed: int) -> np.ndarray:
    """A boolean mask choosing ``count // classes`` rows of every class."""
    per_class = count // classes
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for label in range(classes):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise ConfigError(
                f"dataset.labels={count} needs {per_class} labelled images of each class, but "
                f"the training split has only {len(rows)} of class {label}"
            )
        mask[rng.choice(rows, per_class, replace=False)] = True
    return mask


def make_splits(raw: RawData, config: DatasetConfig) -> dict[str, Split]:
    rows = np.arange(len(raw.train_labels))
    if raw.test_images is None:
        rows, test_rows = _carve(rows, raw.train_labels, config.test_size, config.seed, "dataset.test_size")
        test = Split(raw.train_images[test_rows], raw.train_labels[test_rows], test_rows, np.zeros(len(test_rows), bool))
    else:
        test = Split(raw.test_images, raw.test_labels, np.arange(len(raw.test_labels)), np.zeros(len(raw.test_labels), bool))
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
        "train": Split(raw.train_images[rows], train_labels, rows, labelled_subset(train_labels, config.labels, raw.classes, config.seed)),
        "validation": Split(raw.train_images[validation_rows], raw.train_labels[validation_rows], validation_rows, np.zeros(len(validation_rows), bool)),
        "test": test,
    }
