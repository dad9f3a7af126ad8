"""The recognition path q(z|x) as z = f(x, n) (PixelGAN paper, section 2).

Feeding noise n ~ N(0, I) beside x makes q(z|x) an implicit distribution: a sample of the
posterior is one evaluation of f with a fresh n. ``stochastic=False`` drops n and gives the
deterministic encoder that the AAE paper found to work about as well.

Heads, by prior: a Gaussian code; a categorical code (softmax over the categories, compared
by the discriminator with one-hot prior samples); or both (content + style) for
semi-supervised runs, where the categorical logits are also trained on the labels.

The categorical logits are batch-normalised (no learned shift or scale) and multiplied by
``logit_scale``. Without this every image fell into one category within the first ten steps
on MNIST: early on, the reconstruction gradient on the code is nearly the same for every
image (the code acts as one more bias), Adam moves all logits the same way, the softmax
saturates, and no gradient, adversarial or otherwise, gets through it again. Normalising
each category's logit over the batch takes that shared direction out, so the aggregated
posterior stays spread over the categories while the discriminator learns; the fixed scale
bounds how sharp a code can be (3 lets one category reach ~0.7 of 30). Our choice: the paper
does not say how it kept its categorical head from collapsing. ``batch_norm_logits=false``
leaves the logits as the layer gives them (times ``logit_scale``), as the PixelGAN and the
AAE do; then the scores see what training saw, and a code can be as sharp as it likes, and
``train.marginal_entropy`` is the other way to keep every category in use.

``input_noise`` and ``input_dropout`` corrupt the image the encoder reads, in training mode
only (the AAE's way of making its encoder stochastic); the decoder still models the image.

What the decoder and the discriminator read of the categorical part is ``categorical_code``:
``softmax``, the probabilities themselves (the AAE's choice), or ``one_hot``, the one-hot
vector of their argmax with the softmax's gradient (straight-through). A soft code can carry
style in its small probabilities, which the decoder uses and the discriminator spots at once
against one-hot prior samples: on full MNIST the discriminator won outright (d_loss 0.0008)
and codes stayed soft (mean top probability 0.43). A one-hot code leaves the discriminator
only the categories' frequencies to judge; measured, it balanced the categories but they did
not follow the digits (docs/model.md), so ``softmax`` stays the default.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelgan.config import EncoderConfig, ImageConfig, PriorConfig
from pixelgan.data import to_signed_unit


class Posterior(NamedTuple):
    code: Tensor  # [B, code_dim]: what the decoder and the discriminator read
    logits: Tensor | None  # [B, categories] before the softmax, or None for a Gaussian prior


class Encoder(nn.Module):
    def __init__(self, image: ImageConfig, config: EncoderConfig, prior: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.prior = prior
        layers: list[nn.Module] = []
        channels, height, width = image.channels, image.height, image.width
        for width_out in config.channels:
            layers += [nn.Conv2d(channels, width_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels, height, width = width_out, math.ceil(height / 2), math.ceil(width / 2)
        self.features = nn.Sequential(*layers, nn.Flatten())
        noise_dim = config.noise_dim if config.stochastic else 0
        self.trunk = nn.Sequential(
            nn.Linear(channels * height * width + noise_dim, config.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, config.hidden),
            nn.LeakyReLU(0.2),
        )
        self.categorical = nn.Linear(config.hidden, prior.categories) if prior.categories else None
        self.balance = nn.BatchNorm1d(prior.categories, affine=False) if prior.categories and config.batch_norm_logits else None
        self.gaussian = nn.Linear(config.hidden, prior.gaussian_dim) if prior.gaussian_dim else None

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Posterior:
        """Encode data-form images [B, C, H, W]; ``noise`` [B, noise_dim] defaults to N(0, I)."""
        features = self.features(self._corrupted(to_signed_unit(x)))  # [B, F]
        if self.config.stochastic:
            if noise is None:
                noise = torch.randn(x.shape[0], self.config.noise_dim, device=x.device)
            features = torch.cat([features, noise.to(features.dtype)], dim=1)
        hidden = self.trunk(features)  # [B, hidden]
        logits = None
        if self.categorical is not None:
            logits = self.categorical(hidden)
            logits = self.config.logit_scale * (self.balance(logits) if self.balance is not None else logits)
        parts = [] if logits is None else [self._categorical_code(logits)]
        if self.gaussian is not None:
            parts.append(self.gaussian(hidden))
        return Posterior(torch.cat(parts, dim=1), logits)

    def _corrupted(self, x: Tensor) -> Tensor:
        """``x`` in [-1, 1] with training's corruption: Gaussian noise, pixels turned off (to -1)."""
        if not self.training:
            return x
        if self.config.input_dropout:
            x = torch.where(torch.rand_like(x) < self.config.input_dropout, -1.0, x)
        if self.config.input_noise:
            x = x + self.config.input_noise * torch.randn_like(x)
        return x

    def _categorical_code(self, logits: Tensor) -> Tensor:
        probs = logits.softmax(dim=1)
        if self.config.categorical_code == "softmax":
            return probs
        hard = F.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
        return hard + (probs - probs.detach())  # forward: exactly one-hot; backward: the softmax's gradient
