"""Readers of the raw formats the data sets come in, strict about every byte.

- IDX (MNIST): a big-endian header, magic ``00 00 <type> <ndim>``, ``ndim`` uint32 sizes, data.
- SVHN cropped digits: MATLAB v5 ``.mat`` files with ``X`` [32, 32, 3, N] and ``y`` [N, 1],
  label 10 standing for the digit 0.
- smallNORB (NYU): a little-endian header, int32 magic (0x1E3D4C55 bytes, 0x1E3D4C54 int32),
  int32 ``ndim``, max(3, ndim) int32 sizes, data.

Any of them may be gzipped (``.gz``). A missing, truncated or malformed file raises
``DataFormatError`` naming the file; nothing is guessed or padded.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A raw data file that is missing, truncated or not what it claims to be."""


def read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{path}: not a complete gzip file ({error})") from error


def _payload(path: Path, data: bytes, header: int, dims: tuple[int, ...], itemsize: int) -> bytes:
    expected = math.prod(dims) * itemsize
    got = len(data) - header
    if got < expected:
        raise DataFormatError(f"{path}: truncated: {got} bytes of data where its header promises {expected}")
    if got > expected:
        raise DataFormatError(f"{path}: {got - expected} bytes more than its header's sizes {dims} allow")
    return data[header:]


IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    data = read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{path}: truncated: {len(data)} bytes, shorter than an IDX header")
    if data[:2] != b"\0\0" or data[2] not in IDX_TYPES:
        raise DataFormatError(f"{path}: wrong magic number 0x{data[:4].hex()}: not an IDX file")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{path}: truncated inside its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    payload = _payload(path, data, header, dims, dtype.itemsize)
    return np.frombuffer(payload, dtype=dtype).reshape(dims)


NORB_TYPES = {0x1E3D4C55: np.dtype("<u1"), 0x1E3D4C54: np.dtype("<i4"), 0x1E3D4C56: np.dtype("<i2"), 0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8")}


def read_norb(path: Path) -> np.ndarray:
    data = read_bytes(path)
    if len(data) < 8:
        raise DataFormatError(f"{path}: truncated: {len(data)} bytes, shorter than a NORB header")
    magic, ndim = struct.unpack("<iI", data[:8])
    if magic & 0xFFFFFFFF not in NORB_TYPES:
        raise DataFormatError(f"{path}: wrong magic number 0x{magic & 0xFFFFFFFF:08X}: not a NORB binary matrix")
    if not 1 <= ndim <= 8:
        raise DataFormatError(f"{path}: implausible number of dimensions {ndim}")
    header = 8 + 4 * max(3, ndim)
    if len(data) < header:
        raise DataFormatError(f"{path}: truncated inside its header")
    dims = struct.unpack(f"<{ndim}I", data[8 : 8 + 4 * ndim])
    dtype = NORB_TYPES[magic & 0xFFFFFFFF]
    payload = _payload(path, data, header, dims, dtype.itemsize)
    return np.frombuffer(payload, dtype=dtype).reshape(dims)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 3, 32, 32] uint8 and labels [N] in 0..9 from an SVHN cropped-digits file."""
    from scipy.io import loadmat  # scipy comes with scikit-learn; only SVHN needs it

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        mat = loadmat(path)
    except Exception as error:  # scipy raises many kinds for a damaged file
        raise DataFormatError(f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})") from error
    for key in ("X", "y"):
        if key not in mat:
            raise DataFormatError(f"{path}: no variable {key!r}; an SVHN file holds X and y")
    images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.dtype != np.uint8:
        raise DataFormatError(f"{path}: X is {images.dtype} {images.shape}, not uint8 [32, 32, 3, N]")
    if len(labels) != images.shape[3]:
        raise DataFormatError(f"{path}: {images.shape[3]} images but {len(labels)} labels")
    check_labels(path, labels, low=1, high=10)
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), (labels % 10).astype(np.int64)


def check_labels(path: Path, labels: np.ndarray, low: int, high: int) -> None:
    bad = (labels < low) | (labels > high)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: label {labels[first]} at row {first} is out of range {low}..{high} "
            f"({int(bad.sum())} such rows)"
        )
