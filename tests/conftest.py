"""Shared fixtures: a fixed seed for every test, and the embedded MNIST-5k loaded once; tests
marked ``gpu`` are skipped where torch sees no CUDA device."""

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(no_gpu)
