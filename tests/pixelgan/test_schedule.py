"""The learning-rate schedule: what each epoch's rates are, and that a resumed run keeps them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pixelgan.checkpoint import load_checkpoint
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers
from pixelgan.schedule import LearningRateSchedule, lr_factor
from tests.helpers import cli_run, tiny_model_config


def test_cosine_anneals_from_the_configured_rates_towards_zero_and_constant_does_not() -> None:
    epochs = 8
    cosine = [lr_factor("cosine", epoch, epochs) for epoch in range(1, epochs + 1)]
    assert cosine[0] == 1.0, "the first epoch runs at the configured rates"
    assert all(later < earlier for earlier, later in zip(cosine, cosine[1:])), "it only falls"
    assert 0 < cosine[-1] < 0.05, "the last epoch still learns, a little"
    assert math.isclose(lr_factor("cosine", epochs // 2 + 1, epochs), 0.5), "half way down at the middle"
    assert {lr_factor("constant", epoch, epochs) for epoch in range(1, epochs + 1)} == {1.0}


def test_each_phase_gets_its_own_rate_times_the_epochs_share() -> None:
    config = TrainConfig(epochs=4, lr_reconstruction=1e-3, lr_discriminator=2e-4, lr_generator=3e-4,
                         lr_supervised=5e-4, lr_schedule="cosine")
    optimizers = build_optimizers(PixelGAN(tiny_model_config(prior=PriorConfig("categorical", 4))), config)
    schedule = LearningRateSchedule(optimizers, config)
    for epoch in (3, 1):  # set from the configured rates, whatever the optimizers hold now
        schedule.on_epoch_start(epoch)
        for phase in ("reconstruction", "discriminator", "generator", "supervised"):
            rates = {group["lr"] for group in getattr(optimizers, phase).param_groups}
            assert rates == {getattr(config, f"lr_{phase}") * lr_factor("cosine", epoch, 4)}, phase


@pytest.mark.slow
def test_a_run_stopped_and_resumed_ends_at_the_last_epochs_rates(tmp_path: Path) -> None:
    run, data = tmp_path / "run", tmp_path / "data"
    assert cli_run(run, data, "train.epochs=3", "train.lr_schedule=cosine", time_limit=1e-9) == 0
    assert "within_epoch" in load_checkpoint(run / "checkpoint.pt"), "stopped part-way through epoch 1"
    assert cli_run(run, data, "train.epochs=3", "train.lr_schedule=cosine") == 0
    state = load_checkpoint(run / "checkpoint.pt")
    rate = state["optimizers"]["reconstruction"]["param_groups"][0]["lr"]
    assert math.isclose(rate, state["train_config"]["lr_reconstruction"] * lr_factor("cosine", 3, 3))
    assert cli_run(run, data, "train.epochs=3") == 2, "a constant-rate run cannot take over a cosine one"


def test_a_shared_encoder_optimizer_runs_at_the_reconstruction_rate() -> None:
    config = TrainConfig(encoder_optimizer="shared", lr_reconstruction=1e-3, lr_generator=5e-4, lr_supervised=2e-3,
                         lr_schedule="cosine", epochs=4)
    optimizers = build_optimizers(PixelGAN(tiny_model_config(prior=PriorConfig("categorical_gaussian", 4, 2))), config)
    LearningRateSchedule(optimizers, config).on_epoch_start(3)
    rates = [group["lr"] for group in optimizers.reconstruction.param_groups]
    assert rates == [pytest.approx(1e-3 * lr_factor("cosine", 3, 4))], "not the generator's or the supervised phase's"
