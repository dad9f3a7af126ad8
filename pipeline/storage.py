"""Ray's storage (``$PIXELGAN_RUNS``, see pipeline.params.read_paths) wherever pyarrow reaches:
a local folder, an NFS mount, or an ``s3://`` / ``gs://`` URI. An S3-compatible server other
than AWS is named in the URI (``s3://bucket/runs?endpoint_override=host:9000&scheme=http``);
credentials come from each node's environment, as Ray's own storage reads them. Every
marker, checkpoint read and clean-up of the pipeline's runs goes through here, never through
local paths, so a cluster without a shared disk works as one machine does.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """``base``/``parts``, keeping a URI's query (its endpoint) at the end."""
    if not is_uri(base):
        return str(Path(base, *parts))
    location, _, query = base.partition("?")
    return "/".join([location.rstrip("/"), *parts]) + (f"?{query}" if query else "")


def filesystem(path: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``path`` and the path on it (Ray's storage_filesystem and
    storage_path take the same two)."""
    if is_uri(path):
        return pafs.FileSystem.from_uri(str(path))
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def exists(path: str | os.PathLike[str]) -> bool:
    fs, where = filesystem(path)
    return fs.get_file_info(where).type != pafs.FileType.NotFound


def touch(path: str | os.PathLike[str]) -> None:
    """An empty file at ``path`` (a marker), its folder made if need be."""
    fs, where = filesystem(path)
    fs.create_dir(where.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(where):
        pass


def remove_tree(path: str | os.PathLike[str]) -> None:
    """``path`` and all below it, if it exists."""
    fs, where = filesystem(path)
    if fs.get_file_info(where).type != pafs.FileType.NotFound:
        fs.delete_dir(where)


def read_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes, or None when there is no such file."""
    fs, where = filesystem(path)
    if fs.get_file_info(where).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(where) as stream:
        return stream.read()


class Folder:
    """A local folder that writers (TensorBoard's, say) fill, mirrored to ``path`` on
    ``sync()``: ``path`` itself when it is local, else a temporary folder uploaded."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._scratch = tempfile.TemporaryDirectory(prefix="pixelgan-") if is_uri(path) else None
        self.local = Path(self._scratch.name) if self._scratch else Path(path)

    def sync(self) -> None:
        if self._scratch is not None:
            fs, where = filesystem(self.path)
            pafs.copy_files(str(self.local), where, destination_filesystem=fs)
