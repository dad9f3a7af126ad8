"""Short real trainings on the embedded MNIST-5k: the decoder uses z, and the CLI run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pixelgan.__main__ import main
from pixelgan.checkpoint import load_checkpoint
from pixelgan.config import (
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
)
from pixelgan.data import ImageDataset
from pixelgan.engine import evaluate, fit
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers

Z_USE_MARGIN_NATS = 10.0


@pytest.mark.slow
def test_the_decoder_uses_the_code(mnist5k: tuple[torch.Tensor, torch.Tensor]) -> None:
    """After ~15 s of training on 256 digits, a digit's own code explains it far better than
    another digit's code: the small-field PixelCNN has to take the global shape from z."""
    images, labels = mnist5k
    subset = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:256]
    data = ImageDataset(images[subset], labels[subset], binarize="threshold")
    config = ModelConfig(
        prior=PriorConfig("gaussian", 8),
        encoder=EncoderConfig(channels=(16, 32), hidden=128),
        decoder=DecoderConfig(channels=16, n_layers=1, head_channels=16),
        discriminator=DiscriminatorConfig(hidden=(64, 64)),
    )
    model = PixelGAN(config)
    optimizers = build_optimizers(model, TrainConfig(lr_reconstruction=3e-3))
    fit(model, optimizers, DataLoader(data, batch_size=32, shuffle=True, drop_last=True), epochs=40)
    nll = evaluate(model, DataLoader(data, batch_size=256), "cpu")
    print(f"\nNLL given own code {nll['nll']:.2f} nats, given another image's code {nll['nll_other_code']:.2f}")
    assert nll["nll_other_code"] - nll["nll"] > Z_USE_MARGIN_NATS, nll


def run(out: Path, *args: str) -> int:
    return main(["--out", str(out), "--limit", "128", "--samples", "0", *args])


@pytest.mark.slow
def test_the_cli_run_checkpoints_resumes_and_does_not_repeat_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "--epochs", "1") == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"nll", "d_loss", "g_loss", "val_nll", "val_nll_other_code", "wall_time_s"} <= set(metrics)
    # A longer run with other settings in the same folder is refused, naming the checkpoint ...
    assert run(tmp_path, "--epochs", "2", "--dim", "5") == 2
    assert "checkpoint.pt belongs to a run with other settings" in capsys.readouterr().err
    assert run(tmp_path, "--epochs", "2", "--limit", "256") == 2, "another training set"
    # ... while asking for more epochs is not: it carries on from the checkpoint,
    assert run(tmp_path, "--epochs", "2") == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    # and a finished run, started again, trains nothing and rewrites nothing.
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert run(tmp_path, "--epochs", "2") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow
def test_the_cli_run_draws_samples_from_the_prior(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--limit", "64", "--epochs", "1", "--samples", "2"]) == 0
    from PIL import Image

    grid = Image.open(tmp_path / "samples.png")
    assert grid.size[1] == 28 + 2  # one row of 28x28 images with a 1-pixel border


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--limit", "10", "--batch-size", "64"]) == 2
    assert "train.batch_size=64 is more than the 10 training images" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()
