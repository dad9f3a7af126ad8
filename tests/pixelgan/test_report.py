"""Seed replicates are summarised by mean and std; other set-ups are not mixed in."""

from __future__ import annotations

import dataclasses

import pytest

from pixelgan.config import DatasetConfig, ModelConfig, RunSpec, TrainConfig
from pixelgan.report import over_seeds


def test_seed_replicates_are_summarised_by_mean_and_std() -> None:
    spec = RunSpec(DatasetConfig(), ModelConfig(), TrainConfig())
    specs = {
        "a": spec,
        "b": dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=1)),
        "c": dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=2, epochs=3)),  # not a replicate
        "d": dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=3, lr_generator=1e-3)),  # another set-up
        "e": dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=3, lr_generator=1e-3, precision="fp32")),
    }
    metrics = {name: {"test_error": error} for name, error in zip("abcde", (0.1, 0.3, 0.9, 0.5, 0.7))}
    summary = over_seeds(specs, metrics)
    assert summary.keys() == {"a"} and summary["a"]["models"] == ["a", "b"], "d and e share a seed: not replicates"
    assert summary["a"]["test_error"] == {"mean": pytest.approx(0.2), "std": pytest.approx(0.1414, abs=1e-4)}
