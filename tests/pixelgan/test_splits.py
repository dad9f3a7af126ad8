"""Splits: sizes, stratification, the labelled subset, determinism, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgan.config import ConfigError, DatasetConfig
from pixelgan.data.sources import RawData
from pixelgan.data.splits import labelled_rows, labelled_subset, make_splits
from tests.formats import balanced_labels, fake_images


def raw(n: int = 1000, test: int | None = None, validation: str = "stratified") -> RawData:
    labels = np.random.default_rng(0).permutation(balanced_labels(n, 10))
    data = RawData(fake_images(n, 1, 4), labels, validation=validation)
    if test:
        data.test_images, data.test_labels = fake_images(test, 1, 4, seed=1), balanced_labels(test, 10)
    return data


def test_carved_splits_are_class_balanced_and_disjoint() -> None:
    splits = make_splits(raw(), DatasetConfig(validation_size=100, test_size=200, labels=50))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [700, 100, 200]
    for name, per_class in (("train", 70), ("validation", 10), ("test", 20)):
        assert np.bincount(splits[name].labels).tolist() == [per_class] * 10, name
    rows = np.concatenate([splits[s].index for s in ("train", "validation", "test")])
    assert sorted(rows.tolist()) == list(range(1000))
    assert np.array_equal(raw().train_labels[splits["train"].index], splits["train"].labels)


def test_each_seed_draws_its_own_class_balanced_labels_nested_by_count() -> None:
    labels = make_splits(raw(), DatasetConfig(validation_size=100, test_size=200))["train"].labels
    chosen = {(seed, count): labelled_subset(labels, count, 10, seed) for seed in (0, 1) for count in (20, 50)}
    for (seed, count), rows in chosen.items():
        assert len(set(rows)) == count and np.bincount(labels[rows], minlength=10).tolist() == [count // 10] * 10
    assert set(chosen[0, 20]) <= set(chosen[0, 50]) and set(chosen[1, 20]) <= set(chosen[1, 50])
    assert set(chosen[0, 50]) != set(chosen[1, 50]), "another seed, other labelled images"
    assert np.array_equal(labelled_subset(labels, 50, 10, 0), chosen[0, 50]), "the same seed, the same images"
    assert np.array_equal(labelled_rows(labels, DatasetConfig(labels=20), seed=1), chosen[1, 20]), "a run's, by dataset.labels"


def test_splits_depend_on_the_seed_alone() -> None:
    a = make_splits(raw(), DatasetConfig(seed=3, validation_size=100, test_size=200))
    b = make_splits(raw(), DatasetConfig(seed=3, validation_size=100, test_size=200))
    c = make_splits(raw(), DatasetConfig(seed=4, validation_size=100, test_size=200))
    for name in a:
        assert np.array_equal(a[name].index, b[name].index)
    assert not np.array_equal(a["test"].index, c["test"].index)


def test_an_official_test_split_is_kept_and_mnist_validates_on_its_last_rows() -> None:
    splits = make_splits(raw(600, test=100, validation="tail"), DatasetConfig(name="mnist", validation_size=100))
    assert np.array_equal(splits["validation"].index, np.arange(500, 600))
    assert np.array_equal(splits["test"].index, np.arange(100))
    assert len(splits["train"]) == 500


def test_label_counts_that_the_split_cannot_supply_fail_naming_the_option() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.labels=105 must be a multiple of the 10 classes"):
        DatasetConfig(labels=105)
    with pytest.raises(ConfigError, match=r"dataset\.labels=1000 needs 100 labelled images of each class, but the training images have only 70"):
        labelled_rows(make_splits(raw(), DatasetConfig(validation_size=100, test_size=200))["train"].labels,
                      DatasetConfig(labels=1000), seed=0)
    with pytest.raises(ConfigError, match=r"dataset\.test_size=1000 leaves no training images"):
        make_splits(raw(), DatasetConfig(test_size=1000))
    with pytest.raises(ConfigError, match=r"dataset\.name='cifar'"):
        DatasetConfig(name="cifar")


def test_labelled_subset_of_zero_is_empty() -> None:
    assert len(labelled_subset(balanced_labels(50, 10), 0, 10, seed=0)) == 0
