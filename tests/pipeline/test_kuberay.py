"""The KubeRay manifests (cluster/kuberay/, docs/kubernetes.md), offline: each valid against
KubeRay's own schema for its kind (tests/schemas/: KubeRay v1.7.0's CRDs), with what this
pipeline needs of them; and the job's entrypoint, cluster/kuberay/job.sh, run with real git
and DVC against remotes on this machine."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError, validators

from pipeline.params import REPO

KUBERAY = REPO / "cluster/kuberay"
MANIFESTS = {"RayCluster": "raycluster.yaml", "RayJob": "rayjob.yaml"}
SCHEMAS = {"RayCluster": "rayclusters.v1.json.gz", "RayJob": "rayjobs.v1.json.gz"}
IMAGES = {"cpu": "ghcr.io/<you>/pixelgan:cpu", "cuda": "ghcr.io/<you>/pixelgan:cuda"}


def _known_fields(validator: Draft7Validator, properties: dict, instance: object, schema: dict) -> Iterator[ValidationError]:
    """JSON Schema's `properties`, and a field it does not name refused, as the API server's
    strict field validation (kubectl's default) refuses it: a structural schema admits no
    other field unless it says so (additionalProperties, x-kubernetes-preserve-unknown-fields)."""
    yield from Draft7Validator.VALIDATORS["properties"](validator, properties, instance, schema)
    if (validator.is_type(instance, "object") and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        for field in sorted(set(instance) - set(properties)):
            yield ValidationError(f"unknown field {field!r}")


# Draft 7 ignores the keywords it does not know (x-kubernetes-*, nullable), so an int-or-string
# is the schema's own `anyOf: [integer, string]`, its quantity pattern checked on strings.
# Not checked: the CRDs' CEL rules (x-kubernetes-validations: immutability, managedBy's values).
StrictValidator = validators.extend(Draft7Validator, {"properties": _known_fields})


def source(kind: str) -> dict:
    return json.loads(gzip.decompress((REPO / "tests/schemas" / SCHEMAS[kind]).read_bytes()))


def problems(document: dict) -> list[str]:
    validator = StrictValidator(source(document["kind"])["schema"])
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def manifest(kind: str) -> dict:
    """The manifest as the API server receives it: its YAML aliases (a shared env entry) copies."""
    documents = list(yaml.safe_load_all((KUBERAY / MANIFESTS[kind]).read_text()))
    assert len(documents) == 1
    return json.loads(json.dumps(documents[0]))


def cluster_spec(document: dict) -> dict:
    return document["spec"]["rayClusterSpec"] if document["kind"] == "RayJob" else document["spec"]


def containers(spec: dict) -> Iterator[tuple[str, dict]]:
    """(group, container) for every container of the head and of each worker group."""
    for container in spec["headGroupSpec"]["template"]["spec"]["containers"]:
        yield "head", container
    for group in spec["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            yield group["groupName"], container


@pytest.mark.parametrize("kind", MANIFESTS)
def test_each_manifest_is_valid_against_kuberays_schema(kind: str) -> None:
    document = manifest(kind)
    assert (document["apiVersion"], document["kind"]) == ("ray.io/v1", kind)
    assert source(kind)["source"]["kind"] == kind
    assert problems(document) == []


def _without_group_name(document: dict) -> None:
    del cluster_spec(document)["workerGroupSpecs"][1]["groupName"]


def _replicas_as_words(document: dict) -> None:
    cluster_spec(document)["workerGroupSpecs"][0]["replicas"] = "two"


def _misspelt_field(document: dict) -> None:
    cluster_spec(document)["workerGroupSpecs"][0]["maxReplica"] = 4


def _cpu_in_words(document: dict) -> None:
    _, head = next(containers(cluster_spec(document)))
    head["resources"]["limits"]["cpu"] = "six"


def _env_without_name(document: dict) -> None:
    _, head = next(containers(cluster_spec(document)))
    del head["env"][0]["name"]


BREAKAGES: list[tuple[Callable[[dict], None], str]] = [
    (_without_group_name, "'groupName' is a required property"),
    (_replicas_as_words, "'two' is not of type 'integer'"),
    (_misspelt_field, "unknown field 'maxReplica'"),
    (_cpu_in_words, "'six' does not match"),
    (_env_without_name, "'name' is a required property"),
]


@pytest.mark.parametrize("kind", MANIFESTS)
@pytest.mark.parametrize("breakage, refusal", BREAKAGES, ids=[f.__name__.strip("_") for f, _ in BREAKAGES])
def test_a_broken_manifest_is_refused(kind: str, breakage: Callable[[dict], None], refusal: str) -> None:
    document = manifest(kind)
    breakage(document)
    found = problems(document)
    assert len(found) == 1 and refusal in found[0], found


def test_a_job_that_would_not_shut_its_cluster_down_is_refused() -> None:
    document = manifest("RayJob")
    document["spec"]["shutdownAfterJobFinishes"] = "yes"
    assert problems(document) == ["spec.shutdownAfterJobFinishes: 'yes' is not of type 'boolean'"]


@pytest.mark.parametrize("kind", MANIFESTS)
def test_the_cluster_runs_the_locked_ray_with_the_pipelines_images_and_storage(kind: str) -> None:
    locked = {package["name"]: package["version"] for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    spec = cluster_spec(manifest(kind))
    assert spec["rayVersion"] == locked["ray"]
    assert spec["enableInTreeAutoscaling"] is True
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"} and all(group["minReplicas"] == 0 for group in groups.values())
    storage = set()
    for group, container in containers(spec):
        assert container["image"] == IMAGES["cuda" if group == "gpu" else "cpu"], group
        limits = container["resources"]["limits"]
        assert (int(limits.get("nvidia.com/gpu", 0)) >= 1) == (group == "gpu"), group
        assert container["resources"]["requests"] == limits, group  # what Ray counts is what the pod gets
        env = {variable["name"]: variable for variable in container["env"]}
        storage.add(env["PIXELGAN_RUNS"]["value"])
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "pixelgan-s3", "key": key}, group
    assert len(storage) == 1 and storage.pop().startswith("s3://"), "every node writes one bucket"


def test_the_job_runs_job_sh_on_the_cluster_of_raycluster_yaml() -> None:
    job = manifest("RayJob")["spec"]
    assert job["rayClusterSpec"] == manifest("RayCluster")["spec"]
    assert job["shutdownAfterJobFinishes"] is True
    # KubeRay's submitter pastes the entrypoint into its own shell line: plain words only.
    words = shlex.split(job["entrypoint"])
    assert all(re.fullmatch(r"[\w./@:=+-]+", word) for word in words), words
    assert words[:2] == ["bash", "/app/cluster/kuberay/job.sh"] and (REPO / words[1].removeprefix("/app/")).is_file()


# The job script's contract, on a two-stage pipeline whose second stage fails.
PIPELINE = """\
stages:
  train:
    cmd: mkdir -p models metrics && echo weights > models/model.pt && echo '{"nll":1}' > metrics/train.json
    deps: [data.txt]
    outs: [models/model.pt]
    metrics:
      - metrics/train.json:
          cache: false
  evaluate:
    cmd: exit 3
    deps: [models/model.pt]
    outs: [metrics/eval.json]
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """A checkout as the image holds it (a pipeline, job.sh, .git) and its remotes: a bare
    git repository and a DVC remote folder."""
    checkout = tmp_path / "app"
    (checkout / "cluster/kuberay").mkdir(parents=True)
    shutil.copy2(KUBERAY / "job.sh", checkout / "cluster/kuberay/job.sh")
    (checkout / "dvc.yaml").write_text(PIPELINE)
    (checkout / "data.txt").write_text("data\n")
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "GIT_CONFIG_NOSYSTEM": "1", "DVC_NO_ANALYTICS": "1", "PIXELGAN_RUNS": "s3://bucket/pixelgan/runs",
           "PIXELGAN_DVC_REMOTE": str(tmp_path / "dvc-remote"), "PIXELGAN_GIT_REMOTE": f"file://{tmp_path / 'origin.git'}",
           "PIXELGAN_GIT_TOKEN": "unused-by-file-remotes"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git")], check=True)
    _git(checkout, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=checkout, env=env, check=True)
    _git(checkout, "add", "--all")
    _git(checkout, "commit", "-qm", "the image's commit")
    _git(checkout, "push", "-q", env["PIXELGAN_GIT_REMOTE"], "main")
    return env


def job(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    script = Path(env["HOME"]) / "app/cluster/kuberay/job.sh"
    return subprocess.run(["bash", str(script), *command], env=env, capture_output=True, text=True, cwd=env["HOME"])


def test_job_sh_sends_back_every_stage_that_finished_and_fails_as_the_command_did(job_env: dict[str, str]) -> None:
    home = Path(job_env["HOME"])
    ran = job(job_env, "dvc", "repro")
    assert ran.returncode != 0, "the evaluate stage failed"
    branch = re.search(r"results on branch (kuberay/\S+)", ran.stdout).group(1)

    clone = home / "clone"  # the user's clone, at the image's commit
    subprocess.run(["git", "clone", "-q", job_env["PIXELGAN_GIT_REMOTE"], str(clone)], check=True)
    _git(clone, "pull", "-q", "--ff-only", "origin", branch)
    assert _git(clone, "log", "-1", "--format=%s").strip() == f"dvc repro on KubeRay (exit status {ran.returncode})"
    assert json.loads((clone / "metrics/train.json").read_text()) == {"nll": 1}, "the figures kept in git came back"
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"train"}
    for args in (["remote", "add", "--local", "store", job_env["PIXELGAN_DVC_REMOTE"]], ["remote", "default", "--local", "store"],
                 ["pull", "train"]):  # a bare `dvc pull` also names the evaluate stage's missing output
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=clone, env=job_env, check=True, capture_output=True)
    assert (clone / "models/model.pt").read_text() == "weights\n", "the outputs came back through the DVC remote"
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "train"], cwd=clone, env=job_env,
                            capture_output=True, text=True, check=True).stdout
    assert "up to date" in status, status


def test_job_sh_refuses_to_start_without_its_settings_or_a_checkout(job_env: dict[str, str]) -> None:
    home = Path(job_env["HOME"])
    without_token = {name: value for name, value in job_env.items() if name != "PIXELGAN_GIT_TOKEN"}
    ran = job(without_token, "touch", str(home / "ran"))
    assert ran.returncode != 0 and "PIXELGAN_GIT_TOKEN" in ran.stderr and not (home / "ran").exists()
    shutil.rmtree(home / "app/.git")
    ran = job(job_env, "touch", str(home / "ran"))
    assert ran.returncode != 0 and "build the image with .git" in ran.stderr and not (home / "ran").exists()
