"""Checkpoints: state dicts plus the configs that built them, loadable with weights_only=True.

A checkpoint holds only tensors and plain Python values, so ``torch.load(weights_only=True)``
reads it without executing anything. It is written under a temporary name and renamed, so a
run killed mid-save leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from pixelgan.config import ModelConfig, TrainConfig, from_dict
from pixelgan.engine import Callback
from pixelgan.io import atomic_path
from pixelgan.model import PixelGAN
from pixelgan.objective import Optimizers


def checkpoint_state(
    model: PixelGAN,
    optimizers: Optimizers | None = None,
    *,
    epoch: int,
    train_config: TrainConfig | None = None,
    metrics: dict[str, float] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a run needs to resume: weights, optimizer moments, epoch, RNG, configs.

    ``run`` holds plain values that describe the run beyond its configs (its data, say), so a
    resumed run can check it is continuing the same one.
    """
    state: dict[str, Any] = {
        "run": dict(run or {}),
        "model_config": dataclasses.asdict(model.config),
        "model": model.state_dict(),
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "metrics": dict(metrics or {}),
    }
    if optimizers is not None:
        state["optimizers"] = optimizers.state_dict()
    if train_config is not None:
        state["train_config"] = dataclasses.asdict(train_config)
    return state


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def model_from_checkpoint(state: dict[str, Any]) -> PixelGAN:
    model = PixelGAN(from_dict(ModelConfig, state["model_config"]))
    model.load_state_dict(state["model"])
    return model


def resume(state: dict[str, Any], model: PixelGAN, optimizers: Optimizers) -> int:
    """Restore weights, optimizers and the RNG from ``state``; return the epochs already done."""
    model.load_state_dict(state["model"])
    optimizers.load_state_dict(state["optimizers"])
    torch.set_rng_state(state["torch_rng"].cpu())  # a CPU ByteTensor, wherever it was loaded
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng.cpu() for rng in state["cuda_rng"]])
    return int(state["epoch"])


class SaveEveryEpoch(Callback):
    """Write a resumable checkpoint to one path at the end of every epoch."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: PixelGAN,
        optimizers: Optimizers,
        train_config: TrainConfig,
        run: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.model = model
        self.optimizers = optimizers
        self.train_config = train_config
        self.run = run

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        state = checkpoint_state(
            self.model, self.optimizers, epoch=epoch, train_config=self.train_config, metrics=metrics, run=self.run
        )
        save_checkpoint(self.path, state)
