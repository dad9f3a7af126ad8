"""Clusters of a categorical code: the label each takes, their error, and what they split by.

Clustering follows the AAE's rule, which the PixelGAN paper uses (Table 1): for each cluster
i, the one validation example that maximises q(z_i | x) gives its label to the whole
cluster, and the test error of argmax_i q(z_i | x) under those labels is reported. It is
stricter than a majority vote (also reported, with its name) or a Hungarian matching.
Scores are any [N, K] array that ranks clusters, so k-means (negative distances) is scored
by the same code.

Choices (a set-up, epochs, a rate) are made on a validation score, never on the test split:
the same rule inside the validation split, the clusters labelled by one random half of its
rows and the error counted on the other (``val_error_*``). The test labels enter nothing but
the test error.

A categorical code is meant to take the content (the digit) and leave the style to the
PixelCNN. ``category_diagnostics`` measures which it took: the normalised mutual
information of the categories with the labels and with the amount of ink (an image's pixels
on, in terciles), and the share of the ink's variance that the categories explain.
"""

from __future__ import annotations

from collections.abc import Callable

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # the k-means baseline's input; the rules themselves need no data module
    from pixelgan.data.parquet import Splits
    from pixelgan.data.splits import Split


def labels_by_best_example(scores: Tensor, labels: Tensor) -> Tensor:
    """The paper's rule: cluster i takes the label of the example with the highest score i. [K]"""
    return labels[scores.argmax(dim=0)]


def labels_by_majority(scores: Tensor, labels: Tensor) -> Tensor:
    """Cluster i takes the commonest label among the examples assigned to it; an empty
    cluster falls back to the paper's rule. [K]"""
    assigned = scores.argmax(dim=1)
    cluster_labels = labels_by_best_example(scores, labels).clone()
    for cluster in assigned.unique():
        cluster_labels[cluster] = labels[assigned == cluster].mode().values
    return cluster_labels


def clustering_error(scores: Tensor, labels: Tensor, cluster_labels: Tensor) -> float:
    """Error of predicting ``cluster_labels[argmax_i scores]`` for each row of ``scores``."""
    return float((cluster_labels[scores.argmax(dim=1)] != labels).double().mean())


def classification_error(scores: Tensor, labels: Tensor) -> float:
    """Error of argmax over classes (the semi-supervised head, a classifier)."""
    return float((scores.argmax(dim=1) != labels).double().mean())


def validation_halves(n: int) -> tuple[Tensor, Tensor]:
    """The validation split's two halves, drawn at random by a fixed seed, the same on every
    call: rows that label the clusters, rows scored. Not even and odd rows: MNIST's training
    rows (its validation split's source) alternate between two groups of writers, and scoring
    the odd rows alone put the validation error 4 points under the test error (docs/results.md)."""
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return rows[: n // 2].sort().values, rows[n // 2:].sort().values


def validation_error(scores: Tensor, labels: Tensor, rule: Callable[[Tensor, Tensor], Tensor] = labels_by_best_example) -> float:
    """The clustering error within a validation split: one half of its rows names the
    clusters by ``rule``, the other half is scored (``validation_halves``)."""
    exemplars, scored = validation_halves(len(scores))
    return clustering_error(scores[scored], labels[scored], rule(scores[exemplars], labels[exemplars]))


def clustering_report(val_scores: Tensor, val_labels: Tensor, test_scores: Tensor, test_labels: Tensor) -> dict[str, float]:
    """Test error under the paper's rule and under the majority vote, the clusters' labels
    taken from the validation split; the same two errors within the validation split, to
    choose by (``validation_error``); how many clusters the test set uses."""
    return {
        "error_paper_rule": clustering_error(test_scores, test_labels, labels_by_best_example(val_scores, val_labels)),
        "error_majority": clustering_error(test_scores, test_labels, labels_by_majority(val_scores, val_labels)),
        "val_error_paper_rule": validation_error(val_scores, val_labels, labels_by_best_example),
        "val_error_majority": validation_error(val_scores, val_labels, labels_by_majority),
        "clusters_used": int(test_scores.argmax(1).unique().numel()),
    }


def batch_marginal_entropy(probs: Tensor) -> Tensor:
    """H(mean_x q(y|x)) in nats over a batch's rows [B, K]: ln K when the batch uses every
    category equally, 0 when it puts every image in one."""
    marginal = probs.mean(dim=0)
    return -(marginal * marginal.clamp_min(1e-12).log()).sum()


def ink(images: Tensor) -> Tensor:
    """How much of each data-form image [N, C, H, W] is drawn: its pixels on (a Bernoulli
    image's ones, an 8-bit image's intensities / 255). [N] float64"""
    drawn = images.double().flatten(1).sum(dim=1)
    return drawn if images.is_floating_point() else drawn / 255.0


def terciles(values: Tensor) -> Tensor:
    """Each value's third of the sample (0, 1, 2), cut at its 1/3 and 2/3 quantiles. [N] int64"""
    cuts = torch.quantile(values.double(), torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    return torch.bucketize(values.double(), cuts, right=True)


def normalized_mutual_information(a: Tensor, b: Tensor) -> float:
    """I(a; b) / mean(H(a), H(b)) of two labellings [N] (scikit-learn's default normalisation,
    written here so that a Ray worker does not import scikit-learn every epoch): 1 when each
    determines the other, 0 when they are independent; 1 for two constant labellings."""
    _, a = a.unique(return_inverse=True)
    _, b = b.unique(return_inverse=True)
    joint = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    joint.index_put_((a, b), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)

    def entropy(p: Tensor) -> Tensor:
        return -(p[p > 0] * p[p > 0].log()).sum()

    nonzero = joint > 0
    mutual = (joint[nonzero] * (joint[nonzero] / (pa[:, None] * pb[None, :])[nonzero]).log()).sum()
    mean_entropy = (entropy(pa) + entropy(pb)) / 2
    return 1.0 if mean_entropy <= 0 else float((mutual / mean_entropy).clamp(0, 1))


def explained_share(values: Tensor, groups: Tensor) -> float:
    """The share of ``values``' variance that ``groups`` explain (the correlation ratio
    squared): between-group sum of squares over the total; 0 for a constant ``values``."""
    values = values.double()
    total = (values - values.mean()).square().sum()
    if total <= 0:
        return 0.0
    _, groups = groups.unique(return_inverse=True)
    sums = torch.zeros(int(groups.max()) + 1, dtype=torch.float64).index_add_(0, groups, values)
    counts = torch.bincount(groups).double()
    between = (counts * (sums / counts - values.mean()).square()).sum()
    return float(between / total)


def category_diagnostics(
    probs: Tensor, labels: Tensor, drawn: Tensor, train_probs: Tensor | None = None, batch_size: int = 64
) -> dict[str, float]:
    """What the categories of a validation split split by, from q(y|x) [N, K] (the scores'
    eval-mode probabilities), the labels [N] and the images' ``ink`` [N]: NMI with the labels
    and with the ink terciles, the ink's variance they explain, the entropy of q(y|x)
    averaged over each run of ``batch_size`` rows (64: the cpu profile's training batch, the
    same whatever a run's batch, so that runs compare),
    how many categories some image falls in; with ``train_probs`` (the same images through
    the encoder in training mode) the share of images whose category is the same in both."""
    category = probs.argmax(dim=1)
    marginal = torch.stack([batch_marginal_entropy(chunk.double()) for chunk in probs.split(batch_size)])
    diagnostics = {
        "nmi_label": normalized_mutual_information(category, labels),
        "nmi_ink": normalized_mutual_information(category, terciles(drawn)),
        "ink_explained": explained_share(drawn, category),
        "batch_marginal_entropy": float(marginal.mean()),
        "categories_used": float(category.unique().numel()),
    }
    if train_probs is not None:
        diagnostics["train_eval_agreement"] = float((train_probs.argmax(dim=1) == category).double().mean())
    return diagnostics


def kmeans_baseline(splits: Splits, clusters: int, restarts: int, seed: int) -> dict[str, float]:
    """k-means on raw pixels with as many clusters, scored by the same rules (score: -distance)."""
    from sklearn.cluster import KMeans

    def pixels(split: Split) -> np.ndarray:
        return split.images.reshape(len(split), -1).astype(np.float32) / 255.0

    kmeans = KMeans(clusters, n_init=restarts, random_state=seed).fit(pixels(splits.train))
    scores, test_scores = (torch.from_numpy(-kmeans.transform(pixels(s))) for s in (splits.validation, splits.test))
    labels, test_labels = (torch.from_numpy(s.labels) for s in (splits.validation, splits.test))
    return clustering_report(scores, labels, test_scores, test_labels)
