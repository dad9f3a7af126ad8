"""One source of truth for parameters: `conf/` (Hydra), composed into `params.yaml` (DVC).

DVC composes `conf/` into `params.yaml` on `dvc exp run` (its Hydra option is on in
`.dvc/config`), so `dvc exp run -S prior=gaussian` works; `dvc repro` reads `params.yaml` as
it stands. A stage run without arguments therefore reads the `params.yaml` of its working
directory (a pipeline's own: DVC runs a stage where its dvc.yaml is, so `paper/dvc.yaml`'s
stages read `paper/params.yaml`). Every entry point takes Hydra's override grammar: dotted
overrides (`train.seed=1`) replace values of that file through OmegaConf in struct mode (an
unknown key is refused); an override that chooses a config group (`prior=gaussian`,
`+experiment=paper`) composes `conf/` with Hydra instead, as DVC would, and is refused when
params.yaml holds an edit the composition would drop. A named run's changes (`runs.<name>`)
replace the values they name by the same merge. `python -m pipeline.params [--out FILE]
[OVERRIDE ...]` writes a params file from `conf/`; tests fail when a committed one disagrees. YAML stops here: the library gets
`pixelgan.config` dataclasses, and this module adds what only a pipeline job has (where its
files live, how Ray lays it out)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from pipeline import storage
from pipeline.cli import command
from pixelgan.config import (
    ConfigError,
    DatasetConfig,
    EvalConfig,
    ImageConfig,
    ModelConfig,
    PriorConfig,
    RunSpec,
    TrainConfig,
    from_dict,
)
from pixelgan.data.parquet import Splits, read_metadata, read_prepared, training_rows
from pixelgan.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
PARAMS = REPO / "params.yaml"
T = TypeVar("T")


def compose_yaml(overrides: Sequence[str] = ()) -> str:
    """`conf/` composed with ``overrides``, as the YAML text DVC writes to params.yaml."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            config = compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(config)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"overrides {' '.join(overrides)}: {error}") from error
    return OmegaConf.to_yaml(config)


def chooses_a_group(override: str) -> bool:
    """Whether an override needs conf/ composed: it adds or deletes a key (``+experiment=paper``,
    ``~runs.aae``) or its key names a config group, a folder of conf/ (``prior=gaussian``,
    ``prior@x=gaussian``)."""
    key = override.partition("=")[0].partition("@")[0]
    return override.startswith(("+", "~")) or (bool(key) and (CONF_DIR / key).is_dir())


def parse_overrides(overrides: Sequence[str], source: str = "override") -> list[Any]:
    """``overrides`` read by Hydra's override grammar (hydra.core.override_parser's
    ``Override``s), the one grammar of every entry point: values typed as Hydra types them
    (``1e-9`` a float, ``yes`` a string, ``'s3://b?x=1'`` a string)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for override in overrides:
        if "=" not in override and not override.startswith("~"):
            raise ConfigError(f"{source} {override!r}: expected key=value, e.g. train.seed=1")
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise ConfigError(f"{source}s {' '.join(overrides)}: {error}") from error


def changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every setting that differs between two parameter trees, by dotted name, with both values."""
    flat_old, flat_new = (dotted(tree) for tree in (old, new))
    return {key: (flat_old.get(key), flat_new.get(key)) for key in sorted(flat_old.keys() | flat_new.keys())
            if flat_old.get(key) != flat_new.get(key)}


def dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"prior": {"dim": 2}} -> {"prior.dim": 2}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_params(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The run's parameters: ./params.yaml with dotted overrides laid over it, or, when an
    override chooses a group, conf/ composed with all of them. A composition starts from
    conf/, so it is refused when it would drop an edit params.yaml holds (``dropped_edits``)."""
    path = Path("params.yaml")
    parsed = parse_overrides(overrides)
    if any(chooses_a_group(override) for override in overrides):
        composed = yaml.safe_load(compose_yaml(overrides))
        if path.is_file() and (lost := dropped_edits(parsed, yaml.safe_load(path.read_text()), composed)):
            raise ConfigError(
                f"{path.resolve()} holds {', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''} other than conf/, which "
                f"{' '.join(overrides)} composes afresh, dropping them; give those as overrides too, "
                "or put them in conf/ and rewrite params.yaml with `python -m pipeline.params`")
        return composed
    if not path.is_file():
        raise ConfigError(f"{path.resolve()}: missing; write it with `python -m pipeline.params`")
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(f"override {override.input_line}: a sweep; a stage trains one set-up (sweep.extra sweeps)")
    return with_overrides(yaml.safe_load(path.read_text()), {override.key_or_group: override.value() for override in parsed})


def dropped_edits(overrides: Sequence[Any], held: dict[str, Any], composed: dict[str, Any]) -> list[str]:
    """The keys where ``held`` (a params file) differs from conf/ and ``composed`` (conf/ with
    ``overrides``) does not keep its value, leaving out the keys the overrides set themselves
    (a key they name, or one under a group they choose)."""
    named = [override.key_or_group for override in overrides]
    composed_flat, held_flat = dotted(composed), dotted(held)
    return [key for key in changed(yaml.safe_load(compose_yaml()), held)
            if composed_flat.get(key) != held_flat.get(key)
            and not any(key == name or key.startswith(f"{name}.") for name in named)]


def read_section(params: dict[str, Any], cls: type[T], name: str, keys: Collection[str] | None = None) -> T:
    """``params[name]`` (dotted for a nested section) as ``cls``. With ``keys``, only those are
    read and the rest keep ``cls``'s defaults: a stage that needs a few keys of a section reads
    and lists only those (tests/pipeline/test_stages.py), so DVC does not rerun it when the
    others change; it must not use the rest."""
    section: Any = params
    for part in name.split("."):
        section = section.get(part) if isinstance(section, dict) else None
    section = section or {}
    if keys is not None:
        section = {key: section[key] for key in keys if key in section}
    return from_dict(cls, section, f"{name}.")


def dataset_config(params: dict[str, Any]) -> DatasetConfig:
    return read_section(params, DatasetConfig, "dataset")


@dataclass(frozen=True)
class Scaling:
    """How a Ray Train job is laid out (the `train.*` keys that are not TrainConfig's)."""

    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ConfigError(f"train.num_workers={self.num_workers} must be >= 1")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"train.cpus_per_worker={self.cpus_per_worker} must be > 0")
        if self.use_gpu and (self.gpus_per_worker < 1 or self.gpus_per_worker != int(self.gpus_per_worker)):
            raise ConfigError(f"train.gpus_per_worker={self.gpus_per_worker}: with train.use_gpu=true each worker "
                              "needs whole GPUs (1, 2, ...); NCCL refuses two workers on one GPU")
        if self.max_failures < -1:
            raise ConfigError(f"train.max_failures={self.max_failures} must be >= -1 (-1: no limit)")


RAY_STORAGE = "PIXELGAN_RUNS"


@dataclass(frozen=True)
class Paths:
    """The workspace's layout (``paths.*``, which dvc.yaml's deps and outs spell out) and Ray's
    storage, ``runs``, which no parameter sets: see ``read_paths``."""

    data: str = "data"
    models: str = "models"
    metrics: str = "metrics"
    results: str = "results"
    runs: str = "runs"

    def resolved(self) -> Paths:
        """Absolute paths, as Ray workers run in a copy of the working directory; a URI
        (``runs`` may be ``s3://...``, pipeline/storage.py) as it is."""
        return Paths(*(path if storage.is_uri(path) else str(Path(path).resolve())
                       for path in (getattr(self, f.name) for f in dataclasses.fields(self))))

    def split(self, dataset: str, name: str) -> Path:
        return Path(self.data) / dataset / f"{name}.parquet"

    def scores(self, output: str) -> Path:
        """A paper-column model's scores file, kept in git beside its cached model."""
        return Path(self.metrics) / f"{output}_scores.json"


def read_paths(params: dict[str, Any]) -> Paths:
    """``params``' layout, with Ray's storage (every run's checkpoints, curves and markers, a
    sweep's Tune state) from ``$PIXELGAN_RUNS``, a folder or a URI, else ``runs``. Where files
    live is no parameter of any stage, so that one commit gives one DVC lock, and one run
    cache, on a laptop and on a cluster whose runs live in a bucket."""
    if "runs" in (params.get("paths") or {}):
        raise ConfigError(f"paths.runs is not a parameter: set Ray's storage with {RAY_STORAGE}=<folder or URI>")
    return dataclasses.replace(read_section(params, Paths, "paths"), runs=os.environ.get(RAY_STORAGE) or "runs")


def read_splits(paths: Paths, dataset: DatasetConfig, test: bool = True) -> Splits:
    """The splits of ``dataset`` under ``paths.data``, prepared with its settings (see ``read_prepared``)."""
    return read_prepared(Path(paths.data) / dataset.name, test, dataset)


@dataclass(frozen=True)
class TrainSpec:
    """Everything a training job needs, checked on the driver before any worker starts: the
    library's run and, around it, the job's layout and files."""

    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig
    scaling: Scaling
    paths: Paths

    @property
    def run(self) -> RunSpec:
        return RunSpec(self.dataset, self.model, self.train)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        return from_dict(cls, data)


def column_output(name: str, seed: int) -> str:
    """Where ``python -m pipeline.train --run NAME`` writes at ``train.seed``: runs/<name>-seed<seed>
    (the paper column's model files; pipeline/table.py's scores beside them)."""
    return f"runs/{name}-seed{seed}"


def eval_config(params: dict[str, Any]) -> EvalConfig:
    return read_section(params, EvalConfig, "eval")


SCALING_KEYS = {field.name for field in dataclasses.fields(Scaling)}


def _train_sections(params: dict[str, Any]) -> tuple[TrainConfig, Scaling]:
    """The `train` section, which holds the run's TrainConfig and the Ray job's Scaling."""
    train_params = dict(params.get("train") or {})
    scaling = from_dict(Scaling, {k: train_params.pop(k) for k in SCALING_KEYS & set(train_params)}, "train.")
    return from_dict(TrainConfig, train_params, "train."), scaling


def check_params(params: dict[str, Any]) -> None:
    """Build every section's dataclass from ``params``, and every named run's in ``runs``, so
    that a writer of parameters refuses a bad value with the message a stage would give.
    What needs the prepared data (the image shape, the batch against the training rows) is
    left to the stages."""
    parts = {name: kind for name, kind in typing.get_type_hints(ModelConfig).items() if name not in ("image", "prior")}
    for run in [params, *(run_params(params, name) for name in params.get("runs") or {})]:
        dataset_config(run)
        eval_config(run)
        read_paths(run)
        _train_sections(run)
        from_dict(PriorConfig, run.get("prior"), "prior.")
        model = run.get("model") or {}
        if not isinstance(model, dict):
            raise ConfigError(f"model must be a mapping, got {model!r}")
        for name, section in model.items():
            if name not in parts:  # image comes from the data, prior from its own section
                raise ConfigError(f"unknown option model.{name} (known: {', '.join(sorted(parts))})")
            from_dict(parts[name], section, f"model.{name}.")


def train_spec(params: dict[str, Any]) -> TrainSpec:
    """Build and cross-check the configs of a training run; the image shape comes from the data."""
    dataset = dataset_config(params)
    paths = read_paths(params).resolved()
    train, scaling = _train_sections(params)
    prior = from_dict(PriorConfig, params.get("prior"), "prior.")
    metadata = read_metadata(paths.split(dataset.name, "train"), dataset)
    model = from_dict(
        ModelConfig,
        dict(params.get("model") or {}, prior=dataclasses.asdict(prior),
             image=dataclasses.asdict(ImageConfig(*metadata["image_shape"]))),
    )
    rows = training_rows(paths.split(dataset.name, "train"))
    if train.batch_size > rows:
        raise ConfigError(f"train.batch_size={train.batch_size} is more than the {rows} training images of {dataset.name}")
    if train.batch_size % scaling.num_workers:
        raise ConfigError(
            f"train.batch_size={train.batch_size} must split evenly over train.num_workers={scaling.num_workers}"
        )
    if train.semi_supervised and prior.categories != dataset.classes:
        raise ConfigError(
            f"train.semi_supervised needs a prior with one category per class: prior.kind="
            f"{prior.kind} with prior.dim={prior.dim}, but {dataset.name} has {dataset.classes} classes"
        )
    if train.semi_supervised and not dataset.labels:
        raise ConfigError("train.semi_supervised needs labelled images: dataset.labels=0")
    return TrainSpec(dataset, model, train, scaling, paths)


def with_overrides(params: dict[str, Any], changes: dict[str, Any], source: str = "override") -> dict[str, Any]:
    """A copy of ``params`` with the value of each dotted key in ``changes`` (``prior.dim``)
    replaced, by OmegaConf in struct mode: a key ``params`` lacks is refused by name."""
    try:
        merged = OmegaConf.create(params)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{error.full_key}: {error}") from error
    OmegaConf.set_struct(merged, True)
    for key, value in changes.items():
        try:
            OmegaConf.update(merged, key, value, merge=False)
        except (ConfigAttributeError, ConfigKeyError) as error:
            raise ConfigError(f"{source}: {key} is not a parameter (see params.yaml)") from error
        except OmegaConfBaseException as error:
            raise ConfigError(f"{source}: {key}={value!r}: {error}") from error
    return OmegaConf.to_container(merged)


def run_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The parameters of the named run in ``runs``: its changes laid over the others."""
    runs = params.get("runs") or {}
    if name not in runs:
        raise ConfigError(f"runs.{name}: no such run (runs: {', '.join(runs) or 'none'})")
    changes = runs[name] or {}
    if not isinstance(changes, dict):
        raise ConfigError(f"runs.{name} must be a mapping of parameters, got {changes!r}")
    return with_overrides(params, dotted(changes), f"runs.{name}")


@command("params")
def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.params", description="Write a params file composed from conf/.")
    parser.add_argument("--out", type=Path, default=PARAMS, help="default: the repository's params.yaml")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides, e.g. +experiment=paper_column")
    args = parser.parse_args(argv)
    text = compose_yaml(args.overrides)
    check_params(yaml.safe_load(text))
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text)
    print(f"wrote {args.out} from {CONF_DIR}" + (f" with {' '.join(args.overrides)}" if args.overrides else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
