"""Markers, reads and clean-ups of Ray's storage behave alike on a local folder and on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import storage
from tests.pipeline.conftest import S3Server


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "runs")
    server: S3Server = request.getfixturevalue("s3_server")
    host = server.endpoint.removeprefix("http://")
    return f"s3://{server.bucket}/{tmp_path.name}/runs?endpoint_override={host}&scheme=http"


def test_a_marker_is_made_found_and_removed_with_its_run(root: str) -> None:
    run = storage.join(root, "train-digits-1234")
    marker = storage.join(run, "FINISHED")
    assert not storage.exists(marker) and storage.read_bytes(marker) is None
    storage.touch(marker)
    assert storage.exists(marker) and storage.read_bytes(marker) == b""
    folder = storage.Folder(storage.join(run, "tensorboard"))
    (folder.local / "events.out").mkdir(parents=True, exist_ok=True)
    (folder.local / "events.out" / "scalars").write_bytes(b"epoch 1")
    folder.sync()
    assert storage.read_bytes(storage.join(run, "tensorboard", "events.out", "scalars")) == b"epoch 1"
    storage.remove_tree(run)
    assert not storage.exists(marker) and not storage.exists(run)
    storage.remove_tree(run)  # nothing left: no error


def test_a_uri_keeps_its_endpoint_when_joined() -> None:
    assert storage.join("s3://b/runs?endpoint_override=h:9&scheme=http", "r", "FINISHED") == \
        "s3://b/runs/r/FINISHED?endpoint_override=h:9&scheme=http"
