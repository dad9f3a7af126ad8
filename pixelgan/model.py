"""The PixelGAN autoencoder: encoder, PixelCNN decoder, prior and code discriminator.

A container with no behaviour of its own: the training phases in ``objective`` call its
parts one by one (so a distributed wrapper can be put around each part), and sampling lives
in ``sampling``.
"""

from __future__ import annotations

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
