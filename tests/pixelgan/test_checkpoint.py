"""Checkpoints: an exact round trip, safe loading, atomic writes, and an exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pixelgan.checkpoint import (
    SaveEveryEpoch,
    checkpoint_state,
    load_checkpoint,
    model_from_checkpoint,
    resume,
    save_checkpoint,
)
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import ImageDataset
from pixelgan.engine import fit
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers
from tests.helpers import tiny_model_config


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    config = tiny_model_config(prior=PriorConfig("categorical_gaussian", 4, 2), conditioning="location_dependent")
    model = PixelGAN(config)
    save_checkpoint(tmp_path / "model.pt", checkpoint_state(model, epoch=3))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    restored = model_from_checkpoint(state)
    assert restored.config == config and state["epoch"] == 3
    x, noise = torch.randint(0, 2, (4, 1, 8, 8)).float(), torch.randn(4, 4)
    code = model.encoder(x, noise).code
    assert torch.equal(restored.encoder(x, noise).code, code)
    assert torch.equal(restored.decoder(x, code), model.decoder(x, code))
    z = model.prior.sample(4)
    assert torch.equal(restored.discriminator(z), model.discriminator(z))


def test_a_save_that_dies_half_way_leaves_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    model = PixelGAN(tiny_model_config())
    save_checkpoint(path, checkpoint_state(model, epoch=1))

    def dies_half_way(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, checkpoint_state(model, epoch=2))
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def _run(tmp_path: Path, stop_after: int | None) -> dict[str, torch.Tensor]:
    """Train 3 epochs in one go, or stop after ``stop_after`` and resume in a fresh process."""
    torch.manual_seed(0)
    train = TrainConfig(epochs=3, batch_size=8, binarize="stochastic")
    data = ImageDataset(torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8), torch.zeros(32), binarize="stochastic")
    loader = DataLoader(data, batch_size=8, shuffle=True)
    path = tmp_path / f"run-{stop_after}.pt"

    def build() -> tuple[PixelGAN, object]:
        model = PixelGAN(tiny_model_config())
        return model, build_optimizers(model, train)

    model, optimizers = build()
    callbacks = [SaveEveryEpoch(path, model, optimizers, train)]
    fit(model, optimizers, loader, epochs=stop_after or 3, callbacks=callbacks)
    if stop_after:
        torch.manual_seed(123)  # the resumed run must not depend on the new process's seed
        model, optimizers = build()
        start = resume(load_checkpoint(path), model, optimizers)
        assert start == stop_after
        fit(model, optimizers, loader, epochs=3, start_epoch=start)
    return model.state_dict()


def test_a_resumed_run_ends_exactly_where_an_unbroken_one_does(tmp_path: Path) -> None:
    unbroken = _run(tmp_path, stop_after=None)
    resumed = _run(tmp_path, stop_after=1)
    assert all(torch.equal(unbroken[k], resumed[k]) for k in unbroken)
