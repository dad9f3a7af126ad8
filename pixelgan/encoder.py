"""The recognition path q(z|x) as z = f(x, n) (PixelGAN paper, section 2).

Feeding noise n ~ N(0, I) beside x makes q(z|x) an implicit distribution: a sample of the
posterior is one evaluation of f with a fresh n. ``stochastic=False`` drops n and gives the
deterministic encoder that the AAE paper found to work about as well.

Heads, by prior: a Gaussian code; a categorical code (softmax over the categories, compared
by the discriminator with one-hot prior samples); or both (content + style) for
semi-supervised runs, where the categorical logits are also trained on the labels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
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
        self.gaussian = nn.Linear(config.hidden, prior.gaussian_dim) if prior.gaussian_dim else None

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Posterior:
        """Encode data-form images [B, C, H, W]; ``noise`` [B, noise_dim] defaults to N(0, I)."""
        features = self.features(to_signed_unit(x))  # [B, F]
        if self.config.stochastic:
            if noise is None:
                noise = torch.randn(x.shape[0], self.config.noise_dim, device=x.device)
            features = torch.cat([features, noise.to(features.dtype)], dim=1)
        hidden = self.trunk(features)  # [B, hidden]
        logits = self.categorical(hidden) if self.categorical is not None else None
        parts = [] if logits is None else [logits.softmax(dim=1)]
        if self.gaussian is not None:
            parts.append(self.gaussian(hidden))
        return Posterior(torch.cat(parts, dim=1), logits)
