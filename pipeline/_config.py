"""One source of truth for parameters: `conf/` (Hydra), composed into `params.yaml` (DVC).

DVC composes `conf/` into `params.yaml` on `dvc exp run` (its Hydra option is on in
`.dvc/config`), so `dvc exp run -S dataset=digits` works; `dvc repro` reads `params.yaml` as
it stands. A stage run without arguments therefore reads `params.yaml`; given Hydra
overrides (`python -m pipeline.prepare dataset=digits dataset.labels=50`) it composes `conf/`
with them, as DVC would. `python -m pipeline._config` rewrites `params.yaml` from `conf/`, and
a test fails when the two disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pixelgan.config import ConfigError, DatasetConfig, from_dict

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
PARAMS = REPO / "params.yaml"


def compose_yaml(overrides: Sequence[str] = ()) -> str:
    """`conf/` composed with ``overrides``, as the YAML text DVC writes to params.yaml."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            config = compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(config)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"overrides {' '.join(overrides)}: {error}") from error
    return OmegaConf.to_yaml(config)


def load_params(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The run's parameters: params.yaml as it stands, or conf/ composed with overrides."""
    if overrides:
        return yaml.safe_load(compose_yaml(overrides))
    if not PARAMS.is_file():
        raise ConfigError(f"{PARAMS}: missing; write it with `python -m pipeline._config`")
    return yaml.safe_load(PARAMS.read_text())


def dataset_config(params: dict[str, Any]) -> DatasetConfig:
    return from_dict(DatasetConfig, params.get("dataset"), "dataset.")


if __name__ == "__main__":
    PARAMS.write_text(compose_yaml(sys.argv[1:]))
    print(f"wrote {PARAMS} from {CONF_DIR}" + (f" with {' '.join(sys.argv[1:])}" if sys.argv[1:] else ""))
