"""scripts/label_alignment.py: renaming a head's categories moves its error, not its clusters'."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import DatasetConfig, PriorConfig, TrainConfig
from pixelgan.data import data_form
from pixelgan.data.parquet import read_prepared
from pixelgan.data.prepare import prepare_dataset
from pixelgan.data.splits import labelled_subset
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, supervised_phase
from tests.helpers import load_script, tiny_model_config

label_alignment = load_script("label_alignment")

LABELS = 100
TRAIN = TrainConfig(seed=0, semi_supervised=True)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    prepare_dataset(DatasetConfig(name="digits", labels=LABELS, validation_size=180, test_size=180), root / "digits", root / "raw")
    return root / "digits"


@pytest.fixture(scope="module")
def classifier(digits: Path) -> PixelGAN:
    """A tiny model whose head learnt the labelled rows (the supervised phase alone)."""
    torch.manual_seed(0)
    splits = read_prepared(digits)
    model = PixelGAN(tiny_model_config(image=splits.image, prior=PriorConfig("categorical_gaussian", 10)))
    rows = labelled_subset(splits.train.labels, LABELS, 10, TRAIN.seed)
    images, labels = data_form(torch.from_numpy(splits.train.images[rows]), "bernoulli"), torch.from_numpy(splits.train.labels[rows])
    optimizer = build_optimizers(model, TRAIN).supervised
    assert optimizer is not None
    for _ in range(300):
        supervised_phase(model, optimizer, images, labels)
    return model.eval()


def save_run(path: Path, model: PixelGAN, semi_supervised: bool = True) -> Path:
    """A run folder as python -m pixelgan leaves it (its spec's data set and training parts)."""
    path.mkdir()
    spec = {"dataset": dataclasses.asdict(DatasetConfig(name="digits", labels=LABELS)),
            "train": dataclasses.asdict(dataclasses.replace(TRAIN, semi_supervised=semi_supervised))}
    state = checkpoint_state(model, epoch=1, train_config=TRAIN, run={"spec": spec})
    save_checkpoint(path / "checkpoint.pt", state)
    return path


def renamed(model: PixelGAN, a: int, b: int) -> PixelGAN:
    """The same model with categories ``a`` and ``b`` swapped: the same clusters, other names."""
    swapped = PixelGAN(model.config)
    swapped.load_state_dict(model.state_dict())
    order = torch.arange(10)
    order[[a, b]] = order[[b, a]]
    head, balance = swapped.encoder.categorical, swapped.encoder.balance
    assert head is not None and balance is not None
    with torch.no_grad():
        head.weight.copy_(head.weight[order])
        head.bias.copy_(head.bias[order])
        balance.running_mean.copy_(balance.running_mean[order])
        balance.running_var.copy_(balance.running_var[order])
    return swapped.eval()


def test_renamed_categories_raise_the_head_error_and_leave_the_clusters_error(
    digits: Path, classifier: PixelGAN, tmp_path: Path
) -> None:
    trained_run = save_run(tmp_path / "trained", classifier)
    trained = label_alignment.label_alignment(trained_run, digits)
    swapped = label_alignment.label_alignment(save_run(tmp_path / "swapped", renamed(classifier, 0, 1)), digits)
    assert label_alignment.label_alignment(trained_run, digits) == trained, "a run's figures do not depend on the runs before it"
    assert label_alignment.label_alignment(trained_run / "checkpoint.pt", digits) == trained, "a checkpoint file, as models/*.pt"
    assert trained["categories renamed"] == 0 and trained["labelled rows right"] >= 0.9 * LABELS, "the head fits its labels"
    assert trained["head error %"] == pytest.approx(trained["majority-label error %"])
    assert swapped["categories renamed"] == 2
    assert swapped["labelled rows right"] <= trained["labelled rows right"] - 2 * 0.9 * LABELS / 10
    assert swapped["head error %"] > trained["head error %"] + 10
    assert swapped["majority-label error %"] == pytest.approx(trained["majority-label error %"])
    (first, second) = swapped["commonest errors"][:2]
    assert {first[:2], second[:2]} == {(0, 1), (1, 0)}, "the swapped digits lead the errors"


def test_a_run_without_labels_or_a_folder_without_a_checkpoint_is_refused(
    digits: Path, classifier: PixelGAN, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match=r"unlabelled was not trained semi-supervised"):
        label_alignment.label_alignment(save_run(tmp_path / "unlabelled", classifier, semi_supervised=False), digits)
    with pytest.raises(FileNotFoundError, match=r"empty/checkpoint.pt not found"):
        label_alignment.label_alignment(tmp_path / "empty", digits)
