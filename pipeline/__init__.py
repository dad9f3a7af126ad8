"""The DVC stages: thin `main()`s around `pixelgan`, and the only place Hydra, DVC and Ray appear."""
