"""The recognition path, the priors it is matched to, and the discriminator between them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pixelgan.config import ConfigError, PriorConfig
from pixelgan.discriminator import CodeDiscriminator
from pixelgan.encoder import Encoder
from pixelgan.prior import build_prior
from tests.helpers import tiny_model_config


def make_encoder(prior: PriorConfig, stochastic: bool = True, categorical_code: str = "softmax") -> Encoder:
    config = tiny_model_config(prior=prior)
    encoder = dataclasses.replace(config.encoder, stochastic=stochastic, categorical_code=categorical_code)
    return Encoder(config.image, encoder, prior)


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


def test_a_one_hot_code_is_the_argmax_forward_and_the_softmax_backward() -> None:
    prior = PriorConfig("categorical_gaussian", 5, 2)
    soft, hard = make_encoder(prior), make_encoder(prior, categorical_code="one_hot")
    hard.load_state_dict(soft.state_dict())
    x, noise = torch.randint(0, 2, (6, 1, 8, 8)).float(), torch.randn(6, 4)
    weights = torch.randn(6, 7)  # any loss that reads the whole code
    codes, grads = [], []
    for encoder in (soft, hard):
        encoder.zero_grad()
        posterior = encoder(x, noise)
        (posterior.code * weights).sum().backward()
        codes.append(posterior)
        grads.append(encoder.categorical.weight.grad.clone())
    (soft_code, logits), (hard_code, _) = codes
    assert torch.equal(hard_code[:, :5], torch.nn.functional.one_hot(logits.argmax(dim=1), 5).float())
    assert torch.equal(hard_code[:, 5:], soft_code[:, 5:]), "the Gaussian part is untouched"
    assert torch.allclose(grads[0], grads[1]), "the categorical head learns as if it were the softmax"


def test_an_unknown_categorical_code_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="encoder.categorical_code"):
        dataclasses.replace(tiny_model_config().encoder, categorical_code="gumbel")


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


def test_a_temperature_softens_only_the_categorical_samples_and_less_as_it_falls() -> None:
    prior = build_prior(PriorConfig("categorical_gaussian", 6, 3))
    tops = []
    for temperature in (2.0, 0.5, 0.1):
        soft, style = prior.split(prior.sample(5000, torch.Generator().manual_seed(0), temperature=temperature))
        assert torch.allclose(soft.sum(dim=1), torch.ones(5000)) and (soft >= 0).all(), "points on the simplex"
        assert temperature < 0.5 or (soft > 0).all(), "soft points inside it"
        assert (soft.argmax(dim=1).bincount(minlength=6) - 5000 / 6).abs().max() < 150, "still uniform over the categories"
        assert (style.std(dim=0) - 1).abs().max() < 0.05, "the Gaussian part is untouched"
        tops.append(float(soft.max(dim=1).values.mean()))
    assert tops[0] < tops[1] < tops[2] and tops[0] < 0.6 < 0.9 < tops[2], tops


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


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_prior_samples_land_on_the_generators_device(device: str) -> None:
    # A CUDA generator with the default device once crashed the figure of a finished GPU run.
    prior = build_prior(PriorConfig("categorical_gaussian", 4, 2))
    z = prior.sample(3, torch.Generator(device).manual_seed(0))
    assert z.device.type == device and z.shape == (3, 6)
