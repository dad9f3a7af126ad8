"""A trained model's report: its scores, the quality of its samples and its figures.

Every caller (``python -m pixelgan``, the evaluate stage, the paper column's table) scores a
model with ``evaluate_model``, so each figure is computed one way; ``over_seeds`` then
summarises the replicates of a set-up (models that differ only in their seed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelgan.classifier import Classifier, sample_quality
from pixelgan.config import EvalConfig, RunSpec, run_identity
from pixelgan.data import data_form
from pixelgan.data.parquet import Splits
from pixelgan.data.splits import Split
from pixelgan.evaluation import score_model
from pixelgan.figures import model_figures, save_grid
from pixelgan.model import PixelGAN
from pixelgan.sampling import sample


def prior_sample_quality(model: PixelGAN, classifier: Classifier, test: Split, config: EvalConfig) -> dict[str, float]:
    """``eval.samples`` draws from the prior scored by the classifier against the test images,
    with the category purity of each category's draws for a categorical prior."""
    categories = model.config.prior.categories
    generator = torch.Generator().manual_seed(config.seed)
    z = model.prior.sample(config.samples, generator)
    samples = sample(model.decoder, z, generator)
    test_images = data_form(torch.from_numpy(test.images), model.config.decoder.likelihood)
    return sample_quality(classifier, samples, test_images, z[:, :categories].argmax(1) if categories else None)


def evaluate_model(
    model: PixelGAN, splits: Splits, config: EvalConfig, out: Path, *, semi_supervised: bool, prefix: str = "",
    classifier: Classifier | None = None, device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Score ``model`` (each test figure beside its validation figure), with a classifier the
    quality of its samples from the prior, and draw its figures as ``out/<prefix><figure>.png``;
    return the scores and the figures' images."""
    scores = score_model(model, splits.validation, splits.test, draws=config.posterior_draws,
                         semi_supervised=semi_supervised, seed=config.seed, device=device)
    if classifier is not None:
        scores["samples"] = prior_sample_quality(model, classifier, splits.test, config)
    validation_images = data_form(torch.from_numpy(splits.validation.images), model.config.decoder.likelihood)
    figures = model_figures(model, validation_images.to(device), config.figure_rows, config.figure_columns, config.seed)
    for name, images in figures.items():
        save_grid(images, out / f"{prefix}{name}.png", config.figure_columns)
    return scores, figures


HEADLINE = (("clustering", "val_error_paper_rule"), ("clustering", "error_paper_rule"), ("clustering", "error_majority"),
            ("val_error",), ("test_error",), ("nll_nats",))


def over_seeds(specs: dict[str, RunSpec], metrics: dict[str, Any]) -> dict[str, Any]:
    """Mean and std of the headline numbers over models that differ only in train.seed (by
    ``run_identity``) and trained as many epochs, keyed by the first of them (the paper
    profile's runs train such replicates). A group in which a seed repeats (the same set-up
    trained twice with other speed switches, say) holds no replicates and is left out."""
    groups: dict[str, list[str]] = {}
    for name, spec in specs.items():
        identity = run_identity(spec)
        del identity["train"]["seed"]
        key = json.dumps(dict(identity, epochs=spec.train.epochs), sort_keys=True)
        groups.setdefault(key, []).append(name)
    summary: dict[str, Any] = {}
    for members in groups.values():
        seeds = [specs[m].train.seed for m in members]
        if len(members) < 2 or len(set(seeds)) < len(seeds):
            continue
        entry: dict[str, Any] = {"models": members}
        for path in HEADLINE:
            values = [_get(metrics[m], path) for m in members]
            if all(v is not None for v in values):
                entry[".".join(path)] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}
        summary[members[0]] = entry
    return summary


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return float(tree)  # type: ignore[arg-type]
