"""Ancestral sampling: shape, range, reproducibility, and that it follows the decoder."""

from __future__ import annotations

import pytest
import torch

from pixelgan.config import ImageConfig, ModelConfig, PriorConfig
from pixelgan.model import PixelGAN
from pixelgan.sampling import sample, sample_from_prior, sample_naive
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


@pytest.mark.parametrize("conditioning", ["location_independent", "location_dependent"])
@pytest.mark.parametrize(
    ("prior", "image", "likelihood", "kernel_size"),
    [
        (PriorConfig("gaussian", 3), ImageConfig(1, 7, 6), "bernoulli", 5),
        (PriorConfig("categorical", 4), ImageConfig(1, 7, 6), "bernoulli", 3),
        (PriorConfig("categorical_gaussian", 3, style_dim=2), ImageConfig(3, 5, 5), "categorical", 3),
    ],
    ids=["gaussian", "categorical", "rgb-256"],
)
def test_cached_sampler_draws_the_naive_samplers_images(
    prior: PriorConfig, image: ImageConfig, likelihood: str, kernel_size: int, conditioning: str
) -> None:
    config = tiny_model_config(image=image, prior=prior, conditioning=conditioning, likelihood=likelihood,
                               n_layers=2, kernel_size=kernel_size)
    assert_cached_draws_naive_images(config)


def test_cached_sampler_draws_the_naive_samplers_images_from_the_aae_decoder() -> None:
    """The AAE baseline's decoder reads no pixel: the cached sampler must not feed it the
    pixels it draws, as the naive one (a full forward pass) never does."""
    config = tiny_model_config(image=ImageConfig(1, 7, 6), prior=PriorConfig("gaussian", 3),
                               conditioning="location_dependent", autoregressive=False, n_layers=2)
    assert_cached_draws_naive_images(config)


def assert_cached_draws_naive_images(config: ModelConfig) -> None:
    # float64, so that no draw sits within rounding of its threshold and both see equal odds.
    torch.manual_seed(1)
    model = PixelGAN(config).double()
    for p in model.decoder.parameters():  # a random decoder with strong weights uses its inputs
        p.data.normal_(0, 0.5)
    z = model.prior.sample(6, torch.Generator().manual_seed(0)).double()
    naive = sample_naive(model.decoder, z, torch.Generator().manual_seed(5))
    cached = sample(model.decoder, z, torch.Generator().manual_seed(5))
    assert torch.equal(naive, cached)
    assert len(naive.unique()) > 1
