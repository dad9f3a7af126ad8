"""Checkpoints: state dicts plus the configs that built them, loadable with weights_only=True.

A checkpoint holds only tensors and plain Python values, so ``torch.load(weights_only=True)``
reads it without executing anything. It is written under a temporary name and renamed, so a
run killed mid-save leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, BinaryIO

import torch

from pixelgan.config import ConfigError, ModelConfig, TrainConfig, from_dict
from pixelgan.engine import Callback, EpochProgress
from pixelgan.io import atomic_path
from pixelgan.model import PixelGAN
from pixelgan.objective import Optimizers
from pixelgan.speed import Speed


def rng_state() -> dict[str, Any]:
    """This process's torch random state: the CPU generator's, and every GPU's."""
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"].cpu())  # a CPU ByteTensor, wherever it was loaded to
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng.cpu() for rng in state["cuda"]])


def checkpoint_state(
    model: PixelGAN,
    optimizers: Optimizers | None = None,
    *,
    epoch: int,
    train_config: TrainConfig | None = None,
    metrics: dict[str, float] | None = None,
    history: list[dict[str, float]] | None = None,
    run: dict[str, Any] | None = None,
    speed: Speed | None = None,
) -> dict[str, Any]:
    """Everything a run needs to resume: weights, optimizer moments, epoch, RNG, configs.

    ``history`` is every epoch's metrics so far, so the curves survive a resume. ``run`` holds
    plain values that describe the run beyond its configs (its data, say), so a resumed run
    can check it is continuing the same one. ``speed`` is what ``train_config``'s speed
    switches resolved to on the device that wrote the checkpoint (``auto`` decided).
    """
    state: dict[str, Any] = {
        "run": dict(run or {}),
        "model_config": dataclasses.asdict(model.config),
        "model": model.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
        "metrics": dict(metrics or {}),
        "history": list(history or []),
    }
    if optimizers is not None:
        state["optimizers"] = optimizers.state_dict()
    if train_config is not None:
        state["train_config"] = dataclasses.asdict(train_config)
    if speed is not None:
        state["speed"] = dataclasses.asdict(speed)
    return state


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str] | BinaryIO, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def find_checkpoint(run: str | os.PathLike[str]) -> Path:
    """The checkpoint of ``run``: a run folder of ``python -m pixelgan`` (its checkpoint.pt) or
    a checkpoint file itself (a pipeline's models/<name>.pt); both record the run alike."""
    path = Path(run)
    found = path if path.suffix == ".pt" else path / "checkpoint.pt"
    if not found.is_file():
        raise FileNotFoundError(f"{found} not found: pass a run folder of python -m pixelgan or a models/*.pt file")
    return found


def model_from_checkpoint(state: dict[str, Any]) -> PixelGAN:
    model = PixelGAN(from_dict(ModelConfig, state["model_config"]))
    model.load_state_dict(state["model"])
    return model


def load_model(path: str | os.PathLike[str]) -> PixelGAN:
    """The model saved at ``path``, in eval mode; one whose settings this code no longer
    accepts is refused naming the file."""
    try:
        return model_from_checkpoint(load_checkpoint(path)).eval()
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def resume(state: dict[str, Any], model: PixelGAN, optimizers: Optimizers) -> int:
    """Restore weights, optimizers and the RNG from ``state``; return the epochs already done."""
    model.load_state_dict(state["model"])
    optimizers.load_state_dict(state["optimizers"])
    set_rng_state(state["rng"])
    return int(state["epoch"])


class EpochCheckpoints(Callback):
    """After every epoch, a resumable checkpoint with the metrics of every epoch so far.

    Subclasses decide where it goes: a file (``SaveEveryEpoch``) or Ray Train's storage.
    """

    def __init__(
        self,
        model: PixelGAN,
        optimizers: Optimizers,
        train_config: TrainConfig,
        run: dict[str, Any] | None = None,
        history: list[dict[str, float]] | None = None,
        speed: Speed | None = None,
    ) -> None:
        self.model = model
        self.optimizers = optimizers
        self.train_config = train_config
        self.run = run
        self.history = list(history or [])
        self.speed = speed

    def state(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        self.history.append(dict(metrics, epoch=epoch))
        return checkpoint_state(
            self.model, self.optimizers, epoch=epoch, train_config=self.train_config,
            metrics=metrics, history=self.history, run=self.run, speed=self.speed,
        )

    def state_within(self, progress: EpochProgress) -> dict[str, Any]:
        """The state part-way through epoch ``progress.epoch``: its complete epochs' record,
        and how far the stopped one got (``resume_within`` reads it back)."""
        last = dict(self.history[-1]) if self.history else {}
        last.pop("epoch", None)
        state = checkpoint_state(
            self.model, self.optimizers, epoch=progress.epoch - 1, train_config=self.train_config,
            metrics=last, history=self.history, run=self.run, speed=self.speed,
        )
        return state | {"within_epoch": progress.to_dict()}


def resume_within(state: dict[str, Any]) -> EpochProgress | None:
    """How far a checkpoint written part-way through an epoch got (None: at an epoch's end)."""
    return EpochProgress(**state["within_epoch"]) if "within_epoch" in state else None


class SaveEveryEpoch(EpochCheckpoints):
    """Write the checkpoint to one path, replacing the last one atomically: after every
    epoch, and where a callback stops the run part-way through one."""

    def __init__(self, path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = path

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        save_checkpoint(self.path, self.state(epoch, metrics))

    def on_stop_within_epoch(self, progress: EpochProgress) -> None:
        save_checkpoint(self.path, self.state_within(progress))
