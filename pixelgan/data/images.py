"""Images as the model sees them.

Images are stored as uint8 [N, C, H, W]. A batch carries them in the decoder's data form:
{0, 1} floats for a Bernoulli decoder (binarised here, at training time, by a fixed threshold
or afresh every time an image is drawn) or 0..255 integers for the 256-way softmax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from pixelgan.config import Binarize, ConfigError, Likelihood


class Batch(NamedTuple):
    images: Tensor  # [B, C, H, W] in data form
    labels: Tensor  # [B] int64 class labels (read in training by the supervised phase only)


def to_signed_unit(x: Tensor) -> Tensor:
    """Data-form images to floats in [-1, 1], the networks' input scale."""
    if x.is_floating_point():
        return 2.0 * x - 1.0
    return x.float() / 127.5 - 1.0


def binarize(images: Tensor, mode: Binarize, generator: torch.Generator | None = None) -> Tensor:
    """uint8 images to {0, 1} floats: threshold at 128, or draw each pixel with p = x / 255."""
    if mode == "threshold":
        return (images >= 128).float()
    if mode == "stochastic":
        return torch.bernoulli(images.float() / 255.0, generator=generator)
    raise ConfigError(f"train.binarize={mode!r}: a Bernoulli decoder needs threshold or stochastic")


def data_form(images: Tensor, likelihood: Likelihood, mode: Binarize = "threshold") -> Tensor:
    """uint8 images [N, C, H, W] in the form a decoder with this likelihood reads and writes."""
    return binarize(images, mode) if likelihood == "bernoulli" else images.long()


class ImageDataset(Dataset[Batch]):
    """uint8 images with labels, served in the form the decoder's likelihood wants.

    ``rotation`` turns each image by up to that many degrees either way (bilinear), then
    ``shift`` moves it by up to that many pixels each way (zero padding), afresh every time it
    is drawn: the labelled rows' augmentation (``train.label_rotation``, ``train.label_shift``),
    so that a head trained on a few images cannot learn them one by one.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        likelihood: Likelihood = "bernoulli",
        binarize: Binarize = "threshold",
        shift: int = 0,
        rotation: float = 0.0,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if likelihood == "bernoulli" and binarize == "none":
            raise ConfigError("train.binarize='none': a Bernoulli decoder needs threshold or stochastic")
        self.images = images
        self.labels = labels.long()
        self.likelihood = likelihood
        self.binarize = binarize
        self.move = self._moves(images.shape[-2:], shift, rotation) if shift or rotation else None

    @staticmethod
    def _moves(size: tuple[int, int], shift: int, rotation: float) -> Callable[[Tensor], Tensor]:
        # torchvision here, not at the top: it imports torch._dynamo (~7 s on a 2-core CPU),
        # which every Ray worker would pay while only labelled images move.
        from torchvision.transforms import v2

        moves = [v2.RandomRotation(rotation, interpolation=v2.InterpolationMode.BILINEAR)] if rotation else []
        moves += [v2.RandomCrop(size, padding=shift)] if shift else []
        return v2.Compose(moves)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Batch:
        image = self.images[index] if self.move is None else self.move(self.images[index])
        return Batch(data_form(image, self.likelihood, self.binarize), self.labels[index])
