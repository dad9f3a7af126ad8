"""The training phases: what each one may change, and where the gradients go."""

from __future__ import annotations

import pytest
import torch

from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import (
    build_optimizers,
    discriminator_step,
    generator_step,
    reconstruction_phase,
    supervised_phase,
    train_step,
)
from tests.helpers import tiny_model_config

PRIORS = [PriorConfig("gaussian", 3), PriorConfig("categorical", 4), PriorConfig("categorical_gaussian", 4, 2)]


def make_model(prior: PriorConfig = PRIORS[0]) -> PixelGAN:
    return PixelGAN(tiny_model_config(prior=prior))


def images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 2, (n, 1, 8, 8)).float()


def snapshot(model: PixelGAN) -> dict[str, dict[str, torch.Tensor]]:
    return {
        part: {k: v.clone() for k, v in getattr(model, part).state_dict().items()}
        for part in ("encoder", "decoder", "discriminator")
    }


def changed_parts(before: dict, model: PixelGAN) -> set[str]:
    after = snapshot(model)
    return {
        part for part in before
        if any(not torch.equal(before[part][k], after[part][k]) for k in before[part])
    }


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.kind)
def test_the_encoder_learns_through_the_decoders_conditioning(prior: PriorConfig) -> None:
    model = make_model(prior)
    optimizers = build_optimizers(model, TrainConfig())
    reconstruction_phase(model, optimizers.reconstruction, images())
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.kind)
def test_each_step_changes_only_its_own_parameters(prior: PriorConfig) -> None:
    model = make_model(prior)
    optimizers = build_optimizers(model, TrainConfig())
    x = images()
    before = snapshot(model)
    reconstruction_phase(model, optimizers.reconstruction, x)
    assert changed_parts(before, model) == {"encoder", "decoder"}

    before = snapshot(model)
    discriminator_step(model, optimizers.discriminator, x)
    assert changed_parts(before, model) == {"discriminator"}

    before = snapshot(model)
    generator_step(model, optimizers.generator, x)
    assert changed_parts(before, model) == {"encoder"}


def test_the_generator_step_pulls_codes_towards_what_the_discriminator_calls_prior() -> None:
    model = make_model()
    optimizers = build_optimizers(model, TrainConfig(lr_generator=1e-2))
    x = images(32)
    noise = torch.randn(32, model.config.encoder.noise_dim)

    @torch.no_grad()
    def score() -> float:
        return float(model.discriminator(model.encoder(x, noise).code).mean())

    start = score()
    for _ in range(5):
        generator_step(model, optimizers.generator, x)
    assert score() > start


def test_the_supervised_phase_reads_only_labelled_rows() -> None:
    prior = PRIORS[1]
    x, labels = images(8), torch.randint(0, 4, (8,))
    labelled = torch.tensor([True, False, True, False, False, True, False, False])

    def updated_encoder(x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        model = make_model(prior)
        optimizers = build_optimizers(model, TrainConfig())
        supervised_phase(model, optimizers.supervised, x, labels, labelled)
        return model.encoder.state_dict()

    reference = updated_encoder(x, labels)
    other_x, other_labels = x.clone(), labels.clone()
    other_x[~labelled] = 1 - other_x[~labelled]
    other_labels[~labelled] = (other_labels[~labelled] + 1) % 4
    assert all(torch.equal(reference[k], v) for k, v in updated_encoder(other_x, other_labels).items())
    other_labels[labelled] = (other_labels[labelled] + 1) % 4
    assert not all(torch.equal(reference[k], v) for k, v in updated_encoder(other_x, other_labels).items())


def test_the_supervised_phase_skips_a_batch_without_labels() -> None:
    model = make_model(PRIORS[1])
    optimizers = build_optimizers(model, TrainConfig())
    before = snapshot(model)
    assert supervised_phase(model, optimizers.supervised, images(), torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.bool)) == {}
    assert changed_parts(before, model) == set()


def test_a_train_step_reports_every_phase_it_ran() -> None:
    batch = Batch(images(), torch.randint(0, 4, (6,)), torch.tensor([True] * 3 + [False] * 3))
    model = make_model(PRIORS[2])
    metrics = train_step(model, build_optimizers(model, TrainConfig()), batch)
    assert set(metrics) == {"nll", "d_loss", "g_loss", "sup_loss", "sup_acc"}
    gaussian = make_model(PRIORS[0])
    assert set(train_step(gaussian, build_optimizers(gaussian, TrainConfig()), batch)) == {"nll", "d_loss", "g_loss"}


def test_a_gaussian_prior_has_no_supervised_optimizer() -> None:
    assert build_optimizers(make_model(PRIORS[0]), TrainConfig()).supervised is None
