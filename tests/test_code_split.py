"""scripts/code_split.py: a row of ``pixelgan.evaluation.code_split_nll``'s figures per run, or a named refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelgan.config import PriorConfig
from pixelgan.data.parquet import read_prepared
from pixelgan.evaluation import code_split_nll
from pixelgan.model import PixelGAN
from tests.helpers import load_script, save_run, tiny_model_config

code_split = load_script("code_split")


def tiny_model(data: Path, prior: PriorConfig) -> PixelGAN:
    return PixelGAN(tiny_model_config(image=read_prepared(data).image, prior=prior)).eval()


def test_a_run_gets_a_row_of_its_part_swapped_nlls(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(digits, PriorConfig("categorical_gaussian", 10))
    code_split.main([str(digits), str(save_run(tmp_path / "run", model))])
    header, _, row = capsys.readouterr().out.splitlines()
    nll = code_split_nll(model, read_prepared(digits).test)
    assert header == "| run | " + " | ".join(nll) + " |"
    assert row == "| run | " + " | ".join(f"{value:.2f}" for value in nll.values()) + " |"
    torch.manual_seed(1)
    assert code_split_nll(model, read_prepared(digits).test) == nll, "seeded on its own: the caller's generator is not read"


def test_a_code_without_a_style_part_or_a_folder_without_a_checkpoint_is_refused(digits: Path, tmp_path: Path) -> None:
    plain = save_run(tmp_path / "plain", tiny_model(digits, PriorConfig("categorical", 10)))
    with pytest.raises(SystemExit, match=r"plain has prior 'categorical'"):
        code_split.main([str(digits), str(plain)])
    with pytest.raises(SystemExit, match=r"empty/checkpoint.pt not found"):
        code_split.main([str(digits), str(tmp_path / "empty")])
