"""scripts/sample_quality.py: the evaluate stage's sample scores for runs of python -m pixelgan."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.params import eval_config, load_params
from pixelgan.classifier import Classifier, load_classifier
from pixelgan.config import ImageConfig, PriorConfig
from pixelgan.data.parquet import read_prepared
from pixelgan.model import PixelGAN
from pixelgan.report import prior_sample_quality
from tests.helpers import load_script, save_run, tiny_model_config

sample_quality = load_script("sample_quality")


def save_classifier(path: Path, likelihood: str, shape: tuple[int, int, int] = (1, 8, 8)) -> Path:
    """An untrained classifier in the classifier stage's format."""
    torch.manual_seed(0)
    torch.save({"weights": Classifier(*shape, classes=10).state_dict(), "shape": list(shape), "classes": 10,
                "likelihood": likelihood, "dataset": "digits"}, path)
    return path


def test_the_table_holds_the_evaluate_stages_scores(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = PixelGAN(tiny_model_config(image=read_prepared(digits).image, prior=PriorConfig("categorical", 10))).eval()
    run = save_run(tmp_path / "run", model)
    classifier = save_classifier(tmp_path / "classifier.pt", "bernoulli")
    sample_quality.main([str(classifier), str(digits), str(run)])
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header.split(" | ")[1] == "category_purity" and row.startswith("| run | ")
    with torch.no_grad():
        expected = prior_sample_quality(model, load_classifier(classifier)[0], read_prepared(digits).test,
                                        eval_config(load_params()))
    cells = row.strip(" |").split(" | ")[1:]
    assert cells == [f"{expected[column]:.3f}" for column in sample_quality.COLUMNS]


def test_a_classifier_of_another_data_form_or_a_folder_without_a_checkpoint_is_refused(digits: Path, tmp_path: Path) -> None:
    image = read_prepared(digits).image
    categorical = PriorConfig("categorical", 10)
    eight_bit = save_run(tmp_path / "eight_bit", PixelGAN(tiny_model_config(image=image, prior=categorical, likelihood="categorical")))
    classifier = save_classifier(tmp_path / "classifier.pt", "bernoulli")
    with pytest.raises(SystemExit, match=r"eight_bit decodes 'categorical' images of shape \[1, 8, 8\], the classifier "
                       r".*classifier.pt was trained on 'bernoulli' ones"):
        sample_quality.main([str(classifier), str(digits), str(eight_bit)])
    wide = save_run(tmp_path / "wide", PixelGAN(tiny_model_config(image=ImageConfig(1, 8, 12), prior=categorical)))
    with pytest.raises(SystemExit, match=r"wide decodes 'bernoulli' images of shape \[1, 8, 12\]"):
        sample_quality.main([str(classifier), str(digits), str(wide)])
    wide_classifier = save_classifier(tmp_path / "wide_classifier.pt", "bernoulli", (1, 8, 12))
    with pytest.raises(SystemExit, match=r"wide: image.width=12 but .*digits has 8"):
        sample_quality.main([str(wide_classifier), str(digits), str(wide)])
    with pytest.raises(SystemExit, match=r"empty/checkpoint.pt not found"):
        sample_quality.main([str(classifier), str(digits), str(tmp_path / "empty")])
