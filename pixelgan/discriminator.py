"""The adversarial network on the code: D(z) tells prior samples from encoded codes.

For the categorical + Gaussian prior there is one MLP per part, as in the AAE's
semi-supervised set-up: the one-hot part and the Gaussian part differ so much in kind that
a single network on the concatenation can win on the categorical part alone and leave the
style code unconstrained. NOTE: separate networks match each part's marginal, not their
independence; the encoder's shared trunk is what couples them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pixelgan.config import DiscriminatorConfig
from pixelgan.prior import ProductPrior


def _mlp(in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.LeakyReLU(0.2)]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, 1))


class CodeDiscriminator(nn.Module):
    def __init__(self, prior: ProductPrior, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.prior = prior
        self.nets = nn.ModuleList(_mlp(part.dim, config.hidden) for part in prior.parts)

    def forward(self, code: Tensor) -> Tensor:
        """Logits that each part of ``code`` [B, dim] came from the prior: [B, parts]."""
        parts = self.prior.split(code)
        return torch.cat([net(part) for net, part in zip(self.nets, parts)], dim=1)
