"""The cluster recipe: a valid `ray up` config, and the command it documents, `dvc repro` on a
running cluster, run on the tests' two-node cluster with Ray's storage in an S3 bucket."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from pipeline.params import RAY_STORAGE, REPO
from tests.helpers import TINY_MODEL_OVERRIDES, repo_copy, run
from tests.pipeline.conftest import Cluster, S3Server


def test_the_ray_up_config_is_valid_with_cpu_and_gpu_workers() -> None:
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((REPO / "cluster/aws.yaml").read_text())
    validate_config(fillout_defaults(config))
    kinds = {name: node["node_config"]["InstanceType"] for name, node in config["available_node_types"].items()}
    assert kinds["gpu_worker"].startswith(("g", "p")) and kinds["cpu_worker"].startswith(("m", "c"))


TINY_PIPELINE = [
    "dataset=digits", "dataset.validation_size=180", "dataset.test_size=180", *TINY_MODEL_OVERRIDES,
    "train.epochs=1", *(f"runs.{name}.train.epochs=1" for name in ("semi_supervised", "gaussian", "pixelcnn", "aae")),
    "sweep.gaussian=[2]", "sweep.categorical=[4]",
    "eval.samples=20", "eval.classifier_epochs=1", "eval.kmeans_restarts=1", "eval.posterior_draws=2",
    "eval.figure_rows=2", "eval.figure_columns=2",
]


@pytest.mark.ray
@pytest.mark.slow
def test_dvc_repro_runs_the_whole_pipeline_on_a_running_cluster(ray_cluster: Cluster, s3_server: S3Server, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repo_copy(tmp_path / "repo")
    runs = f"s3://{s3_server.bucket}/{tmp_path.name}/runs?endpoint_override={s3_server.endpoint.removeprefix('http://')}&scheme=http"
    monkeypatch.setenv(RAY_STORAGE, runs)
    run(repo, "-m", "pipeline.params", *TINY_PIPELINE)
    assert os.environ["RAY_ADDRESS"] == ray_cluster.address, "dvc repro joins the running cluster"
    run(repo, "-m", "dvc", "repro")
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert {"train", "semi_supervised", "gaussian", "pixelcnn", "aae", "kmeans_pixels"} <= set(evaluation)
    assert (repo / "results/eval/figure2.png").is_file() and (repo / "results/sweep.md").is_file()
    assert not (repo / "runs").exists(), "Ray's storage is the bucket"
    assert "Data and pipelines are up to date" in run(repo, "-m", "dvc", "status", "dvc.yaml")
