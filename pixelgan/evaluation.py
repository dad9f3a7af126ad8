"""Scores of a trained model: clustering and classification error, likelihood units, Fréchet distance.

Clustering follows the AAE's rule, which the PixelGAN paper uses (Table 1): for each cluster
i, the one validation example that maximises q(z_i | x) gives its label to the whole
cluster, and the test error of argmax_i q(z_i | x) under those labels is reported. It is
stricter than a majority vote (also reported, with its name) or a Hungarian matching.
Scores are any [N, K] array that ranks clusters, so k-means (negative distances) is scored
by the same code.

Choices (a set-up, epochs, a rate) are made on a validation score, never on the test split:
the same rule inside the validation split, the clusters labelled by its even rows and the
error counted on its odd rows (``val_error_*``). The test labels enter nothing but the test
error.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from pixelgan.data import ImageDataset, data_form
from pixelgan.data.splits import Split
from pixelgan.engine import evaluate
from pixelgan.model import PixelGAN


@torch.no_grad()
def posterior_categories(model: PixelGAN, images: Tensor, draws: int = 8, batch_size: int = 500) -> Tensor:
    """q(z_i | x) [N, K] for data-form images, averaged over ``draws`` noise inputs.

    q(z|x) is implicit (z = f(x, n)): its category probabilities are the softmax averaged
    over draws of n. A deterministic encoder needs one draw.
    """
    categories = model.config.prior.categories
    if not categories:
        raise ValueError(f"prior.kind={model.config.prior.kind} has no categories to cluster with")
    model.eval()
    draws = draws if model.config.encoder.stochastic else 1
    device = next(model.parameters()).device

    def probabilities(x: Tensor) -> Tensor:
        logits = model.encoder(x).logits
        assert logits is not None  # the prior has categories (checked above)
        return logits.softmax(dim=1)

    chunks = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        chunks.append((sum(probabilities(x) for _ in range(draws)) / draws).cpu())
    return torch.cat(chunks)


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
    """The validation split's two halves: rows that label the clusters (even), rows scored (odd)."""
    rows = torch.arange(n)
    return rows[0::2], rows[1::2]


def clustering_report(val_scores: Tensor, val_labels: Tensor, test_scores: Tensor, test_labels: Tensor) -> dict[str, float]:
    """Test error under the paper's rule and under the majority vote, the clusters' labels
    taken from the validation split; the same two errors within the validation split (its
    even rows label, its odd rows are scored), to choose by; how many clusters the test set
    uses."""
    exemplars, scored = validation_halves(len(val_scores))
    half_scores, half_labels = val_scores[exemplars], val_labels[exemplars]
    return {
        "error_paper_rule": clustering_error(test_scores, test_labels, labels_by_best_example(val_scores, val_labels)),
        "error_majority": clustering_error(test_scores, test_labels, labels_by_majority(val_scores, val_labels)),
        "val_error_paper_rule": clustering_error(val_scores[scored], val_labels[scored], labels_by_best_example(half_scores, half_labels)),
        "val_error_majority": clustering_error(val_scores[scored], val_labels[scored], labels_by_majority(half_scores, half_labels)),
        "clusters_used": int(test_scores.argmax(1).unique().numel()),
    }


def category_scores(
    model: PixelGAN, validation: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], draws: int, semi_supervised: bool
) -> dict[str, object]:
    """Table 1's score of a model with categories, from (data-form images, labels) splits:
    the categorical head's test error for a semi-supervised model, else the clustering error;
    each beside its validation figure, to choose by."""
    q_val = posterior_categories(model, validation[0], draws)
    q_test = posterior_categories(model, test[0], draws)
    if semi_supervised:
        return {"val_error": classification_error(q_val, validation[1]), "test_error": classification_error(q_test, test[1])}
    return {"clustering": clustering_report(q_val, validation[1], q_test, test[1])}


@torch.no_grad()
def score_model(
    model: PixelGAN, validation: Split, test: Split, *, draws: int, semi_supervised: bool, seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Every score of a trained model on the test split, each beside its validation figure:
    the NLL (own code, another image's code) in the field's units, and with categories Table
    1's score (``category_scores``). The encoder draws its noise from torch's global generator,
    so that is seeded: the same model scores the same on every call."""
    torch.manual_seed(seed)
    model.eval()
    image, likelihood = model.config.image, model.config.decoder.likelihood
    test_images, test_labels = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    nll = evaluate(model, DataLoader(ImageDataset(test_images, test_labels, likelihood=likelihood), batch_size=250), device)
    scores: dict[str, Any] = likelihood_units(nll["nll"], image.channels * image.height * image.width, likelihood == "bernoulli")
    scores["nll_other_code_nats"] = nll["nll_other_code"]
    if model.config.prior.categories:
        splits = ((data_form(torch.from_numpy(split.images), likelihood), torch.from_numpy(split.labels))
                  for split in (validation, test))
        scores |= category_scores(model, *splits, draws, semi_supervised)
    return scores


def likelihood_units(nats_per_image: float, dims: int, binary: bool) -> dict[str, float]:
    """NLL in the field's units: nats per image for binarised data, bits per dimension for
    8-bit data (``dims`` = C * H * W)."""
    if binary:
        return {"nll_nats": nats_per_image}
    return {"nll_bits_per_dim": nats_per_image / (dims * math.log(2))}


def _sqrt_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] (as in FID).

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64, through
    symmetric square roots (eigh), so no complex parts from a general matrix square root.
    """
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)

