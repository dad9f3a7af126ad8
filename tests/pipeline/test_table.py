"""The paper's column as its own DVC pipeline (paper/dvc.yaml), end to end on a tiny profile."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import pipeline.table
from pipeline.params import REPO, compose_yaml
from tests.helpers import TINY_MODEL_OVERRIDES, repo_copy, run
from tests.pipeline.conftest import Cluster

COLUMN = ["+experiment=paper_column"]
TINY_COLUMN = [
    *COLUMN, "dataset=digits", "dataset.validation_size=180", "dataset.test_size=180", *TINY_MODEL_OVERRIDES,
    "train.epochs=1", "train.batch_size=64", "train.use_gpu=false", "train.gpus_per_worker=0",
    "train.cpus_per_worker=1", "train.precision=fp32", "train.channels_last=false",
    "column.runs=[clustering,semi_100]", "column.seeds=[0,1]",
    "eval.posterior_draws=2", "eval.figure_rows=2", "eval.figure_columns=2",
]


def test_paper_params_yaml_is_conf_composed_with_the_paper_column() -> None:
    assert (REPO / "paper/params.yaml").read_text() == compose_yaml(COLUMN), (
        "paper/params.yaml differs from conf/; regenerate it with "
        "`python -m pipeline.params --out paper/params.yaml +experiment=paper_column`"
    )


def test_the_table_refuses_missing_models_and_a_single_seed(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [f"paths.data={digits}", f"paths.models={tmp_path}/models"]
    assert pipeline.table.main([*TINY_COLUMN, *paths]) == 2
    assert f"{tmp_path}/models/runs/clustering-seed0.pt" in capsys.readouterr().err
    assert pipeline.table.main([*TINY_COLUMN, *paths, "column.seeds=[0]"]) == 2
    assert "column.seeds at least two seeds" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_dvc_repro_runs_the_column_end_to_end(ray_cluster: Cluster, tmp_path: Path) -> None:
    repo = repo_copy(tmp_path)
    run(repo, "-m", "pipeline.params", "--out", "paper/params.yaml", *TINY_COLUMN)
    said = run(repo, "-m", "dvc", "repro", "paper/dvc.yaml")
    assert said.count("train: runs/") == 4, "a train stage per run and seed, through the Ray Train driver"
    metrics = json.loads((repo / "paper/metrics/paper.json").read_text())
    models = {f"runs/{name}-seed{seed}" for name in ("clustering", "semi_100") for seed in (0, 1)}
    assert set(metrics) == models | {"over_seeds"}
    assert metrics["runs/clustering-seed0"]["clustering"] != metrics["runs/clustering-seed1"]["clustering"]
    summary = metrics["over_seeds"]
    assert set(summary["runs/clustering-seed0"]) >= {"clustering.val_error_paper_rule", "clustering.error_paper_rule"}
    assert set(summary["runs/semi_100-seed0"]) >= {"val_error", "test_error"}
    table = (repo / "paper/results/table.md").read_text()
    figure = r"\d+\.\d\d ±\d+\.\d\d"
    assert re.search(rf"\| clustering \| clustering error %, 30 categories \(paper's rule\) \| {figure} \| {figure} \| 5\.27 ±1\.81 \| 2 \| 1 \|", table), table
    assert re.search(rf"\| semi_100 \| test error %, 100 labels \| {figure} \| {figure} \| 1\.08 ±0\.15 \| 2 \| 1 \|", table), table
    assert (repo / "paper/results/figures/clustering-seed1_by_category.png").is_file()
    assert "Data and pipelines are up to date" in run(repo, "-m", "dvc", "status", "paper/dvc.yaml"), "nothing left to run"
