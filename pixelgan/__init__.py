"""PixelGAN autoencoders (Makhzani & Frey, NIPS 2017, arXiv 1706.00531) in plain PyTorch.

The model is ``pixelgan.model.PixelGAN``, built from ``pixelgan.config.ModelConfig``; one
training run is ``pixelgan.run.Run``. Importing the package imports nothing else, so a stage
that reads data does not depend on the model's code.
"""
