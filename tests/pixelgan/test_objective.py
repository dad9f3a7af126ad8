"""The training phases: what each one may change, and where the gradients go."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pixelgan.clusters import batch_marginal_entropy
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import (
    AdversarialGame,
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
        part: {k: v.detach().clone() for k, v in getattr(model, part).named_parameters()}
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


def test_the_discriminator_learns_to_score_prior_samples_above_codes() -> None:
    """With the encoder fixed, D's own steps must teach it which side is the prior: swapped
    targets would score the codes higher, and its loss would not fall below chance (ln 4)."""
    torch.manual_seed(0)
    model = make_model(PriorConfig("gaussian", 3))  # an untrained encoder's codes sit near 0
    optimizer = build_optimizers(model, TrainConfig(lr_discriminator=1e-2)).discriminator
    batch = images(64)
    losses = [float(discriminator_step(model, optimizer, batch)["d_loss"]) for _ in range(100)]
    with torch.no_grad():
        prior_scores = model.discriminator(model.prior.sample(256)).mean()
        code_scores = model.discriminator(model.encoder(batch).code).mean()
    assert prior_scores > code_scores
    assert sum(losses[-10:]) / 10 < math.log(4) - 0.5


def test_instance_noise_hides_the_codes_from_the_discriminator() -> None:
    """The same steps as above with the codes and prior samples blurred by noise far wider
    than the gap between them: D's loss stays near chance (ln 4)."""
    torch.manual_seed(0)
    model = make_model(PriorConfig("gaussian", 3))
    optimizer = build_optimizers(model, TrainConfig(lr_discriminator=1e-2)).discriminator
    batch = images(64)
    losses = [float(discriminator_step(model, optimizer, batch, AdversarialGame(instance_noise=30.0))["d_loss"]) for _ in range(100)]
    assert sum(losses[-10:]) / 10 > math.log(4) - 0.1


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


def _slope_between_prior_and_codes(model: PixelGAN, x: torch.Tensor, noise: torch.Tensor) -> float:
    """Mean squared norm of D's input gradient on the segments from prior samples to codes."""
    torch.manual_seed(1)
    with torch.no_grad():
        fake = model.encoder(x, noise).code
    real = model.prior.sample(len(x))
    points = (real + torch.rand(len(x), 1) * (fake - real)).requires_grad_(True)
    (slope,) = torch.autograd.grad(model.discriminator(points).sum(), points)
    return float(slope.pow(2).sum(dim=1).mean())


def test_the_gradient_penalty_flattens_the_discriminator_between_prior_and_codes() -> None:
    slopes = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        model = make_model(PRIORS[1])
        optimizers = build_optimizers(model, TrainConfig(lr_discriminator=1e-2))
        x = images(32)
        for _ in range(40):
            metrics = discriminator_step(model, optimizers.discriminator, x, AdversarialGame(gradient_penalty=weight))
        assert ("d_penalty" in metrics) == bool(weight)
        slopes[weight] = _slope_between_prior_and_codes(model, x, torch.zeros(32, model.config.encoder.noise_dim))
    assert slopes[10.0] < 0.2 * slopes[0.0]


def test_the_penalised_discriminator_step_runs_under_ddp_as_without_it(tmp_path) -> None:
    """One forward per backward, as DistributedDataParallel needs: the same update either way."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    plain, wrapped = make_model(PRIORS[2]), make_model(PRIORS[2])
    wrapped.load_state_dict(plain.state_dict())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        wrapped = wrapped.with_parts(DistributedDataParallel)
        x = images(16)
        for model in (plain, wrapped):
            optimizers = build_optimizers(model, TrainConfig())
            torch.manual_seed(1)
            discriminator_step(model, optimizers.discriminator, x, AdversarialGame(gradient_penalty=5.0))
        for (name, a), b in zip(plain.discriminator.named_parameters(), wrapped.discriminator.parameters()):
            torch.testing.assert_close(a, b, msg=name)
    finally:
        dist.destroy_process_group()


def test_the_supervised_phase_fits_the_categorical_head_to_the_labels() -> None:
    torch.manual_seed(0)
    model = make_model(PRIORS[2])
    optimizers = build_optimizers(model, TrainConfig())
    x, labels = images(16), torch.randint(0, 4, (16,))
    before = snapshot(model)
    first = supervised_phase(model, optimizers.supervised, x, labels)
    assert changed_parts(before, model) == {"encoder"}
    for _ in range(30):
        last = supervised_phase(model, optimizers.supervised, x, labels)
    assert float(last["sup_loss"]) < 0.5 * float(first["sup_loss"])
    assert float(last["sup_acc"]) == 1.0


def test_a_train_step_reports_every_phase_it_ran() -> None:
    batch = Batch(images(), torch.randint(0, 4, (6,)))
    labelled = Batch(images(), torch.randint(0, 4, (6,)))
    model = make_model(PRIORS[2])
    optimizers = build_optimizers(model, TrainConfig())
    assert set(train_step(model, optimizers, batch, labelled)) == {"nll", "d_loss", "g_loss", "sup_loss", "sup_acc"}
    assert set(train_step(model, optimizers, batch)) == {"nll", "d_loss", "g_loss"}
    gaussian = make_model(PRIORS[0])
    with pytest.raises(ValueError, match="prior.kind"):
        train_step(gaussian, build_optimizers(gaussian, TrainConfig()), batch, labelled)


def test_a_gaussian_prior_has_no_supervised_optimizer() -> None:
    assert build_optimizers(make_model(PRIORS[0]), TrainConfig()).supervised is None


def test_an_epochs_mean_counts_every_step_of_a_bf16_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bf16 running sum of per-step accuracies stops growing at 256 (0.33 for a perfect
    781-step epoch): the epoch mean must be summed wider, and the accuracy made in float32."""
    from pixelgan import engine

    steps = 781
    monkeypatch.setattr(engine, "train_step", lambda *args: {"sup_acc": torch.tensor(1.0, dtype=torch.bfloat16)})
    batches = [Batch(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))] * steps
    model = PixelGAN(tiny_model_config())
    assert engine.train_one_epoch(model, build_optimizers(model, TrainConfig()), batches, "cpu").means() == {"sup_acc": 1.0}

    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical", 10)))
    images, labels = (torch.rand(4, 1, 8, 8) > 0.5).float(), torch.arange(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        metrics = supervised_phase(model, build_optimizers(model, TrainConfig()).supervised, images, labels)
    assert metrics["sup_acc"].dtype == torch.float32


def test_the_game_takes_each_setting_of_its_own_name_from_the_train_config() -> None:
    config = TrainConfig(gradient_penalty=0.1, instance_noise=0.2, prior_temperature=0.3)
    game = AdversarialGame.of(config)
    assert game == AdversarialGame(gradient_penalty=0.1, instance_noise=0.2, prior_temperature=0.3)
    assert AdversarialGame.of(TrainConfig(softening="held", marginal_entropy=0.5)) == AdversarialGame(held=True, marginal_entropy=0.5)
    assert game.softened(0.5) == AdversarialGame(gradient_penalty=0.1, instance_noise=0.1, prior_temperature=0.15)


def _after_one_step(step, *batches: Batch) -> dict[str, dict[str, torch.Tensor]]:
    """The weights after ``step(model, optimizers, *batches)`` from the same start and noise."""
    torch.manual_seed(0)
    model = make_model(PRIORS[2])
    optimizers = build_optimizers(model, TrainConfig())
    torch.manual_seed(1)
    step(model, optimizers, *batches)
    return snapshot(model)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[part][k], b[part][k]) for part in a for k in a[part])


def test_the_supervised_phase_learns_from_the_labelled_rows_alone() -> None:
    """Every label of the unlabelled batch changed, no weight moves otherwise; the labelled
    batch's labels or images changed, they do (a leak of the unlabelled labels would flip both)."""
    x, y, labelled_x, labelled_y = images(6), torch.randint(0, 4, (6,)), images(6), torch.randint(0, 4, (6,))

    def step(*batches: Batch) -> dict:
        return _after_one_step(lambda model, optimizers, *b: train_step(model, optimizers, *b), *batches)

    base = step(Batch(x, y), Batch(labelled_x, labelled_y))
    assert _same(base, step(Batch(x, (y + 1) % 4), Batch(labelled_x, labelled_y)))
    assert not _same(base, step(Batch(x, y), Batch(labelled_x, (labelled_y + 1) % 4)))
    assert not _same(base, step(Batch(x, y), Batch(1 - labelled_x, labelled_y)))


def test_an_epoch_feeds_the_supervised_phase_its_labelled_batches_alone() -> None:
    """The same through ``train_one_epoch``: the unlabelled batches' labels reach nothing."""
    from pixelgan import engine

    x, y, labelled_x, labelled_y = images(12), torch.randint(0, 4, (12,)), images(4), torch.randint(0, 4, (4,))

    def epoch(train_labels: torch.Tensor, labels: torch.Tensor) -> dict:
        train = [Batch(x[:6], train_labels[:6]), Batch(x[6:], train_labels[6:])]
        return _after_one_step(lambda model, optimizers: engine.train_one_epoch(
            model, optimizers, train, "cpu", labelled_batches=[Batch(labelled_x, labels)]))

    base = epoch(y, labelled_y)
    assert _same(base, epoch((y + 1) % 4, labelled_y))
    assert not _same(base, epoch(y, (labelled_y + 1) % 4))


def _with_encoder(prior: PriorConfig = PRIORS[1], **encoder: object) -> PixelGAN:
    config = tiny_model_config(prior=prior)
    return PixelGAN(dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, **encoder)))


def test_without_batch_norm_the_logits_are_the_layers_own_times_the_scale() -> None:
    torch.manual_seed(0)
    model = _with_encoder(batch_norm_logits=False, logit_scale=2.0, stochastic=False, noise_dim=0)
    x = images(16)
    hidden = model.encoder.trunk(model.encoder.features(2 * x - 1))
    assert torch.allclose(model.encoder(x).logits, 2.0 * model.encoder.categorical(hidden))
    torch.manual_seed(0)
    normalised = _with_encoder(stochastic=False, noise_dim=0).encoder(x).logits
    assert normalised.mean(dim=0).abs().max() < 1e-5, "batch norm centres each category's logit over the batch"


def test_input_corruption_changes_the_code_in_training_only() -> None:
    torch.manual_seed(0)
    clean = _with_encoder()
    corrupted = _with_encoder(input_noise=0.5, input_dropout=0.3)
    corrupted.load_state_dict(clean.state_dict())
    x, noise = images(8), torch.randn(8, clean.config.encoder.noise_dim)
    clean.eval(), corrupted.eval()
    assert torch.equal(clean.encoder(x, noise).code, corrupted.encoder(x, noise).code)
    clean.train(), corrupted.train()
    assert not torch.allclose(clean.encoder(x, noise).code, corrupted.encoder(x, noise).code)


def test_the_marginal_entropy_term_spreads_a_batch_over_the_categories() -> None:
    x = images(32)

    def entropy_after(weight: float) -> float:
        torch.manual_seed(0)
        model = _with_encoder(batch_norm_logits=False, logit_scale=5.0)
        optimizers = build_optimizers(model, TrainConfig(lr_generator=1e-2))
        for _ in range(10):
            generator_step(model, optimizers.generator, x, AdversarialGame(marginal_entropy=weight))
        with torch.no_grad():
            return float(batch_marginal_entropy(model.encoder(x).logits.softmax(dim=1)))

    assert entropy_after(10.0) > entropy_after(0.0) + 0.05


def test_the_marginal_entropy_term_leaves_a_code_without_categories_alone() -> None:
    """Like ``encoder.categorical_code``, the term is inert for a Gaussian prior, so one set-up
    serves every prior (a sweep over prior kinds, the runs beside the clustering model)."""
    x = images(8)

    def weights_after(weight: float) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = make_model(PRIORS[0])
        optimizers = build_optimizers(model, TrainConfig())
        torch.manual_seed(1)
        generator_step(model, optimizers.generator, x, AdversarialGame(marginal_entropy=weight))
        return [p.detach().clone() for p in model.encoder.parameters()]

    assert PRIORS[0].kind == "gaussian"
    for with_term, without in zip(weights_after(2.0), weights_after(0.0)):
        assert torch.equal(with_term, without)


def test_a_shared_encoder_optimizer_steps_the_encoder_once_per_phase_with_one_adam() -> None:
    model = make_model(PRIORS[2])
    labelled = Batch(images(6), torch.randint(0, 4, (6,)))
    shared = build_optimizers(model, TrainConfig(encoder_optimizer="shared"))
    assert shared.generator is shared.reconstruction is shared.supervised
    train_step(model, shared, Batch(images(6), torch.zeros(6, dtype=torch.long)), labelled)
    weight = next(model.encoder.parameters())
    assert int(shared.reconstruction.state[weight]["step"]) == 3, "reconstruction, generator and supervised steps"
    decoder_weight = next(model.decoder.parameters())
    assert int(shared.reconstruction.state[decoder_weight]["step"]) == 1, "the decoder only in reconstruction"
    per_phase = build_optimizers(make_model(), TrainConfig())
    assert per_phase.generator is not per_phase.reconstruction


def test_held_softening_stays_whole_to_the_last_epoch() -> None:
    held = AdversarialGame.of(TrainConfig(instance_noise=0.2, prior_temperature=0.3, softening="held", marginal_entropy=1.0))
    assert held.softened(0.0) == held
    annealed = AdversarialGame.of(TrainConfig(instance_noise=0.2, marginal_entropy=1.0))
    assert annealed.softened(0.0).instance_noise == 0.0 and annealed.softened(0.0).marginal_entropy == 1.0
