"""Ancestral sampling from p(x|z): pixel by pixel in raster order, sub-pixel by sub-pixel.

Two samplers that draw the same images from the same random stream:

- ``sample_naive``: one full decoder pass per sub-pixel, O(H * W * C) passes over the whole
  image. Simple enough to trust; the reference the cached sampler is tested against.
- ``sample``: the cached sampler (the idea of Fast PixelCNN++, Ramachandran et al. 2017).
  Each layer's outputs are kept as they are computed. The vertical stack at row i reads only
  rows < i, so it runs once per row, on the r + 1 cached rows its kernel reads; the
  horizontal stack and the head run once per sub-pixel, at that one position, on the r + 1
  cached columns to its left. Nothing is recomputed for a pixel that did not change.

The cached sampler mirrors ``PixelCNNDecoder.forward`` layer by layer (the shifts of
``layers``) with valid convolutions on padded caches; a test checks that both samplers give
equal images for both likelihoods and both conditioning modes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelgan.data import to_signed_unit
from pixelgan.decoder import PixelCNNDecoder
from pixelgan.layers import gate
from pixelgan.model import PixelGAN


def _empty_image(decoder: PixelCNNDecoder, n: int, device: torch.device) -> Tensor:
    image = decoder.image
    dtype = next(decoder.parameters()).dtype if decoder.config.likelihood == "bernoulli" else torch.long
    return torch.zeros(n, image.channels, image.height, image.width, dtype=dtype, device=device)


def _draw(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One value per row: [B] Bernoulli logits, or [B, 256] softmax logits."""
    if logits.dim() == 1:
        return torch.bernoulli(torch.sigmoid(logits), generator=generator)
    return torch.multinomial(logits.float().softmax(dim=1), 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample_naive(decoder: PixelCNNDecoder, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one image per code z [B, code_dim] with a full pass per sub-pixel: [B, C, H, W]."""
    x = _empty_image(decoder, len(z), z.device)
    _, channels, height, width = x.shape
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                logits = decoder(x, z)  # [B, C, H, W] or [B, 256, C, H, W]
                x[:, c, i, j] = _draw(logits[:, c, i, j] if logits.dim() == 4 else logits[:, :, c, i, j], generator)
    return x


def _valid(conv: nn.Conv2d, window: Tensor) -> Tensor:
    """``conv`` applied without padding to a window the caller has cut from a padded cache."""
    return F.conv2d(window, conv.weight, conv.bias)


def _at(bias: Tensor | float, rows: slice, cols: slice = slice(None)) -> Tensor | float:
    """A per-channel bias [B, D, 1, 1] (or none) as it is, a spatial one [B, D, H, W] cut to a window."""
    if isinstance(bias, float) or bias.shape[-2:] == (1, 1):
        return bias
    return bias[:, :, rows, cols]


@torch.no_grad()
def sample(decoder: PixelCNNDecoder, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one image per code z [B, code_dim], caching every layer: [B, C, H, W] in data form."""
    x = _empty_image(decoder, len(z), z.device)
    batch, channels, height, width = x.shape
    r = decoder.config.kernel_size // 2
    features = decoder.config.channels
    dtype = next(decoder.parameters()).dtype
    condition = decoder.condition(z.to(dtype))
    biases = [layer.biases(condition) for layer in decoder.layers]

    def cache(depth: int) -> Tensor:  # zero-padded r rows above and r columns on each side
        return torch.zeros(batch, depth, height + r, width + 2 * r, dtype=dtype, device=z.device)

    signed = cache(channels)  # the image as the layers read it, in [-1, 1]
    vertical = [cache(features) for _ in range(len(decoder.layers) + 1)]
    inside = slice(r, r + width)
    for i in range(height):
        # Vertical stack at row i: reads rows < i only, so once per row.
        if i > 0:  # CausalInput: row i holds the conv of rows i-1-r .. i-1 (row 0 stays zero)
            vertical[0][:, :, i + r, inside] = _valid(decoder.input.vertical, signed[:, :, i - 1 : i + r])[:, :, 0]
        to_horizontal = []
        for depth, (layer, (bias_v, _)) in enumerate(zip(decoder.layers, biases), start=1):
            v_pre = _valid(layer.vertical, vertical[depth - 1][:, :, i : i + r + 1])  # [B, 2F, 1, W]
            vertical[depth][:, :, i + r, inside] = gate(v_pre + _at(bias_v, slice(i, i + 1)))[:, :, 0]
            to_horizontal.append(layer.vertical_to_horizontal(v_pre))
        # Horizontal stack and head: once per pixel, on the r + 1 columns to its left.
        horizontal = [torch.zeros(batch, features, 1, width + r, dtype=dtype, device=z.device)
                      for _ in range(len(decoder.layers) + 1)]
        for j in range(width):
            h = vertical[0][:, :, i + r : i + r + 1, j + r : j + r + 1]
            if j > 0:  # CausalInput: the conv of columns j-1-r .. j-1 of row i
                h = h + _valid(decoder.input.horizontal, signed[:, :, i + r : i + r + 1, j - 1 : j + r])
            horizontal[0][:, :, :, j + r : j + r + 1] = h
            for depth, (layer, (_, bias_h)) in enumerate(zip(decoder.layers, biases), start=1):
                h_pre = _valid(layer.horizontal, horizontal[depth - 1][:, :, :, j : j + r + 1])
                h_pre = h_pre + to_horizontal[depth - 1][:, :, :, j : j + 1]
                h = h + layer.horizontal_out(gate(h_pre + _at(bias_h, slice(i, i + 1), slice(j, j + 1))))
                horizontal[depth][:, :, :, j + r : j + r + 1] = h
            for c in range(channels):
                logits = decoder.head(h, signed[:, :, i + r : i + r + 1, j + r : j + r + 1])  # [B, C*V, 1, 1]
                logits = logits.view(batch, channels, -1)[:, c]  # [B, V]
                x[:, c, i, j] = _draw(logits[:, 0] if logits.shape[1] == 1 else logits, generator)
                if decoder.config.autoregressive:  # otherwise the decoder reads zeros, as in forward
                    signed[:, c, i + r, j + r] = to_signed_unit(x[:, c, i, j]).to(dtype)
    return x


@torch.no_grad()
def sample_from_prior(
    model: PixelGAN, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Codes z ~ p(z) and one image x ~ p(x|z) for each: ([n, C, H, W], [n, code_dim])."""
    device = next(model.parameters()).device
    z = model.prior.sample(n, generator, device)
    return sample(model.decoder, z, generator), z
