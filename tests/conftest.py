"""Shared fixtures: a compile cache of this CPU's own, a fixed seed and Ray's storage
(PIXELGAN_RUNS) in the test's own folder for every test, the
embedded MNIST-5k loaded once, and scikit-learn's digits prepared once; tests marked ``gpu``
are skipped where torch sees no CUDA device."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import torch

from pixelgan import speed

# torch.compile's kernel cache, one per set of CPU flags: a machine handed on to a session on
# another CPU keeps /tmp, and a kernel built for one CPU's vector units crashed on another.
_FLAGS = hashlib.sha256(" ".join(sorted(speed.cpu_flags() or ())).encode()).hexdigest()[:12]
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"pixelgan-inductor-{_FLAGS}"))


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _ray_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run a test trains, in process or in a stage it starts, under <tmp_path>/runs."""
    monkeypatch.setenv("PIXELGAN_RUNS", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    from pixelgan.data import load_mnist5k

    return load_mnist5k()


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as the prepare stage writes them (180 validation and 180 test
    images): the folder the scripts read."""
    from pixelgan.config import DatasetConfig
    from pixelgan.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("digits")
    prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180), root / "digits", root / "raw")
    return root / "digits"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(no_gpu)
