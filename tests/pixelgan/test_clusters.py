"""What the categories split by: NMI, ink terciles, explained variance, the diagnostics together."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from pixelgan.clusters import (
    category_diagnostics,
    explained_share,
    kmeans_baseline,
    ink,
    normalized_mutual_information,
    terciles,
    validation_error,
)


def test_nmi_is_scikit_learns_on_any_labellings() -> None:
    generator = torch.Generator().manual_seed(0)
    for size, a_values, b_values in ((50, 3, 4), (200, 10, 30), (7, 2, 2)):
        a = torch.randint(a_values, (size,), generator=generator)
        b = torch.randint(b_values, (size,), generator=generator)
        assert normalized_mutual_information(a, b) == pytest.approx(normalized_mutual_info_score(a.numpy(), b.numpy()))


def test_nmi_is_one_for_a_renaming_and_zero_for_independent_labellings() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert normalized_mutual_information(labels, labels * 7 + 3) == pytest.approx(1.0)
    a, b = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])  # every pair once
    assert normalized_mutual_information(a, b) == pytest.approx(0.0)


def test_terciles_cut_a_sample_into_thirds() -> None:
    assert terciles(torch.arange(9.0)[torch.randperm(9)]).sort().values.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_ink_counts_the_pixels_on() -> None:
    images = torch.zeros(2, 1, 4, 4)
    images[1, 0, :2] = 1.0
    assert ink(images).tolist() == [0.0, 8.0]
    assert ink(torch.full((1, 1, 2, 2), 255, dtype=torch.long)).tolist() == [4.0]


def test_the_explained_share_is_one_when_groups_fix_the_values_and_zero_when_they_share_a_mean() -> None:
    groups = torch.tensor([0, 0, 1, 1])
    assert explained_share(torch.tensor([1.0, 1.0, 5.0, 5.0]), groups) == pytest.approx(1.0)
    assert explained_share(torch.tensor([1.0, 5.0, 1.0, 5.0]), groups) == pytest.approx(0.0)


def one_hot(categories: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(categories, k).double()


def test_categories_that_follow_the_digit_and_categories_that_follow_the_ink_are_told_apart() -> None:
    labels = torch.arange(60) % 3
    drawn = torch.arange(60.0)  # the ink rises through the split, across the labels
    by_digit = category_diagnostics(one_hot(labels, 3), labels, drawn)
    by_ink = category_diagnostics(one_hot(terciles(drawn), 3), labels, drawn)
    assert by_digit["nmi_label"] == pytest.approx(1.0) and by_digit["nmi_ink"] == pytest.approx(0.0, abs=0.01)
    assert by_ink["nmi_ink"] == pytest.approx(1.0) and by_ink["nmi_label"] == pytest.approx(0.0, abs=0.01)
    assert by_ink["ink_explained"] > 0.85 > by_digit["ink_explained"]
    assert validation_error(one_hot(labels, 3), labels) == 0.0


def test_the_batch_marginal_entropy_and_the_train_eval_agreement() -> None:
    categories = torch.arange(8) % 4  # every batch of 4 uses each category once
    probs = one_hot(categories, 4)
    diagnostics = category_diagnostics(probs, categories, torch.arange(8.0), train_probs=probs.roll(1, dims=0), batch_size=4)
    assert diagnostics["batch_marginal_entropy"] == pytest.approx(math.log(4))
    assert diagnostics["train_eval_agreement"] == 0.0 and diagnostics["categories_used"] == 4
    collapsed = category_diagnostics(one_hot(torch.zeros(8, dtype=torch.long), 4), categories, torch.arange(8.0), probs)
    assert collapsed["batch_marginal_entropy"] == pytest.approx(0.0) and collapsed["train_eval_agreement"] == 0.25


def test_k_means_learns_its_clusters_on_the_training_split() -> None:
    """Digits told apart by pixel 0 alone. The test images also carry a block of 11 pixels, on
    or off regardless of the digit: k-means fitted on them would split by the block (error
    0.5); fitted on the training images, which lack it, it splits by the digit (error 0)."""
    import numpy as np

    from pixelgan.data.parquet import Splits
    from pixelgan.data.splits import Split

    def split(labels: list[int], block: list[int]) -> Split:
        images = np.zeros((len(labels), 1, 3, 4), np.uint8)
        images[:, 0, 0, 0] = 255 * np.array(labels)
        images.reshape(len(labels), -1)[:, 1:] = 255 * np.array(block)[:, None]
        return Split(images, np.array(labels), np.arange(len(labels)))

    train, validation = split([0, 1] * 10, [0] * 20), split([0, 1, 1, 0] * 3, [0] * 12)
    test = split([0, 1] * 4, [1, 1, 0, 0] * 2)
    report = kmeans_baseline(Splits(train, validation, test), 2, restarts=3, seed=0)
    assert report["error_paper_rule"] == 0.0 and report["val_error_paper_rule"] == 0.0
