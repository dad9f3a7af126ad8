"""Scores of a trained model: the posterior over categories, Table 1's scores, likelihood
units, Fréchet distance (the clustering rules are ``pixelgan.clusters``), and two readings of
what a categorical code holds (``code_split_nll``, ``label_alignment``)."""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from pixelgan.clusters import (
    category_diagnostics,
    classification_error,
    clustering_error,
    clustering_report,
    ink,
    labels_by_majority,
)
from pixelgan.data import ImageDataset, data_form
from pixelgan.data.splits import Split
from pixelgan.decoder import negative_log_likelihood
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


@torch.no_grad()
def code_split_nll(model: PixelGAN, test: Split, batch_size: int = 500, seed: int = 0) -> dict[str, float]:
    """Test NLL (nats per image) given each image's own ``categorical_gaussian`` code, and
    given it with the categories, the style or both swapped for the next image's: each rise
    over the own code is what the decoder reads from that part (``engine.evaluate``'s
    ``nll_other_code``, one part at a time). The encoder's noise is drawn from ``seed`` on a
    forked generator, so a model's figures depend on nothing that ran before, and change nothing after."""
    if model.config.prior.kind != "categorical_gaussian":
        raise ValueError(f"prior {model.config.prior.kind!r}; this splits a categorical_gaussian code")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _code_split_nll(model.eval(), test, batch_size)


def _code_split_nll(model: PixelGAN, test: Split, batch_size: int) -> dict[str, float]:
    categories = model.config.prior.categories
    dataset = ImageDataset(torch.from_numpy(test.images), torch.from_numpy(test.labels), likelihood=model.config.decoder.likelihood)
    totals = dict.fromkeys(("own code", "other categories", "other style", "other code"), 0.0)
    for batch in DataLoader(dataset, batch_size=batch_size):
        code = model.encoder(batch.images).code
        other = code.roll(1, dims=0)
        swapped = {
            "own code": code,
            "other categories": torch.cat([other[:, :categories], code[:, categories:]], dim=1),
            "other style": torch.cat([code[:, :categories], other[:, categories:]], dim=1),
            "other code": other,
        }
        for name, z in swapped.items():
            totals[name] += float(negative_log_likelihood(model.decoder(batch.images, z), batch.images).sum())
    return {name: total / len(test) for name, total in totals.items()}


@torch.no_grad()
def label_alignment(
    model: PixelGAN, train: Split, labelled: np.ndarray, validation: Split, test: Split, *, draws: int = 8, seed: int = 0
) -> dict[str, object]:
    """Whether a semi-supervised head's errors are bad clusters or good clusters under the
    wrong names: the head's test error, the test error of its categories under their
    commonest validation labels (what the clusters could give, not a score of the method),
    how many categories those labels name otherwise than the head, how many of the
    ``labelled`` training rows the head gets right, and its three commonest test errors as
    (true, said, count). The encoder's noise is drawn from ``seed`` on a forked generator,
    so a model's figures depend on nothing that ran before, and change nothing after."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _label_alignment(model.eval(), train, labelled, validation, test, draws)


def _label_alignment(model: PixelGAN, train: Split, labelled: np.ndarray, validation: Split, test: Split,
                     draws: int) -> dict[str, object]:
    likelihood = model.config.decoder.likelihood
    (val_images, val_labels), (test_images, test_labels), (train_images, train_labels) = (
        (torch.from_numpy(split.images), torch.from_numpy(split.labels)) for split in (validation, test, train))
    q_val, q_test = (posterior_categories(model, data_form(images, likelihood), draws) for images in (val_images, test_images))
    majority = labels_by_majority(q_val, val_labels)
    head_on_labelled = model.encoder(data_form(train_images[labelled], likelihood)).logits.argmax(dim=1)
    said, true = q_test.argmax(dim=1), test_labels
    wrong = said != true
    confusions = Counter(zip(true[wrong].tolist(), said[wrong].tolist())).most_common(3)
    return {
        "head error %": 100 * classification_error(q_test, test_labels),
        "majority-label error %": 100 * clustering_error(q_test, test_labels, majority),
        "categories renamed": int((majority != torch.arange(len(majority))).sum()),
        "categories": len(majority),
        "labelled rows right": int((head_on_labelled == train_labels[labelled]).sum()),
        "labelled rows": len(labelled),
        "commonest errors": [(true_digit, said_digit, count) for (true_digit, said_digit), count in confusions],
    }


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

