"""A DVC remote on an S3-compatible server: what one clone pushes, a fresh clone pulls and
does not run again."""

from __future__ import annotations

import json
import subprocess
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

    metrics = json.loads(run(second, "-m", "dvc", "metrics", "show", "--json"))[""]["data"]
    unread = {path for path, entry in metrics.items() if "error" in entry and not path.startswith("paper/")}
    assert not unread, f"{unread}: the root's and the search's metrics are in git"  # the column's, once it has run
    assert "metrics/data/mnist5k.json" in metrics
    plots = json.loads(run(second, "-m", "dvc", "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    assert "results/data/mnist5k-examples.png" in plots["data"], "the data's examples, in git, not in the data"
