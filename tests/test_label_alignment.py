"""scripts/label_alignment.py: a row of ``pixelgan.evaluation.label_alignment``'s figures per
semi-supervised run, its labelled rows read from the run's record, or a named refusal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import DatasetConfig, PriorConfig, TrainConfig
from pixelgan.data.parquet import read_prepared
from pixelgan.data.splits import labelled_rows
from pixelgan.evaluation import label_alignment
from pixelgan.model import PixelGAN
from tests.helpers import load_script, tiny_model_config

script = load_script("label_alignment")

DATASET = DatasetConfig(name="digits", labels=100)
TRAIN = TrainConfig(seed=1, semi_supervised=True)


def save_run(path: Path, model: PixelGAN, semi_supervised: bool = True) -> Path:
    """A run folder as python -m pixelgan leaves it (its spec's data set and training parts)."""
    path.mkdir()
    spec = {"dataset": dataclasses.asdict(DATASET),
            "train": dataclasses.asdict(dataclasses.replace(TRAIN, semi_supervised=semi_supervised))}
    state = checkpoint_state(model, epoch=1, train_config=TRAIN, run={"spec": spec})
    save_checkpoint(path / "checkpoint.pt", state)
    return path


def tiny_model(data: Path) -> PixelGAN:
    return PixelGAN(tiny_model_config(image=read_prepared(data).image, prior=PriorConfig("categorical_gaussian", 10))).eval()


def test_each_run_gets_a_row_of_its_own_figures(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(digits)
    run = save_run(tmp_path / "run", model)
    script.main([str(digits), str(run), str(save_run(tmp_path / "other", tiny_model(digits))), str(run / "checkpoint.pt")])
    _, _, first, _, again = capsys.readouterr().out.splitlines()
    splits = read_prepared(digits)
    rows = labelled_rows(splits.train.labels, DATASET, TRAIN.seed)  # the run's own seed's rows
    found = label_alignment(model, splits.train, rows, splits.validation, splits.test)
    assert first == (f"| run | {found['head error %']:.2f} | {found['majority-label error %']:.2f} | "
                     f"{found['categories renamed']} of 10 | {found['labelled rows right']} of 100 | "
                     + ", ".join(f"{true}→{said} {count}" for true, said, count in found["commonest errors"]) + " |")
    assert again == first.replace("| run |", "| checkpoint.pt |"), \
        "a checkpoint file, as models/*.pt; a run's figures do not depend on the runs before it"


def test_a_run_without_labels_or_a_folder_without_a_checkpoint_is_refused(digits: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"unlabelled was not trained semi-supervised"):
        script.main([str(digits), str(save_run(tmp_path / "unlabelled", tiny_model(digits), semi_supervised=False))])
    with pytest.raises(SystemExit, match=r"empty/checkpoint.pt not found"):
        script.main([str(digits), str(tmp_path / "empty")])
