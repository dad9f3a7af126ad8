"""Ancestral sampling from p(x|z): pixel by pixel in raster order, sub-pixel by sub-pixel.

The naive sampler: one full decoder pass for every sub-pixel, O(H * W * C) passes. It is the
reference that a cached sampler must match.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pixelgan.decoder import PixelCNNDecoder
from pixelgan.model import PixelGAN


@torch.no_grad()
def sample(decoder: PixelCNNDecoder, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one image per code z [B, code_dim]: [B, C, H, W] in data form."""
    image = decoder.image
    bernoulli = decoder.config.likelihood == "bernoulli"
    x = torch.zeros(
        len(z), image.channels, image.height, image.width,
        dtype=torch.float32 if bernoulli else torch.long, device=z.device,
    )
    for i in range(image.height):
        for j in range(image.width):
            for c in range(image.channels):
                logits = decoder(x, z)
                if bernoulli:
                    probs = torch.sigmoid(logits[:, c, i, j])
                    x[:, c, i, j] = torch.bernoulli(probs, generator=generator)
                else:
                    probs = logits[:, :, c, i, j].float().softmax(dim=1)  # [B, 256]
                    x[:, c, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return x


@torch.no_grad()
def sample_from_prior(
    model: PixelGAN, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Codes z ~ p(z) and one image x ~ p(x|z) for each: ([n, C, H, W], [n, code_dim])."""
    device = next(model.parameters()).device
    z = model.prior.sample(n, generator, device)
    return sample(model.decoder, z, generator), z
