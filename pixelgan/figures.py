"""The paper's figures as image grids: what the code holds and what the PixelCNN adds.

- ``global_local``: one code per row and several PixelCNN draws per code (Figure 2): the
  rows differ in global shape, the draws within a row in local detail;
- ``by_category``: one row per category of a categorical prior (Figure 4: content by row,
  style within it);
- ``reconstructions``: each image beside a draw from p(x | f(x, n)).

A decoder that reads no pixels (``decoder.autoregressive: false``, the adversarial
autoencoder's baseline) is shown by its mean image p(x = 1 | z), as the AAE paper shows
its decoder, rather than by independent per-pixel draws.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from pixelgan.io import atomic_path
from pixelgan.model import PixelGAN
from pixelgan.sampling import sample


@torch.no_grad()
def draw(model: PixelGAN, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Images for codes z [B, code_dim], as floats in [0, 1] ready for a grid."""
    decoder = model.decoder
    model.eval()
    if not decoder.config.autoregressive and decoder.config.likelihood == "bernoulli":
        empty = torch.zeros(len(z), decoder.image.channels, decoder.image.height, decoder.image.width, device=z.device)
        return torch.sigmoid(decoder(empty, z)).float()
    images = sample(decoder, z, generator)
    return images.float() / (1.0 if images.is_floating_point() else 255.0)


def global_local(model: PixelGAN, rows: int, per_row: int, generator: torch.Generator | None = None) -> Tensor:
    """``rows`` codes from the prior, each drawn ``per_row`` times: [rows * per_row, C, H, W]."""
    device = next(model.parameters()).device
    z = model.prior.sample(rows, generator, device).repeat_interleave(per_row, dim=0)
    return draw(model, z, generator)


def category_codes(model: PixelGAN, per_category: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Codes that fix the category row by row (any Gaussian style part from the prior):
    ([K * per_category, code_dim], the category of each)."""
    categories = model.config.prior.categories
    if not categories:
        raise ValueError(f"prior.kind={model.config.prior.kind} has no categories")
    device = next(model.parameters()).device
    z = model.prior.sample(categories * per_category, generator, device)
    category = torch.arange(categories, device=device).repeat_interleave(per_category)
    z[:, :categories] = torch.nn.functional.one_hot(category, categories).to(z.dtype)
    return z, category


def by_category(model: PixelGAN, per_category: int, generator: torch.Generator | None = None) -> Tensor:
    """One row per category, ``per_category`` draws each: [K * per_category, C, H, W]."""
    z, _ = category_codes(model, per_category, generator)
    return draw(model, z, generator)


@torch.no_grad()
def reconstructions(model: PixelGAN, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each data-form image followed by a draw from p(x | f(x, n)): [2N, C, H, W] in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    x = images.to(device)
    drawn = draw(model, model.encoder(x).code, generator)
    original = x.float() / (1.0 if x.is_floating_point() else 255.0)
    return torch.stack([original, drawn], dim=1).flatten(0, 1)


def model_figures(model: PixelGAN, validation_images: Tensor, rows: int, columns: int, seed: int) -> dict[str, Tensor]:
    """A model's figures by name, drawn with ``seed``: ``samples`` from the prior; with
    categories ``by_category`` (a row each) and ``reconstructions`` of data-form validation
    images; for a Gaussian code read by a PixelCNN, ``global_local``."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    shown = rows * columns
    figures = {"samples": draw(model, model.prior.sample(shown, generator), generator)}
    if model.config.prior.categories:
        figures["by_category"] = by_category(model, columns, generator)
        figures["reconstructions"] = reconstructions(model, validation_images[: shown // 2], generator)
    elif model.config.decoder.conditioning != "none" and model.config.decoder.autoregressive:
        figures["global_local"] = global_local(model, rows, columns, generator)
    return figures


def save_grid(images: Tensor, path: str | os.PathLike[str], per_row: int) -> None:
    """A PNG grid, ``per_row`` images a row, written atomically."""
    with atomic_path(path) as tmp:
        save_image(images.cpu(), tmp, format="png", nrow=per_row, padding=1, pad_value=0.5)


def figure_2(panels: list[torch.Tensor], per_row: int, path: Path) -> None:
    """Grids side by side (PixelGAN's global/local | plain PixelCNN | AAE), as in the paper."""
    grids = [make_grid(images.cpu(), nrow=per_row, padding=1, pad_value=0.5) for images in panels]
    height = min(grid.shape[1] for grid in grids)
    with atomic_path(path) as tmp:
        save_image(make_grid([grid[:, :height] for grid in grids], nrow=len(grids), padding=6, pad_value=1.0), tmp, format="png")
