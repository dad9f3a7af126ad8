"""scripts/code_split.py: the part-swapped NLLs agree with the engine's own and other-code NLL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pixelgan.config import PriorConfig
from pixelgan.data import ImageDataset
from pixelgan.data.parquet import read_prepared
from pixelgan.engine import evaluate
from pixelgan.model import PixelGAN
from tests.helpers import load_script, save_run, tiny_model_config

code_split = load_script("code_split")


def tiny_model(data: Path, prior: PriorConfig) -> PixelGAN:
    return PixelGAN(tiny_model_config(image=read_prepared(data).image, prior=prior)).eval()


def test_own_and_other_code_match_the_engine(digits: Path, tmp_path: Path) -> None:
    model = tiny_model(digits, PriorConfig("categorical_gaussian", 10))
    run = save_run(tmp_path / "run", model)
    torch.manual_seed(0)
    nll = code_split.code_split(run, digits)
    test = read_prepared(digits).test
    torch.manual_seed(0)  # the same encoder noise
    engine = evaluate(model, DataLoader(ImageDataset(torch.from_numpy(test.images), torch.from_numpy(test.labels), likelihood="bernoulli"), batch_size=500), "cpu")
    assert nll["own code"] == pytest.approx(engine["nll"], rel=1e-5)
    assert nll["other code"] == pytest.approx(engine["nll_other_code"], rel=1e-5)


def test_each_swap_changes_only_its_part(digits: Path, tmp_path: Path) -> None:
    """A decoder that reads the style and not the categories: swapping the
    categories changes nothing, swapping the style is swapping the whole code. (Untrained,
    it has no reason to fit an image better with its own code, so only a change is asserted.)"""
    model = tiny_model(digits, PriorConfig("categorical_gaussian", 10))
    with torch.no_grad():
        for layer in model.decoder.layers:
            layer.condition.weight[:, :10] = 0
            layer.condition.weight[:, 10:] *= 50
    nll = code_split.code_split(save_run(tmp_path / "run", model), digits)
    assert nll["other categories"] == pytest.approx(nll["own code"], rel=1e-6)
    assert nll["other style"] == pytest.approx(nll["other code"], rel=1e-6)
    assert nll["other style"] != pytest.approx(nll["own code"], rel=1e-6), "the style is what this decoder reads"


def test_a_code_without_a_style_part_or_a_folder_without_a_checkpoint_is_refused(digits: Path, tmp_path: Path) -> None:
    plain = save_run(tmp_path / "plain", tiny_model(digits, PriorConfig("categorical", 10)))
    with pytest.raises(SystemExit, match=r"plain has prior 'categorical'"):
        code_split.code_split(plain, digits)
    with pytest.raises(FileNotFoundError, match=r"empty/checkpoint.pt not found"):
        code_split.code_split(tmp_path / "empty", digits)
