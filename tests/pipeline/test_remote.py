"""A DVC remote on an S3-compatible server: what one clone pushes, a fresh clone pulls and
does not run again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run
from tests.pipeline.conftest import PreparedRepo, S3Server, copy_of


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

    metrics = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=second, capture_output=True, text=True)
    assert metrics.returncode == 0 and "failed to load" not in metrics.stdout + metrics.stderr, metrics.stderr
    assert "metrics/data/mnist5k.json" in metrics.stdout
    plots = json.loads(run(second, "-m", "dvc", "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    assert "results/data/mnist5k-examples.png" in plots["data"], "the data's examples, in git, not in the data"
