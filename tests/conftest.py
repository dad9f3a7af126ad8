"""Shared fixtures: a fixed seed for every test, and the embedded MNIST-5k loaded once."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    from pixelgan.data import load_mnist5k

    return load_mnist5k()
