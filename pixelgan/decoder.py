"""The generative path p(x|z): a conditional gated PixelCNN (PixelGAN paper, section 2).

The decoder composes the causal pieces of ``layers``: an input layer that sees only earlier
pixels, ``n_layers`` gated layers each with the code's adaptive bias, and a sub-pixel head.
The code enters every gated layer either as one bias per channel (location-independent) or
as a spatial map upsampled from z by a small deconv net (location-dependent).

NOTE: the paper does not give the decoder's sizes; ours are in ``DecoderConfig``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelgan.config import DecoderConfig, ImageConfig
from pixelgan.data import to_signed_unit
from pixelgan.layers import CausalInput, GatedLayer, LatentMap, SubPixelHead


class PixelCNNDecoder(nn.Module):
    def __init__(self, image: ImageConfig, config: DecoderConfig, code_dim: int) -> None:
        super().__init__()
        self.image = image
        self.config = config
        self.latent_map: LatentMap | None = None
        if config.conditioning == "location_dependent":
            self.latent_map = LatentMap(code_dim, config.map_channels, image.height, image.width)
            condition_channels = config.map_channels
        else:
            condition_channels = code_dim if config.conditioning == "location_independent" else 0
        self.input = CausalInput(image.channels, config.channels, config.kernel_size)
        self.layers = nn.ModuleList(
            GatedLayer(config.channels, config.kernel_size, condition_channels)
            for _ in range(config.n_layers)
        )
        self.head = SubPixelHead(
            config.channels, image.channels, config.head_channels, config.n_values
        )

    def condition(self, z: Tensor) -> Tensor | None:
        """The code as each gated layer reads it: [B, D, 1, 1], a [B, C, H, W] map, or None."""
        if self.config.conditioning == "none":
            return None
        if self.latent_map is None:
            return z[:, :, None, None]
        return self.latent_map(z)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Logits of every sub-pixel of x given z, each seeing only what comes before it.

        x is in data form ({0, 1} floats or 0..255 integers, [B, C, H, W]). Returns
        [B, C, H, W] Bernoulli logits, or [B, 256, C, H, W] for the 8-bit softmax.
        """
        x = to_signed_unit(x).to(self.input.vertical.weight.dtype)
        if not self.config.autoregressive:
            x = torch.zeros_like(x)  # p(x|z) then factorises over pixels
        condition = self.condition(z)
        v, h = self.input(x)
        for layer in self.layers:
            v, h = layer(v, h, condition)
        logits = self.head(h, x)  # [B, C * V, H, W]
        batch, _, height, width = logits.shape
        if self.config.likelihood == "bernoulli":
            return logits
        logits = logits.view(batch, self.image.channels, self.config.n_values, height, width)
        return logits.transpose(1, 2)


def negative_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x|z) in nats per image, [B], from the decoder's logits (in float32, whatever
    precision they were computed in)."""
    logits = logits.float()
    if logits.dim() == 4:
        nll = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    else:
        nll = F.cross_entropy(logits, x.long(), reduction="none")
    return nll.flatten(1).sum(dim=1)
