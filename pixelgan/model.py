"""The PixelGAN autoencoder: encoder, PixelCNN decoder, prior and code discriminator.

A container with no behaviour of its own: the training phases in ``objective`` call its
parts one by one (so a distributed wrapper can be put around each part), and sampling lives
in ``sampling``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from pixelgan.config import ModelConfig
from pixelgan.decoder import PixelCNNDecoder
from pixelgan.discriminator import CodeDiscriminator
from pixelgan.encoder import Encoder
from pixelgan.prior import build_prior


class PixelGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.prior = build_prior(config.prior)
        self.encoder = Encoder(config.image, config.encoder, config.prior)
        self.decoder = PixelCNNDecoder(config.image, config.decoder, config.prior.code_dim)
        self.discriminator = CodeDiscriminator(self.prior, config.discriminator)

    def with_parts(self, wrap: Callable[[nn.Module], nn.Module]) -> PixelGAN:
        """A view whose encoder, decoder and discriminator are ``wrap(part)``.

        It shares this model's parameters, so training the view (each part in its own
        DistributedDataParallel, say) trains this model, whose state dict stays unprefixed.
        """
        view = copy.copy(self)
        view._modules = {name: wrap(part) for name, part in self._modules.items()}
        return view
