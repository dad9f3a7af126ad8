"""Builders shared by the tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pixelgan.config import (
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ImageConfig,
    ModelConfig,
    PriorConfig,
)
from pixelgan.__main__ import main


# The same shrunk model as `conf/` overrides, for the pipeline's stages.
TINY_MODEL_OVERRIDES = [
    "model.encoder.channels=[8,16]",
    "model.encoder.hidden=32",
    "model.encoder.noise_dim=4",
    "model.decoder.channels=8",
    "model.decoder.n_layers=2",
    "model.decoder.head_channels=8",
    "model.decoder.map_channels=4",
    "model.discriminator.hidden=[16,16]",
]


def tiny_model_config(
    *,
    image: ImageConfig = ImageConfig(1, 8, 8),
    prior: PriorConfig = PriorConfig("gaussian", 3),
    **decoder: object,
) -> ModelConfig:
    """The real model, shrunk so that a CPU test runs in milliseconds."""
    decoder_config = dataclasses.replace(
        DecoderConfig(channels=8, n_layers=2, head_channels=8, map_channels=4), **decoder
    )
    return ModelConfig(
        image=image,
        prior=prior,
        encoder=EncoderConfig(channels=(8, 16), hidden=32, noise_dim=4),
        decoder=decoder_config,
        discriminator=DiscriminatorConfig(hidden=(16, 16)),
    )


def cli_run(out: Path, *args: str) -> int:
    """``python -m pixelgan`` on the embedded MNIST-5k's first 128 images, no figure, into ``out``."""
    return main(["--out", str(out), "--limit", "128", "--samples", "0", *args])
