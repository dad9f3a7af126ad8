"""Data: images in the model's form, the raw formats, splits, and the Parquet files between stages."""

from pixelgan.data.images import Batch, ImageDataset, binarize, data_form, to_signed_unit
from pixelgan.data.sources import load_mnist5k

__all__ = ["Batch", "ImageDataset", "binarize", "data_form", "load_mnist5k", "to_signed_unit"]
