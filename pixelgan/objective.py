"""The PixelGAN training objective: the phases run on every mini-batch (paper, section 2).

- reconstruction: minimise -log p(x | z) with z = f(x, n); the decoder takes a step, and so
  does the encoder, through the gradient that reaches it via the adaptive biases;
- adversarial: the discriminator learns to tell prior samples from codes, then the encoder,
  as its generator, learns to pass its codes off as prior samples; ``AdversarialGame``
  holds what regularises D and softens what it sees (``train.gradient_penalty``,
  ``train.instance_noise``, ``train.prior_temperature``, ``train.softening``) and what the
  generator's step adds (``train.marginal_entropy``);
- supervised (semi-supervised runs): cross-entropy of the categorical head on a mini-batch of
  labelled images drawn beside each unlabelled one (as in the AAE).

Each phase owns one optimizer over exactly the parameters it may change, and zeroes their
gradients before its backward pass, so what one phase leaves in ``.grad`` never leaks into
another's step. With ``train.encoder_optimizer=shared`` the encoder's phases step one Adam
(the reconstruction phase's), whose moments then hold all their gradients together: each
phase's step moves the encoder by those shared moments, at ``lr_reconstruction``, so the
encoder takes two or three steps a batch and the decoder one. Phases return detached
losses, not floats, so a GPU step never waits on them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Adam, Optimizer

from pixelgan.clusters import batch_marginal_entropy
from pixelgan.config import TrainConfig
from pixelgan.data import Batch
from pixelgan.decoder import negative_log_likelihood
from pixelgan.model import PixelGAN

GAN_BETAS = (0.5, 0.999)  # the usual Adam momentum for adversarial games (DCGAN)


@dataclass
class Optimizers:
    reconstruction: Optimizer  # encoder + decoder
    discriminator: Optimizer  # discriminator
    generator: Optimizer  # encoder
    supervised: Optimizer | None  # encoder; None without a categorical head

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in vars(self).items() if opt is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in vars(self).items():
            if opt is not None:
                opt.load_state_dict(state[name])


@dataclass(frozen=True)
class AdversarialGame:
    """What regularises D and softens its view, each 0 for none: ``gradient_penalty``
    (``discriminator_step``), ``instance_noise`` on prior samples and codes alike, and
    ``prior_temperature``, for categorical prior samples as soft as a softmax code; whether
    the softening is ``held`` whole rather than annealed; and ``marginal_entropy``, the
    weight of the batch's category entropy in the generator's step (``generator_step``)."""

    gradient_penalty: float = 0.0
    instance_noise: float = 0.0
    prior_temperature: float = 0.0
    held: bool = False
    marginal_entropy: float = 0.0

    @classmethod
    def of(cls, config: TrainConfig) -> AdversarialGame:
        return cls(gradient_penalty=config.gradient_penalty, instance_noise=config.instance_noise,
                   prior_temperature=config.prior_temperature, held=config.softening == "held",
                   marginal_entropy=config.marginal_entropy)

    def softened(self, share: float) -> AdversarialGame:
        """The game with ``share`` of its softening left (all of it when ``held``; the
        penalty and the entropy term stay whole)."""
        if self.held:
            return self
        return dataclasses.replace(self, instance_noise=self.instance_noise * share,
                                   prior_temperature=self.prior_temperature * share)


def build_optimizers(model: PixelGAN, config: TrainConfig) -> Optimizers:
    encoder = list(model.encoder.parameters())
    reconstruction = Adam(encoder + list(model.decoder.parameters()), lr=config.lr_reconstruction)
    discriminator = Adam(model.discriminator.parameters(), lr=config.lr_discriminator, betas=GAN_BETAS)
    if config.encoder_optimizer == "shared":  # a phase's step skips the parameters it left without a gradient
        supervised = reconstruction if model.config.prior.categories else None
        return Optimizers(reconstruction, discriminator, generator=reconstruction, supervised=supervised)
    return Optimizers(
        reconstruction=reconstruction,
        discriminator=discriminator,
        generator=Adam(encoder, lr=config.lr_generator, betas=GAN_BETAS),
        supervised=Adam(encoder, lr=config.lr_supervised) if model.config.prior.categories else None,
    )


def _step(optimizer: Optimizer, loss: Tensor) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _bce(logits: Tensor, target: float) -> Tensor:
    """Binary cross-entropy summed over the prior's parts, averaged over the batch (float32)."""
    logits = logits.float()
    loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none")
    return loss.sum(dim=1).mean()


def reconstruction_phase(model: PixelGAN, optimizer: Optimizer, images: Tensor) -> dict[str, Tensor]:
    code = model.encoder(images).code  # [B, code_dim]
    nll = negative_log_likelihood(model.decoder(images, code), images).mean()
    return {"nll": _step(optimizer, nll)}


def _blurred(code: Tensor, instance_noise: float) -> Tensor:
    """``code`` with N(0, instance_noise^2) noise added (Sonderby et al. 2017): D then judges
    two overlapping distributions, so a soft code is not told from a one-hot sample at once."""
    return code + instance_noise * torch.randn_like(code) if instance_noise else code


def discriminator_step(
    model: PixelGAN, optimizer: Optimizer, images: Tensor, game: AdversarialGame = AdversarialGame()
) -> dict[str, Tensor]:
    """D's update on prior samples against codes, plus ``game.gradient_penalty`` times the squared
    norm of its input gradient at random points between the two (zero-centred, as in
    Mescheder et al. 2018 and Thanh-Tung et al. 2019).

    Why: without it D ran away in the paper-profile semi-supervised runs (g_loss up to 299)
    and the encoder's steps against it wrecked the code; with 0.1 it did not (docs/model.md).
    ``game.prior_temperature`` above 0 draws the categorical prior's samples relaxed, as soft as
    an encoder's softmax can be, so that softness alone does not give a code away.
    """
    with torch.no_grad():
        fake = _blurred(model.encoder(images).code.float(), game.instance_noise)
    real = _blurred(model.prior.sample(len(images), device=images.device, temperature=game.prior_temperature),
                    game.instance_noise)
    points = [real, fake]
    if game.gradient_penalty:
        mix = torch.rand(len(real), 1, device=real.device)
        points.append((real + mix * (fake - real)).requires_grad_(True))
    logits = model.discriminator(torch.cat(points))  # one pass, as DDP wants one per backward
    n = len(real)
    loss = _bce(logits[:n], 1.0) + _bce(logits[n : 2 * n], 0.0)
    metrics: dict[str, Tensor] = {}
    if game.gradient_penalty:
        (slope,) = torch.autograd.grad(logits[2 * n :].float().sum(), points[2], create_graph=True)
        penalty = slope.float().pow(2).sum(dim=1).mean()
        loss = loss + game.gradient_penalty * penalty
        metrics["d_penalty"] = penalty.detach()
    return {"d_loss": _step(optimizer, loss)} | metrics


def generator_step(
    model: PixelGAN, optimizer: Optimizer, images: Tensor, game: AdversarialGame = AdversarialGame()
) -> dict[str, Tensor]:
    """The encoder's update as the generator (the non-saturating loss, -log D(f(x, n))), less
    ``game.marginal_entropy`` times the entropy of the batch's mean q(y|x)."""
    encoded = model.encoder(images)
    fooling = _bce(model.discriminator(_blurred(encoded.code, game.instance_noise)), 1.0)
    if not (game.marginal_entropy and encoded.logits is not None):
        return {"g_loss": _step(optimizer, fooling)}
    entropy = batch_marginal_entropy(encoded.logits.float().softmax(dim=1))
    _step(optimizer, fooling - game.marginal_entropy * entropy)
    return {"g_loss": fooling.detach(), "marginal_entropy": entropy.detach()}



def adversarial_phase(
    model: PixelGAN, optimizers: Optimizers, images: Tensor, game: AdversarialGame = AdversarialGame()
) -> dict[str, Tensor]:
    return (discriminator_step(model, optimizers.discriminator, images, game)
            | generator_step(model, optimizers.generator, images, game))


def supervised_phase(model: PixelGAN, optimizer: Optimizer, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Cross-entropy of the categorical head on a batch of labelled images."""
    logits = model.encoder(images).logits  # [B, categories]
    assert logits is not None, "supervised_phase needs a prior with categories"
    accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()  # float32 even under bf16 autocast
    return {"sup_loss": _step(optimizer, F.cross_entropy(logits.float(), labels)), "sup_acc": accuracy}


def train_step(
    model: PixelGAN,
    optimizers: Optimizers,
    batch: Batch,
    labelled: Batch | None = None,
    game: AdversarialGame = AdversarialGame(),
) -> dict[str, Tensor]:
    """All phases on one mini-batch, in the paper's order; the supervised one on ``labelled``."""
    metrics = reconstruction_phase(model, optimizers.reconstruction, batch.images)
    metrics |= adversarial_phase(model, optimizers, batch.images, game)
    if labelled is not None:
        if optimizers.supervised is None:
            raise ValueError("a labelled batch needs a prior with categories (prior.kind)")
        metrics |= supervised_phase(model, optimizers.supervised, labelled.images, labelled.labels)
    return metrics
