"""Ancestral sampling: shape, range, reproducibility, and that it follows the decoder."""

from __future__ import annotations

import pytest
import torch

from pixelgan.config import ImageConfig, PriorConfig
from pixelgan.model import PixelGAN
from pixelgan.sampling import sample, sample_from_prior
from tests.helpers import tiny_model_config


@pytest.mark.parametrize("conditioning", ["location_independent", "location_dependent"])
@pytest.mark.parametrize("prior", [PriorConfig("gaussian", 3), PriorConfig("categorical", 4)], ids=lambda p: p.kind)
def test_bernoulli_samples_are_binary_images_and_reproducible(prior: PriorConfig, conditioning: str) -> None:
    model = PixelGAN(tiny_model_config(prior=prior, conditioning=conditioning))
    first, codes = sample_from_prior(model, 5, torch.Generator().manual_seed(3))
    again, _ = sample_from_prior(model, 5, torch.Generator().manual_seed(3))
    other, _ = sample_from_prior(model, 5, torch.Generator().manual_seed(4))
    assert first.shape == (5, 1, 8, 8) and codes.shape == (5, prior.code_dim)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_8bit_rgb_samples_are_integers_in_0_255() -> None:
    model = PixelGAN(tiny_model_config(image=ImageConfig(3, 4, 4), likelihood="categorical"))
    images, _ = sample_from_prior(model, 3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 4, 4) and images.dtype == torch.long
    assert images.min() >= 0 and images.max() <= 255
    assert len(images.unique()) > 10, "a random decoder spreads its samples over the levels"


def test_samples_follow_the_decoder_distribution() -> None:
    # Bias the head so that every pixel is 1 with probability sigmoid(2) ~ 0.88.
    model = PixelGAN(tiny_model_config())
    for p in model.decoder.parameters():
        torch.nn.init.zeros_(p)
    torch.nn.init.constant_(model.decoder.head.out.bias, 2.0)
    images = sample(model.decoder, torch.zeros(200, 3), torch.Generator().manual_seed(0))
    assert abs(float(images.mean()) - float(torch.sigmoid(torch.tensor(2.0)))) < 0.01
