"""The classifier and evaluate stages end to end, on tiny untrained models (no Ray needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import classifier, evaluate
from pipeline.params import load_params, run_params, train_spec
from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import DatasetConfig
from pixelgan.data.prepare import prepare_dataset
from pixelgan.model import PixelGAN
from tests.helpers import TINY_MODEL_OVERRIDES

TINY = [
    "dataset=digits",
    "prior=categorical",
    "prior.dim=10",
    *TINY_MODEL_OVERRIDES,
    "eval.samples=24",
    "eval.posterior_draws=2",
    "eval.kmeans_restarts=1",
    "eval.classifier_epochs=1",
    "eval.figure_rows=2",
    "eval.figure_columns=3",
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stage_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Prepared digits, a saved model for the train stage and each run, and a sweep table."""
    root = tmp_path_factory.mktemp("eval")
    prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180), root / "data" / "digits", root / "raw")
    overrides = TINY + [f"paths.{name}={root / name}" for name in ("data", "models", "metrics", "results")]
    params = load_params(overrides)
    for name, path in [("train", "train.pt")] + [(n, f"runs/{n}.pt") for n in params["runs"]]:
        spec = train_spec(params if name == "train" else run_params(params, name))
        save_checkpoint(root / "models" / path, checkpoint_state(PixelGAN(spec.model), epoch=0))
    (root / "results").mkdir()
    pq.write_table(pa.table({"prior": ["gaussian", "categorical"], "dim": [2, 10], "epochs": [1, 1],
                             "val_nll": [50.0, 51.5]}), root / "results" / "sweep.parquet")
    return root, overrides


def test_evaluate_refuses_to_start_without_the_classifier(
    stage_root: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every model but the classifier, in a folder of its own: whichever test trained the
    shared classifier first, this one always sees it missing."""
    root, overrides = stage_root
    models = tmp_path / "models"
    shutil.copytree(root / "models", models, ignore=shutil.ignore_patterns("classifier.pt"))
    without = [o for o in overrides if not o.startswith("paths.models=")] + [f"paths.models={models}"]
    assert evaluate.main(without) == 2
    assert f"error: {models / 'classifier.pt'}: missing;" in capsys.readouterr().err, "it alone"


def test_the_stages_write_every_metric_and_figure(stage_root: tuple[Path, list[str]]) -> None:
    root, overrides = stage_root
    assert classifier.main(overrides) == 0
    assert 0.0 <= json.loads((root / "metrics" / "classifier.json").read_text())["test_accuracy"] <= 1.0
    assert evaluate.main(overrides) == 0

    metrics = json.loads((root / "metrics" / "eval.json").read_text())
    sample_keys = {"frechet_distance", "confidence", "label_entropy", "classifier_score"}
    assert set(metrics) == {"classifier_test_accuracy", "train", "semi_supervised", "gaussian", "pixelcnn",
                            "aae", "kmeans_pixels", "wall_time_s"}
    clustering = {"error_paper_rule", "error_majority", "val_error_paper_rule", "val_error_majority", "clusters_used"}
    assert set(metrics["train"]["clustering"]) == clustering
    assert set(metrics["kmeans_pixels"]) == clustering
    assert 0.0 <= metrics["semi_supervised"]["val_error"] <= 1.0
    assert 0.0 <= metrics["semi_supervised"]["test_error"] <= 1.0
    for name in ("train", "semi_supervised"):
        assert set(metrics[name]["samples"]) == sample_keys | {"category_purity"}
    for name in ("train", "semi_supervised", "gaussian", "pixelcnn", "aae"):
        assert metrics[name]["nll_nats"] > 0 and metrics[name]["nll_other_code_nats"] > 0
        assert sample_keys <= set(metrics[name]["samples"])
    # The plain PixelCNN reads no code: another image's code changes nothing.
    assert metrics["pixelcnn"]["nll_other_code_nats"] == pytest.approx(metrics["pixelcnn"]["nll_nats"])

    figures = {path.name for path in (root / "results" / "eval").glob("*.png")}
    assert figures == {
        "train_samples.png", "train_by_category.png", "train_reconstructions.png",
        "semi_supervised_samples.png", "semi_supervised_by_category.png", "semi_supervised_reconstructions.png",
        "gaussian_samples.png", "gaussian_global_local.png", "pixelcnn_samples.png", "aae_samples.png",
        "figure2.png",
    }
    assert all((root / "results" / "eval" / name).read_bytes().startswith(PNG) for name in figures)
    table = (root / "results" / "sweep.md").read_text().splitlines()
    assert table[0].startswith("| prior | dim") and len(table) == 4


def test_evaluating_again_gives_the_same_scores(stage_root: tuple[Path, list[str]]) -> None:
    """The encoder's noise draws are part of every score: a second `dvc repro` of the same
    models must not move them."""
    root, overrides = stage_root
    if not (root / "models" / "classifier.pt").exists():
        assert classifier.main(overrides) == 0
    assert evaluate.main(overrides) == 0
    first = json.loads((root / "metrics" / "eval.json").read_text())
    assert evaluate.main(overrides) == 0
    second = json.loads((root / "metrics" / "eval.json").read_text())
    first.pop("wall_time_s"), second.pop("wall_time_s")
    assert second == first
