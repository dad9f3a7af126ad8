"""Writers of small files in the real raw formats (IDX, SVHN .mat, smallNORB), for fixtures."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C}
NORB_MAGIC = {np.dtype("u1"): 0x1E3D4C55, np.dtype("<i4"): 0x1E3D4C54}


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def write_idx(path: Path, array: np.ndarray) -> Path:
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return _write(path, header + array.tobytes())


def write_norb(path: Path, array: np.ndarray) -> Path:
    array = np.asarray(array)
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)  # the format stores at least 3 sizes
    header = struct.pack("<iI", NORB_MAGIC[array.dtype], array.ndim) + struct.pack(f"<{len(dims)}I", *dims)
    return _write(path, header + array.tobytes())


def write_svhn(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """images uint8 [N, 3, 32, 32], labels 1..10 as SVHN stores them."""
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": labels.reshape(-1, 1).astype(np.uint8)})
    return path


def fake_images(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def balanced_labels(n: int, classes: int) -> np.ndarray:
    return np.arange(n) % classes


def write_mnist_folder(root: Path, train: int = 60, test: int = 20, gz: bool = False) -> Path:
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", train, 0), ("t10k", test, 1)):
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", fake_images(n, 1, 28, seed)[:, 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", balanced_labels(n, 10).astype(np.uint8))
    return root


NORB_NAME = "smallnorb-5x46789x9x18x6x2x96x96-{split}-{kind}.mat"


def write_smallnorb_folder(root: Path, train: int = 30, test: int = 10, size: int = 12) -> Path:
    for split, n, seed in (("training", train, 0), ("testing", test, 1)):
        pairs = np.random.default_rng(seed).integers(0, 256, (n, 2, size, size), dtype=np.uint8)
        write_norb(root / (NORB_NAME.format(split=split, kind="dat") + ".gz"), pairs)
        write_norb(root / NORB_NAME.format(split=split, kind="cat"), balanced_labels(n, 5).astype("<i4"))
    return root
