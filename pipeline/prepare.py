"""DVC stage `prepare`: a data set into train / validation / test Parquet files.

    python -m pipeline.prepare                          # params.yaml, as `dvc repro` runs it
    python -m pipeline.prepare dataset=digits           # Hydra overrides compose conf/

Writes <paths.data>/<name>/{train,validation,test}.parquet, summary.json and examples.png;
raw downloads go to <paths.data>/raw/<name>/. The summary and the examples are also written
where a clone finds them without the data (committed, not cached): <paths.metrics>/data/<name>.json
(``dvc metrics show``) and <paths.results>/data/<name>-examples.png (``dvc plots show``).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.cli import command
from pipeline.params import Paths, load_params, read_section
from pixelgan.config import DatasetConfig
from pixelgan.data.prepare import prepare_dataset
from pixelgan.io import atomic_path, write_json


PREPARE_KEYS = tuple(field.name for field in dataclasses.fields(DatasetConfig) if field.name != "labels")  # labels: a run's


def configure(argv: Sequence[str]) -> tuple[DatasetConfig, Paths]:
    """All the stage reads of params.yaml: the dataset's keys but labels, and the three paths it
    writes to, as dvc.yaml lists them."""
    params = load_params(argv)
    return (read_section(params, DatasetConfig, "dataset", PREPARE_KEYS),
            read_section(params, Paths, "paths", ["data", "metrics", "results"]))


@command("prepare")
def main(argv: Sequence[str]) -> int:
    started = time.perf_counter()
    config, paths = configure(argv)
    data = Path(paths.data)
    out_dir = data / config.name
    summary = prepare_dataset(config, out_dir, data / "raw" / config.name)
    write_json(Path(paths.metrics) / "data" / f"{config.name}.json", summary)
    with atomic_path(Path(paths.results) / "data" / f"{config.name}-examples.png") as tmp:
        shutil.copyfile(out_dir / "examples.png", tmp)
    counts = ", ".join(f"{name} {split['count']}" for name, split in summary["splits"].items())
    print(f"prepared {config.name} into {out_dir}: {counts} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
