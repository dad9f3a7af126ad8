"""PixelGAN autoencoders (Makhzani & Frey, NIPS 2017, arXiv 1706.00531) in plain PyTorch."""

from pixelgan.config import (
    ConfigError,
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ImageConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
)
from pixelgan.model import PixelGAN

__all__ = [
    "ConfigError",
    "DecoderConfig",
    "DiscriminatorConfig",
    "EncoderConfig",
    "ImageConfig",
    "ModelConfig",
    "PixelGAN",
    "PriorConfig",
    "TrainConfig",
]
