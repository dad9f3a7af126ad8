"""The paper's column as its own DVC pipeline (paper/dvc.yaml), end to end on a tiny profile."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import pipeline.table
from pipeline.params import REPO, compose_yaml
from pixelgan.io import write_json
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


def test_the_table_refuses_missing_scores_a_missing_model_and_a_single_seed(
        digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [f"paths.data={digits}", f"paths.models={tmp_path}/models", f"paths.metrics={tmp_path}/metrics"]
    assert pipeline.table.main([*TINY_COLUMN, *paths]) == 2
    assert f"{tmp_path}/metrics/runs/clustering-seed0_scores.json" in capsys.readouterr().err
    assert pipeline.table.main(["--score", "semi_100", *TINY_COLUMN, *paths, "train.seed=1"]) == 2
    assert f"{tmp_path}/models/runs/semi_100-seed1.pt: missing" in capsys.readouterr().err
    assert pipeline.table.main([*TINY_COLUMN, *paths, "column.seeds=[0]"]) == 2
    assert "column.seeds at least two seeds" in capsys.readouterr().err


def test_the_table_is_built_from_the_scores_files_alone_and_checks_them(
        digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No model and no data: the four scores files; a file under another seed's name, or seeds
    of one run trained with other settings, are refused rather than left out of the table."""
    paths = [f"paths.data={digits}", f"paths.metrics={tmp_path}/metrics", f"paths.results={tmp_path}/results"]

    def write_scores(run: str, seed: int, *more: str, named: int | None = None) -> None:
        plan = pipeline.table.configure(["--score", run, *TINY_COLUMN, *paths, f"train.seed={seed}", *more])
        figure = 0.1 + seed / 100
        scores = {"clustering": {"val_error_paper_rule": figure, "error_paper_rule": figure}, "val_error": figure,
                  "test_error": figure}
        write_json(plan.spec.paths.scores(f"runs/{run}-seed{seed if named is None else named}"),
                   {"spec": plan.spec.run.to_dict(), "scores": scores})

    for name in ("clustering", "semi_100"):
        for seed in (0, 1):
            write_scores(name, seed)
    assert pipeline.table.main([*TINY_COLUMN, *paths[1:]]) == 0, "paths.data names nothing: no data read"
    table = (tmp_path / "results/table.md").read_text()
    assert "| clustering | clustering error %, 30 categories (paper's rule) | 10.50 ±0.71 | 10.50 ±0.71 | 5.27 ±1.81 | 2 | 1 |" in table
    write_scores("semi_100", 0, named=1)
    assert pipeline.table.main([*TINY_COLUMN, *paths[1:]]) == 2
    assert "semi_100-seed1_scores.json: holds seed 0, not its name's" in capsys.readouterr().err
    write_scores("semi_100", 1, "train.epochs=2")
    assert pipeline.table.main([*TINY_COLUMN, *paths[1:]]) == 2
    assert "runs/semi_100: their seeds' scores files are not of one set-up" in capsys.readouterr().err


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@127.0.0.1", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.mark.ray
@pytest.mark.slow
def test_the_column_is_built_run_by_run_in_clones_without_each_others_models(ray_cluster: Cluster, tmp_path: Path) -> None:
    """Two runs trained side by side through DVC's queue on the two-node cluster, collected
    from DVC's run cache and committed in one clone; a fresh clone (no model, data or DVC
    cache of the first) trains only the other two with `dvc repro --allow-missing`, and the
    table is built from all four runs' scores files."""
    first = repo_copy(tmp_path / "first")
    run(first, "-m", "pipeline.params", "--out", "paper/params.yaml", *TINY_COLUMN)
    run(first, "-m", "dvc", "repro", "paper/dvc.yaml:prepare")
    git(first, "add", "-A")
    git(first, "commit", "-qm", "the column's data")
    stages = run(first / "paper", "-m", "pipeline.table", "--stages").split()
    assert stages == ["score@clustering-0", "score@clustering-1", "score@semi_100-0", "score@semi_100-1"]
    for stage in stages[:2]:
        run(first, "-m", "dvc", "exp", "run", "--queue", "--no-hydra", f"paper/dvc.yaml:{stage}")
    run(first, "-m", "dvc", "exp", "run", "--run-all", "--jobs", "2")
    said = run(first, "-m", "dvc", "repro", *(f"paper/dvc.yaml:{stage}" for stage in stages[:2]))
    assert said.count("is cached - skipping run") == 4 and "Running stage" not in said, said  # train and score, twice
    trained = [json.loads((first / f"paper/metrics/runs/clustering-seed{seed}.json").read_text()) for seed in (0, 1)]
    assert max(entry["started_at"] for entry in trained) < min(entry["finished_at"] for entry in trained), "side by side"
    git(first, "add", "-A")
    git(first, "commit", "-qm", "two runs of the column")
    git(tmp_path, "clone", "-q", str(first), "second")
    second = tmp_path / "second"
    run(second, "-m", "dvc", "repro", "paper/dvc.yaml:prepare")  # the data, which --allow-missing would skip
    said = run(second, "-m", "dvc", "repro", "--allow-missing", "paper/dvc.yaml")
    assert said.count("train: runs/semi_100") == 2 and "train: runs/clustering" not in said, said
    assert not (second / "paper/models/runs/clustering-seed0.pt").exists(), "the first clone's models stayed there"
    metrics = json.loads((second / "paper/metrics/paper.json").read_text())
    models = {f"runs/{name}-seed{seed}" for name in ("clustering", "semi_100") for seed in (0, 1)}
    assert set(metrics) == models | {"over_seeds"}
    assert metrics["runs/clustering-seed0"]["clustering"] != metrics["runs/clustering-seed1"]["clustering"]
    summary = metrics["over_seeds"]
    assert set(summary["runs/clustering-seed0"]) >= {"clustering.val_error_paper_rule", "clustering.error_paper_rule"}
    assert set(summary["runs/semi_100-seed0"]) >= {"val_error", "test_error"}
    table = (second / "paper/results/table.md").read_text()
    figure = r"\d+\.\d\d ±\d+\.\d\d"
    assert re.search(rf"\| clustering \| clustering error %, 30 categories \(paper's rule\) \| {figure} \| {figure} \| 5\.27 ±1\.81 \| 2 \| 1 \|", table), table
    assert re.search(rf"\| semi_100 \| test error %, 100 labels \| {figure} \| {figure} \| 1\.08 ±0\.15 \| 2 \| 1 \|", table), table
    assert (second / "paper/results/figures/semi_100-seed1/by_category.png").is_file()
    again = run(second, "-m", "dvc", "repro", "--allow-missing", "paper/dvc.yaml")
    assert "train: runs/" not in again and "Running stage" not in again, "nothing left to run"
