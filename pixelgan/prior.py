"""The prior p(z) that the adversarial network imposes on the aggregated posterior q(z).

A prior is a product of independent parts: a Gaussian (global vs local decomposition), a
one-hot categorical (clustering: content vs style), or both, categories first, for
semi-supervised runs. The discriminator keeps one network per part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelgan.config import PriorConfig


def _device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device | str:
    """Where samples go: ``device`` if given, else the generator's (a CUDA generator draws on the GPU)."""
    if device is not None:
        return device
    return generator.device if generator is not None else "cpu"


@dataclass(frozen=True)
class GaussianPrior:
    dim: int

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
        return torch.randn(n, self.dim, generator=generator, device=_device(generator, device))


@dataclass(frozen=True)
class CategoricalPrior:
    """Uniform over ``dim`` categories, sampled as one-hot vectors, or at a ``temperature``
    above 0 as relaxed ones (Gumbel-softmax, Jang et al. 2017; Maddison et al. 2017): soft
    points near the corners, softer as the temperature rises, one-hot in the limit."""

    dim: int

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
        temperature: float = 0.0,
    ) -> Tensor:
        device = _device(generator, device)
        if temperature > 0:
            tiny = torch.finfo(torch.float32).tiny
            uniform = torch.rand(n, self.dim, generator=generator, device=device).clamp(tiny, 1 - 2**-24)
            gumbel = -(-uniform.log()).log()
            return (gumbel / temperature).softmax(dim=1)
        index = torch.randint(self.dim, (n,), generator=generator, device=device)
        return F.one_hot(index, self.dim).float()


@dataclass(frozen=True)
class ProductPrior:
    parts: tuple[GaussianPrior | CategoricalPrior, ...]

    @property
    def dim(self) -> int:
        return sum(part.dim for part in self.parts)

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
        temperature: float = 0.0,
    ) -> Tensor:
        """[n, dim] codes, the parts side by side in order; ``temperature`` softens the
        categorical part (``CategoricalPrior``)."""
        return torch.cat([
            part.sample(n, generator, device, temperature) if isinstance(part, CategoricalPrior) else part.sample(n, generator, device)
            for part in self.parts
        ], dim=1)

    def split(self, code: Tensor) -> tuple[Tensor, ...]:
        return code.split([part.dim for part in self.parts], dim=1)


def build_prior(config: PriorConfig) -> ProductPrior:
    parts: list[GaussianPrior | CategoricalPrior] = []
    if config.categories:
        parts.append(CategoricalPrior(config.categories))
    if config.gaussian_dim:
        parts.append(GaussianPrior(config.gaussian_dim))
    return ProductPrior(tuple(parts))
