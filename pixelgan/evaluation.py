"""Scores of a trained model: the posterior over categories, Table 1's scores, likelihood
units, Fréchet distance (the clustering rules are ``pixelgan.clusters``)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from pixelgan.clusters import category_diagnostics, classification_error, clustering_report, ink
from pixelgan.data import ImageDataset, data_form
from pixelgan.data.splits import Split
from pixelgan.engine import evaluate, row_chunks, training_mode
from pixelgan.model import PixelGAN


@torch.no_grad()
def posterior_categories(
    model: PixelGAN, images: Tensor, draws: int = 8, batch_size: int = 500, training: bool = False
) -> Tensor:
    """q(z_i | x) [N, K] for data-form images, averaged over ``draws`` noise inputs; with
    ``training``, as the encoder computes it in training (``engine.training_mode``).

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
    with training_mode(model.encoder) if training else contextlib.nullcontext():
        for rows in row_chunks(len(images), batch_size):
            x = images[rows].to(device)
            chunks.append((sum(probabilities(x) for _ in range(draws)) / draws).cpu())
    return torch.cat(chunks)


def category_scores(
    model: PixelGAN, validation: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], draws: int, semi_supervised: bool
) -> dict[str, object]:
    """Table 1's score of a model with categories, from (data-form images, labels) splits:
    the categorical head's test error for a semi-supervised model, else the clustering error;
    each beside its validation figure, to choose by; and what the categories split by on
    the validation split (``clusters.category_diagnostics``)."""
    q_val = posterior_categories(model, validation[0], draws)
    q_test = posterior_categories(model, test[0], draws)
    diagnostics = category_diagnostics(q_val, validation[1], ink(validation[0]),
                                       posterior_categories(model, validation[0], draws, training=True))
    if semi_supervised:
        return {"val_error": classification_error(q_val, validation[1]), "test_error": classification_error(q_test, test[1]),
                "diagnostics": diagnostics}
    return {"clustering": clustering_report(q_val, validation[1], q_test, test[1]), "diagnostics": diagnostics}


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
    nll = evaluate(model, DataLoader(ImageDataset(test_images, test_labels, likelihood=likelihood), batch_size=250), device,
                   diagnose=False)
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

