"""The recognition path, the priors it is matched to, and the discriminator between them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pixelgan.config import PriorConfig
from pixelgan.discriminator import CodeDiscriminator
from pixelgan.encoder import Encoder
from pixelgan.prior import build_prior
from tests.helpers import tiny_model_config


def make_encoder(prior: PriorConfig, stochastic: bool = True) -> Encoder:
    config = tiny_model_config(prior=prior)
    return Encoder(config.image, dataclasses.replace(config.encoder, stochastic=stochastic), prior)


def test_the_noise_makes_q_z_given_x_a_distribution() -> None:
    encoder = make_encoder(PriorConfig("gaussian", 3))
    x = torch.randint(0, 2, (4, 1, 8, 8)).float()
    assert not torch.equal(encoder(x).code, encoder(x).code)
    noise = torch.randn(4, 4)
    assert torch.equal(encoder(x, noise).code, encoder(x, noise).code)


def test_the_deterministic_switch_removes_the_noise() -> None:
    encoder = make_encoder(PriorConfig("gaussian", 3), stochastic=False)
    x = torch.randint(0, 2, (4, 1, 8, 8)).float()
    assert torch.equal(encoder(x).code, encoder(x).code)


@pytest.mark.parametrize(
    "prior,categories,width",
    [(PriorConfig("gaussian", 3), 0, 3), (PriorConfig("categorical", 5), 5, 5), (PriorConfig("categorical_gaussian", 5, 2), 5, 7)],
)
def test_each_head_emits_its_part_of_the_code(prior: PriorConfig, categories: int, width: int) -> None:
    posterior = make_encoder(prior)(torch.randint(0, 2, (4, 1, 8, 8)).float())
    assert posterior.code.shape == (4, width)
    if categories:
        content = posterior.code[:, :categories]
        assert torch.allclose(content.sum(dim=1), torch.ones(4))
        assert torch.allclose(content, posterior.logits.softmax(dim=1))
    else:
        assert posterior.logits is None


def test_priors_sample_what_they_promise() -> None:
    prior = build_prior(PriorConfig("categorical_gaussian", 6, 3))
    z = prior.sample(20000, torch.Generator().manual_seed(0))
    one_hot, style = prior.split(z)
    assert z.shape == (20000, 9)
    assert torch.equal(one_hot.sum(dim=1), torch.ones(20000))
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}
    counts = one_hot.sum(dim=0)
    assert (counts - 20000 / 6).abs().max() < 300, "the categories are uniform"
    assert style.mean(dim=0).abs().max() < 0.05 and (style.std(dim=0) - 1).abs().max() < 0.05


def test_the_discriminator_has_one_network_per_part_of_the_prior() -> None:
    config = tiny_model_config()
    for prior_config, parts in ((PriorConfig("gaussian", 3), 1), (PriorConfig("categorical_gaussian", 4, 2), 2)):
        prior = build_prior(prior_config)
        discriminator = CodeDiscriminator(prior, config.discriminator)
        assert len(discriminator.nets) == parts
        z = prior.sample(5)
        assert discriminator(z).shape == (5, parts)
        # Each part's logit depends only on that part of the code.
        if parts == 2:
            z2 = z.clone()
            z2[:, 4:] += 1.0
            out, out2 = discriminator(z), discriminator(z2)
            assert torch.equal(out[:, 0], out2[:, 0]) and not torch.equal(out[:, 1], out2[:, 1])
