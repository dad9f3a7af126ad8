"""DVC stage `prepare`: a data set into train / validation / test Parquet files.

    python -m pipeline.prepare                          # params.yaml, as `dvc repro` runs it
    python -m pipeline.prepare dataset=digits           # Hydra overrides compose conf/

Writes <paths.data>/<name>/{train,validation,test}.parquet, summary.json and examples.png;
raw downloads go to <paths.data>/raw/<name>/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pixelgan.params import Paths, dataset_config, load_params
from pixelgan.config import ConfigError, from_dict
from pixelgan.data.formats import DataFormatError
from pixelgan.data.prepare import prepare_dataset
from pixelgan.data.sources import DataSourceError


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        params = load_params(sys.argv[1:] if argv is None else argv)
        config = dataset_config(params)
        data = Path(from_dict(Paths, params.get("paths"), "paths.").data)
        out_dir = data / config.name
        summary = prepare_dataset(config, out_dir, data / "raw" / config.name)
    except (ConfigError, DataFormatError, DataSourceError) as error:
        print(f"prepare: error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{name} {split['count']}" for name, split in summary["splits"].items())
    print(f"prepared {config.name} into {out_dir}: {counts} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
