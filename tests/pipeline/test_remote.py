"""A DVC remote on an S3-compatible server: what one clone pushes, a fresh clone pulls and
does not run again, even where Ray's storage is elsewhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.params import RAY_STORAGE
from tests.helpers import TINY_MODEL_OVERRIDES, run
from tests.pipeline.conftest import Cluster, PreparedRepo, S3Server, copy_of


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.slow
def test_a_fresh_clone_pulls_what_another_pushed_and_reruns_nothing(s3_server: S3Server, prepared_repo: PreparedRepo,
                                                                    tmp_path: Path) -> None:
    first = copy_of(prepared_repo, tmp_path / "first")  # after `dvc repro prepare`
    run(first, "-m", "dvc", "remote", "add", "-d", "store", f"s3://{s3_server.bucket}/dvc")
    run(first, "-m", "dvc", "remote", "modify", "store", "endpointurl", s3_server.endpoint)
    git(first, "add", "-A")
    git(first, "commit", "-qm", "prepared")
    run(first, "-m", "dvc", "push", "--run-cache", "--with-deps", "prepare")

    subprocess.run(["git", "clone", "-q", str(first), str(tmp_path / "second")], check=True)
    second = tmp_path / "second"
    assert not (second / "data").exists(), "a clone has no data until it pulls"
    run(second, "-m", "dvc", "pull", "--with-deps", "prepare")
    assert (second / "data/mnist5k/train.parquet").read_bytes() == (first / "data/mnist5k/train.parquet").read_bytes()
    said = run(second, "-m", "dvc", "repro", "prepare")
    assert "didn't change, skipping" in said and "Running stage" not in said, said

    metrics = json.loads(run(second, "-m", "dvc", "metrics", "show", "--json"))[""]["data"]
    unread = {path for path, entry in metrics.items() if "error" in entry and not path.startswith("paper/")}
    assert not unread, f"{unread}: the root's and the search's metrics are in git"  # the column's, once it has run
    assert "metrics/data/mnist5k.json" in metrics
    plots = json.loads(run(second, "-m", "dvc", "plots", "show", "--json"))
    errors = [error for error in plots.get("errors", []) if not error["source"].startswith("paper/")]
    assert not errors, errors
    assert "results/data/mnist5k-examples.png" in plots["data"], "the data's examples, in git, not in the data"


@pytest.mark.ray
@pytest.mark.slow
def test_a_model_trained_with_one_ray_storage_is_pulled_not_retrained_where_it_is_another(
        ray_cluster: Cluster, s3_server: S3Server, prepared_repo: PreparedRepo, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Results back from a cluster: one clone trains with Ray's storage in one place, pushes
    to the remote; a clone whose Ray storage is another place pulls the model, and DVC finds
    nothing to run: where runs live is in no stage's lock."""
    first = copy_of(prepared_repo, tmp_path / "first")
    run(first, "-m", "pipeline.params", *TINY_MODEL_OVERRIDES, "train.epochs=1", "train.num_workers=1",
        "train.precision=fp32", "train.channels_last=false")
    run(first, "-m", "dvc", "remote", "add", "-d", "store", f"s3://{s3_server.bucket}/{tmp_path.name}/dvc")
    run(first, "-m", "dvc", "remote", "modify", "store", "endpointurl", s3_server.endpoint)
    monkeypatch.setenv(RAY_STORAGE, str(tmp_path / "cluster-runs"))
    run(first, "-m", "dvc", "repro", "train")
    assert list((tmp_path / "cluster-runs").iterdir()), "the run trained in the first storage"
    assert str(tmp_path / "cluster-runs") not in (first / "dvc.lock").read_text(), "where runs live is in no lock"
    git(first, "add", "-A")
    git(first, "commit", "-qm", "trained")
    run(first, "-m", "dvc", "push", "--run-cache", "--with-deps", "train")

    subprocess.run(["git", "clone", "-q", str(first), str(tmp_path / "second")], check=True)
    second = tmp_path / "second"
    monkeypatch.setenv(RAY_STORAGE, str(tmp_path / "laptop-runs"))
    run(second, "-m", "dvc", "pull", "--with-deps", "train")
    assert (second / "models/train.pt").read_bytes() == (first / "models/train.pt").read_bytes()
    said = run(second, "-m", "dvc", "repro", "train")
    assert "Running stage" not in said and "didn't change, skipping" in said, said
    assert not (tmp_path / "laptop-runs").exists(), "nothing trained in the second storage"
