"""The cluster recipe: a valid `ray up` config; the image its nodes run, cluster/Dockerfile; and
the command it documents, `dvc repro` on a running cluster, run on the tests' two-node cluster
with Ray's storage in an S3 bucket."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.params import REPO
from tests.helpers import TINY_MODEL_OVERRIDES, repo_copy, run
from tests.pipeline.conftest import Cluster, S3Server


def test_the_ray_up_config_is_valid_with_cpu_and_gpu_workers() -> None:
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((REPO / "cluster/aws.yaml").read_text())
    validate_config(fillout_defaults(config))
    kinds = {name: node["node_config"]["InstanceType"] for name, node in config["available_node_types"].items()}
    assert kinds["gpu_worker"].startswith(("g", "p")) and kinds["cpu_worker"].startswith(("m", "c"))


def ls_files(cwd: Path, *args: str) -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.split("\0")[:-1]


LOCK = tomllib.loads((REPO / "uv.lock").read_text())


def locked_version(name: str) -> str:
    [version] = [package["version"] for package in LOCK["package"] if package["name"] == name]
    return version


def dockerfile() -> list[tuple[str, str]]:
    """cluster/Dockerfile's instructions with their arguments, continued lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "cluster/Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")]


RAY_IMAGE = re.compile(r"rayproject/ray:(?P<ray>[0-9.]+)-py(?P<python>[0-9]+)-(?P<variant>cu[0-9]+|cpu)\b")


def test_the_image_is_rays_of_the_locked_versions_with_the_locked_venv_first_on_path() -> None:
    steps = dockerfile()
    base = dict(shlex.split(arguments)[0].split("=", 1) for kind, arguments in steps if kind == "ARG" and "=" in arguments)
    assert [arguments for kind, arguments in steps if kind == "FROM"][-1] == "${BASE}"
    python = re.fullmatch(r"==(\d+)\.(\d+)\.\*", LOCK["requires-python"])
    assert python, LOCK["requires-python"]
    mentions = RAY_IMAGE.findall((REPO / "cluster/Dockerfile").read_text() + (REPO / "docs/cluster.md").read_text())
    assert RAY_IMAGE.fullmatch(base["BASE"]), base["BASE"]
    assert {variant for _, _, variant in mentions} >= {"cpu"} and any(variant.startswith("cu") for _, _, variant in mentions)
    assert {(ray, version) for ray, version, _ in mentions} == {(locked_version("ray"), "".join(python.groups()))}

    env = dict(pair.split("=", 1) for kind, arguments in steps if kind == "ENV" for pair in shlex.split(arguments))
    assert env["UV_PYTHON"].endswith("python" + ".".join(python.groups()))
    venv_first = f"{env['UV_PROJECT_ENVIRONMENT']}/bin:$PATH"
    assert env["PATH"] == venv_first
    runs = [arguments for kind, arguments in steps if kind == "RUN"]
    assert any(f"export PATH={venv_first}' >> /home/ray/.bashrc" in run for run in runs), "login shells' conda goes first otherwise"

    syncs = [i for i, (kind, arguments) in enumerate(steps) if kind == "RUN" and "uv sync" in arguments]
    assert all("uv sync --locked" in steps[i][1] for i in syncs), "the image installs the lock, never a fresh resolution"
    copies = [(i, arguments.split()[-2::-1]) for i, (kind, arguments) in enumerate(steps) if kind == "COPY" and "--from" not in arguments]
    assert syncs and copies
    assert any(i < syncs[0] and "uv.lock" in sources for i, sources in copies), "uv.lock is copied before the first sync"
    assert any(i < syncs[-1] and "." in sources for i, sources in copies) and "--no-install-project" not in steps[syncs[-1]][1]


def test_the_image_leaves_out_git_and_what_git_ignores() -> None:
    kept_out = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for ignore in ls_files(REPO, "*.gitignore"):
        folder = os.path.dirname(ignore)
        for line in (REPO / ignore).read_text().splitlines():
            if line.startswith("/"):
                assert os.path.join(folder, line.strip("/")) in kept_out, f"{ignore}: {line}"
    assert {".git", ".venv", ".dvc/cache", "**/__pycache__"} <= kept_out


TINY_PIPELINE = [
    "dataset=digits", "dataset.validation_size=180", "dataset.test_size=180", *TINY_MODEL_OVERRIDES,
    "train.epochs=1", *(f"runs.{name}.train.epochs=1" for name in ("semi_supervised", "gaussian", "pixelcnn", "aae")),
    "sweep.gaussian=[2]", "sweep.categorical=[4]",
    "eval.samples=20", "eval.classifier_epochs=1", "eval.kmeans_restarts=1", "eval.posterior_draws=2",
    "eval.figure_rows=2", "eval.figure_columns=2",
]


@pytest.mark.ray
@pytest.mark.slow
def test_dvc_repro_runs_the_whole_pipeline_on_a_running_cluster(ray_cluster: Cluster, s3_server: S3Server, tmp_path: Path) -> None:
    repo = repo_copy(tmp_path / "repo")
    runs = f"s3://{s3_server.bucket}/{tmp_path.name}/runs?endpoint_override={s3_server.endpoint.removeprefix('http://')}&scheme=http"
    run(repo, "-m", "pipeline.params", *TINY_PIPELINE, f"paths.runs='{runs}'")
    assert os.environ["RAY_ADDRESS"] == ray_cluster.address, "dvc repro joins the running cluster"
    run(repo, "-m", "dvc", "repro")
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert {"train", "semi_supervised", "gaussian", "pixelcnn", "aae", "kmeans_pixels"} <= set(evaluation)
    assert (repo / "results/eval/figure2.png").is_file() and (repo / "results/sweep.md").is_file()
    assert not (repo / "runs").exists(), "Ray's storage is the bucket"
    assert "Data and pipelines are up to date" in run(repo, "-m", "dvc", "status", "dvc.yaml")
