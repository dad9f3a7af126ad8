"""The cluster recipe: a valid `ray up` config whose nodes run the project's image, sync every
tracked file and nothing git ignores, and may do what Ray asks of them; the image's Dockerfile;
and the command it documents, `dvc repro` on a running cluster, run on the tests' two-node
cluster with Ray's storage in an S3 bucket."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

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


def aws_config() -> dict[str, Any]:
    """cluster/aws.yaml as `ray up` reads it: Ray's defaults filled in, setup commands merged."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(yaml.safe_load((REPO / "cluster/aws.yaml").read_text()))


def ls_files(cwd: Path, *args: str) -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.split("\0")[:-1]


def ray_rsync_command(config: dict[str, Any], source: str, target: str) -> list[str]:
    """The rsync that Ray 2.60 runs to sync a file mount to a node (SSHCommandRunner.run_rsync_up,
    with the options NodeUpdater.rsync_up hands it), its ssh transport and host dropped."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    runner = SSHCommandRunner(log_prefix="", node_id="node", provider=None, auth_config=config["auth"],
                              cluster_name=config["cluster_name"], process_runner=subprocess, use_internal_ip=False)
    runner.ssh_ip, runner.ssh_control_path = "node", None  # no provider to ask for an address, no socket to make
    ran: list[list[str]] = []
    runner._run_helper = lambda command, **_: ran.append(command)  # type: ignore[method-assign]
    options = {"docker_mount_if_possible": True, "rsync_exclude": config.get("rsync_exclude"),
                "rsync_filter": config.get("rsync_filter")}
    runner.run_rsync_up(source, "/remote/", options=options)
    [command] = ran
    assert command[:2] == ["rsync", "--rsh"] and command[-2:] == [source, f"{config['auth']['ssh_user']}@node:/remote/"]
    return [command[0], *command[3:-1], target]


# Files a node must not get: each is one that git ignores, made where a laptop or the head has them.
LEFT_BEHIND = [
    "data/mnist/train.parquet", "runs/semi_supervised/checkpoint_000001/model.pt", "models/train.pt",
    ".venv/bin/python", ".dvc/cache/files/md5/ab/cdef", ".dvc/tmp/exps/run", ".dvc/config.local",
    "paper/data/mnist/train.parquet", "paper/models/runs/semi_20-seed0.pt", "paper/runs/r/ckpt", "search/runs/r/ckpt",
    "pixelgan/data/__pycache__/parquet.cpython-311.pyc", "results/sweep.parquet", "metrics/runs/stray.ckpt",
]
# What the old unanchored excludes (data, runs, models) dropped, and every stage imports or reads.
NEEDED = ["pixelgan/data/__init__.py", "pixelgan/data/parquet.py", "conf/runs/default.yaml", "conf/runs/paper_column.yaml",
          "metrics/runs/semi_supervised.json", "metrics/data/mnist5k.json", "results/data/mnist5k-examples.png"]


def test_ray_up_syncs_every_tracked_file_and_nothing_that_git_ignores(tmp_path: Path) -> None:
    if shutil.which("rsync") is None:
        if os.environ.get("CI"):
            pytest.fail("rsync is missing, and `ray up` syncs with it: .ci/run installs it")
        pytest.skip("rsync is missing (apt-get install rsync): `ray up` syncs with it")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for name in LEFT_BEHIND:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(name)
    assert set(LEFT_BEHIND) <= set(ls_files(clone, "--others", "--ignored", "--exclude-standard"))
    tracked = set(ls_files(clone))
    assert set(NEEDED) <= tracked

    config = aws_config()
    source = config["file_mounts"]["/app"] + "/"  # as `ray up` from the root names it, a folder with its "/"
    node = tmp_path / "node"
    subprocess.run(ray_rsync_command(config, source, f"{node}/"), cwd=clone, check=True, capture_output=True)
    synced = {path.relative_to(node).as_posix() for path in node.rglob("*") if not path.is_dir()}
    code = {name for name in synced if not name.startswith(".git/")}
    assert not tracked - code, f"tracked files left behind: {sorted(tracked - code)}"
    assert not code - tracked, f"files git ignores synced: {sorted(code - tracked)}"
    assert (node / ".git/HEAD").is_file(), "the head runs DVC and git in the synced checkout"


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


def test_the_image_leaves_out_what_git_ignores_but_keeps_git() -> None:
    kept_out = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for ignore in ls_files(REPO, "*.gitignore"):
        folder = os.path.dirname(ignore)
        for line in (REPO / ignore).read_text().splitlines():
            if line.startswith("/"):
                assert os.path.join(folder, line.strip("/")) in kept_out, f"{ignore}: {line}"
    assert {".venv", ".dvc/cache", "**/__pycache__"} <= kept_out
    assert ".git" not in kept_out, "DVC runs in the image's checkout (a KubeRay job's)"


def test_every_node_boots_an_ami_and_runs_the_project_image_gpu_workers_with_their_gpus() -> None:
    config = aws_config()
    for name, node in config["available_node_types"].items():
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}", node["node_config"].get("ImageId", "")), name
        docker = config["docker"] | node.get("docker", {})
        image = docker.get("head_image" if name == config["head_node_type"] else "worker_image", docker["image"])
        gpus = "--gpus all" in docker.get("worker_run_options", []) + docker.get("run_options", [])
        if node["node_config"]["InstanceType"].startswith(("g", "p")):
            assert image.endswith("/pixelgan:cuda") and gpus, name
        else:
            assert image.endswith("/pixelgan:cpu") and not gpus, name
    setup = config["setup_commands"] + config["head_setup_commands"] + config["worker_setup_commands"]
    assert not any("pip" in command.split() for command in setup), "the image's venv has no pip, and needs none"
    assert "~/.ray/auth_token" in config["file_mounts"]
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in c for c in starts), "the dashboard asks for the token"


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement of ``policy`` names ``action`` on ``resource`` (wildcards as IAM
    reads them; conditions not weighed)."""
    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else value
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in listed(statement["Resource"]))
        for statement in policy["Statement"]
    )


# The EC2 calls of Ray's AWS node provider (ray/autoscaler/_private/aws/node_provider.py) when the
# head's autoscaler adds and ends workers: create_instances, create_tags, instances.filter, terminate.
AUTOSCALER_ACTIONS = ["ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances", "ec2:TerminateInstances"]
BUCKET_ACTIONS = [("s3:ListBucket", "arn:aws:s3:::<bucket>"), ("s3:GetObject", "arn:aws:s3:::<bucket>/pixelgan/runs/r/ckpt"),
                  ("s3:PutObject", "arn:aws:s3:::<bucket>/pixelgan/runs/r/ckpt"), ("s3:DeleteObject", "arn:aws:s3:::<bucket>/pixelgan/dvc/ab")]


def test_the_heads_role_may_launch_workers_and_pass_them_theirs_and_every_node_may_use_the_bucket() -> None:
    """Naming the head's profile replaces Ray's own ray-autoscaler-v1, so its policy, kept in
    cluster/iam/ under the profile's name (its role's too), must allow what the autoscaler does."""
    config = aws_config()
    nodes = config["available_node_types"]
    profiles = {name: node["node_config"]["IamInstanceProfile"]["Name"] for name, node in nodes.items()}
    policies = {name: json.loads((REPO / "cluster/iam" / f"{profile}.json").read_text()) for name, profile in profiles.items()}
    head = policies[config["head_node_type"]]
    for action in AUTOSCALER_ACTIONS:
        assert allows(head, action, "*"), action
    for name, profile in profiles.items():
        if name != config["head_node_type"]:
            assert allows(head, "iam:PassRole", f"arn:aws:iam::<account>:role/{profile}"), name
        for action, resource in BUCKET_ACTIONS:
            assert allows(policies[name], action, resource), (name, action)
    assert not allows(policies["gpu_worker"], "ec2:RunInstances", "*")
    assert not allows(head, "iam:PassRole", "arn:aws:iam::<account>:role/admin"), "the head passes the workers' role, no other"


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
