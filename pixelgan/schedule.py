"""The learning rates over a run's epochs (``train.lr_schedule``).

``constant`` keeps every phase at its configured rate. ``cosine`` anneals all four together
along half a cosine, from the configured rates at epoch 1 towards zero at the last epoch,
one value per epoch. Why: with constant rates the semi-supervised head's validation error
moved by up to 0.36 points from one epoch to the next on full MNIST (docs/results.md), so the epoch a
run happened to stop at decided much of its score; annealing lets the last epochs settle.
The discriminator and the generator anneal together, so neither gets ahead of the other.

A rate is a function of the epoch alone, so a resumed run goes on exactly where it stopped.
Extending a finished cosine run to more epochs stretches the curve: its rates rise again.
"""

from __future__ import annotations

import math

from pixelgan.config import TrainConfig
from pixelgan.engine import Callback
from pixelgan.objective import Optimizers


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The share of the configured rates used in ``epoch`` (counted from 1) of ``epochs``."""
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


class LearningRateSchedule(Callback):
    """Sets each phase's rate (``train.lr_<phase>``) times ``lr_factor`` as an epoch starts."""

    def __init__(self, optimizers: Optimizers, config: TrainConfig) -> None:
        self.optimizers = optimizers
        self.config = config

    def on_epoch_start(self, epoch: int) -> None:
        factor = lr_factor(self.config.lr_schedule, epoch, self.config.epochs)
        seen: set[int] = set()  # a shared optimizer runs at its first phase's rate
        for phase, optimizer in vars(self.optimizers).items():
            if optimizer is not None and id(optimizer) not in seen:
                seen.add(id(optimizer))
                for group in optimizer.param_groups:
                    group["lr"] = getattr(self.config, f"lr_{phase}") * factor
