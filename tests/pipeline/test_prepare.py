"""The prepare stage as DVC runs it, in a temporary copy of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.prepare import main
from pixelgan.data.parquet import read_split
from tests.helpers import run
from tests.pipeline.conftest import PreparedRepo, copy_of


def test_an_unknown_data_set_fails_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset.name=cifar"]) == 2
    assert "dataset.name='cifar' is not one of" in capsys.readouterr().err


@pytest.mark.slow
def test_dvc_repro_prepare_writes_mnist5k_and_digits(prepared_repo: PreparedRepo, tmp_path: Path) -> None:
    repo = copy_of(prepared_repo, tmp_path / "repo")
    assert "prepared mnist5k into data/mnist5k: train 4000, validation 500, test 500 in" in prepared_repo.said
    train, metadata = read_split(repo / "data/mnist5k/train.parquet")
    assert train.images.shape == (4000, 1, 28, 28) and metadata["dataset"] == "mnist5k"
    assert "didn't change, skipping" in run(repo, "-m", "dvc", "repro", "prepare")

    run(repo, "-m", "pipeline.params", "dataset=digits")  # what `dvc exp run -S dataset=digits` does
    assert "prepared digits into data/digits" in run(repo, "-m", "dvc", "repro", "prepare")
    for split in ("train", "validation", "test"):
        data, metadata = read_split(repo / f"data/digits/{split}.parquet")
        assert data.images.shape[1:] == (1, 8, 8) and metadata["split"] == split
    assert (repo / "data/digits/summary.json").is_file() and (repo / "data/digits/examples.png").is_file()
    assert json.loads((repo / "metrics/data/digits.json").read_text())["splits"]["test"]["count"] == 180
    assert (repo / "results/data/digits-examples.png").read_bytes() == (repo / "data/digits/examples.png").read_bytes()
