"""What the pipeline's tests share: one real local Ray cluster of two nodes, an S3 server, the
prepared digits, and a copy of the repository after `dvc repro prepare`."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.params import REPO
from pixelgan.config import DatasetConfig
from pixelgan.data.prepare import prepare_dataset
from tests.helpers import repo_copy, run


# Set before anything in this process imports Ray (its constants are read at import):
# - a private token for this session's cluster, so that no ~/.ray/auth_token left by another
#   cluster decides whether the nodes and drivers can talk
# - drivers in this process resolve 127.0.0.1 to itself rather than to the machine's outward
#   address (Ray does that for multi-node set-ups; this variable switches it off for drivers,
#   and `ray start` gets it switched back on), so every connection stays on loopback.
#   (a subprocess of this session, importing this module, keeps the token it inherits);
DRIVERS_ON_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
os.environ.update({"RAY_AUTH_MODE": "token"} | DRIVERS_ON_LOOPBACK)
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    address: str  # the GCS, for ray.init and `ray start --address`
    dashboard: str  # the job server, for `ray job submit --address`


def ray_env() -> dict[str, str]:
    """For `ray` commands: this venv first on PATH, so the cluster's jobs and workers run the
    project's Python, and multi-node clusters allowed."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, PYTHONPATH=str(REPO), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")


def _start_node(address: str, *args: str) -> subprocess.Popen[str]:
    """`ray start ... --block`, returned once the node is up; the node lives as long as the
    returned process. Stopping that process stops this node and no other: `ray stop` would
    stop every Ray node on the machine, a user's running `dvc repro` among them.

    The node's processes are told the cluster's ``address``: Ray's state API, which Ray Train
    calls from its actors, otherwise looks for a cluster in /tmp/ray/ray_current_cluster, and
    that file names whichever cluster was last started there (this one has its own temp dir),
    perhaps one long gone."""
    ray = Path(sys.executable).parent / "ray"
    node = subprocess.Popen([str(ray), "start", *args, "--block"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ray_env() | {"RAY_ADDRESS": address}, start_new_session=True)
    assert node.stdout is not None
    said = []
    for line in node.stdout:
        said.append(line)
        if "Ray runtime started" in line:
            threading.Thread(target=deque, args=(node.stdout, 0), daemon=True).start()  # keep the pipe drained
            return node
    node.wait()
    raise AssertionError(f"ray start {' '.join(args)} exited with {node.returncode}:\n{''.join(said)}")


@pytest.fixture(scope="session")
def ray_cluster(s3_server: S3Server) -> Iterator[Cluster]:
    """`ray start --head` plus a second `ray start --address`, each with 2 CPUs, on 127.0.0.1;
    started after the S3 server, so its nodes have its credentials, as a cloud cluster's
    nodes have theirs."""
    port, dashboard_port = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="pg-ray-")  # short: Ray's socket paths have a length limit
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    previous = os.environ.get("RAY_ADDRESS")
    nodes: list[subprocess.Popen[str]] = []
    try:
        nodes.append(_start_node(address, "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                                 "--dashboard-port", str(dashboard_port), "--temp-dir", temp_dir, *common))
        nodes.append(_start_node(address, "--address", address, *common))
        os.environ["RAY_ADDRESS"] = address  # the driver under test connects, as on a cluster
        yield Cluster(address, f"http://127.0.0.1:{dashboard_port}")
    finally:
        import ray

        ray.shutdown()
        for node in reversed(nodes):  # the worker node, then the head
            node.terminate()
            node.wait(timeout=120)
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding scikit-learn's digits, prepared (180 validation, 180 test)."""
    data = tmp_path_factory.mktemp("data")
    prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180), data / "digits", data / "raw")
    return data


@dataclass(frozen=True)
class PreparedRepo:
    path: Path  # a copy of the repository after `dvc repro prepare`; copy it before changing it
    said: str  # what that command printed


@pytest.fixture(scope="session")
def prepared_repo(tmp_path_factory: pytest.TempPathFactory) -> PreparedRepo:
    """The repository as a fresh clone has it, after `dvc repro prepare` (MNIST-5k), made once
    for the tests that start from there."""
    repo = repo_copy(tmp_path_factory.mktemp("prepared"))
    return PreparedRepo(repo, run(repo, "-m", "dvc", "repro", "prepare"))


def copy_of(prepared: PreparedRepo, destination: Path) -> Path:
    shutil.copytree(prepared.path, destination, symlinks=True)
    return destination


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    bucket: str


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (moto in server mode) on 127.0.0.1 with one empty bucket;
    this process and its subprocesses get its throwaway credentials."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    previous = {name: os.environ.get(name) for name in credentials}
    os.environ.update(credentials)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="pixelgan")
        yield S3Server(endpoint, "pixelgan")
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
