"""DVC stage `sweep`: Ray Tune over prior types and latent sizes, or over any levers, each trial a train job.

    python -m pipeline.sweep                                   # params.yaml (conf/sweep/)
    python -m pipeline.sweep sweep.gaussian=[2,5,10] sweep.scheduler=asha
    tensorboard --logdir runs                                  # every trial's curves

The Tuner is the runs stage's (``pipeline.ray_train.tuner_over``): a driver function per trial
(``run_trial``) that builds and fits the train stage's TorchTrainer with Ray Tune's
``TuneReportCallback``, the composition Ray's docs give for Train V2 (a Trainer handed
straight to a Tuner is deprecated). A trial's driver holds 1% of a CPU, taken from its
workers' share, so a trial holds its workers' whole cores and no trial can hold a core its
workers need (a 2-core machine never deadlocks); ``max_concurrent_trials`` lets as many
trials run at once as the cluster has cores for.

The points are a grid (sizes x ``extra``), or with ``sweep.samples`` that many points drawn
at random from ``sweep.space`` (a list of values per parameter), by ``sweep.seed``: drawn on
the driver, not by Tune, so the same search has the same points on every machine and a
killed one resumes. With ``sweep.scheduler=asha`` Tune stops the trials that trail at each
rung of epochs by ``sweep.metric`` (every trial reports every epoch).

Outputs: results/sweep.parquet and results/sweep.csv (a row per trial: its parameters, its
last metrics, checkpoint path, relative to the project, and wall time),
results/sweep_epochs.csv (a row per trial and epoch it trained, from its last checkpoint's
history: every metric it reported and the training time so far), results/best.json (the
best trial of each prior by ``sweep.metric``), results/sweep.png (``sweep.metric`` against
training time, a line per trial: a DVC plot cannot draw one line per trial of one file) and
results/sweep_experiment.json (the Tune experiment, for ``python -m pipeline.experiment``).

A sweep killed half-way, run again, keeps its finished trials and resumes the rest: each
trial's Train run is named by the sweep and its identity (``trial_run_name``), not by Tune's
trial id, and the Tune experiment by a digest of its trials (``experiment_name``), so a new
Tuner's trials find their runs, and a changed grid never resumes the old one. A finished
sweep run again trains afresh into a new experiment beside the old one (``sweep_experiment``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import storage
from pipeline.cli import command
from pipeline.params import Paths, TrainSpec, dotted, load_params, parse_overrides, read_paths, read_section, read_splits, train_spec, with_overrides
from pipeline.ray_train import FINISHED, SharedSplits, Trial, checkpoint_folder, connect, run_name, tuner_over, whole_checkpoint
from pixelgan.config import ConfigError, PriorConfig
from pixelgan.io import atomic_path, write_json


# What a trial reports every epoch (pixelgan.engine: the phases' losses, then the validation
# split's figures), and those only a prior with categories reports
TRAINING_METRICS = ("nll", "d_loss", "g_loss", "marginal_entropy", "sup_loss", "sup_acc")
CATEGORY_METRICS = ("val_error", "val_error_paper_rule", "val_nmi_label", "val_nmi_ink", "val_ink_explained",
                    "val_batch_marginal_entropy", "val_train_eval_agreement", "val_top_probability", "val_categories_used")
REPORTED_METRICS = (*TRAINING_METRICS, "val_nll", "val_nll_other_code", "val_d_accuracy", *CATEGORY_METRICS)


@dataclass(frozen=True)
class SweepConfig:
    """The search space and how to search it (conf/sweep/).

    One list of latent sizes per prior kind (an empty list leaves the kind out), and
    ``extra``: any other parameter as ``"dotted.name=v1,v2"`` (Hydra's sweep grammar, as
    ``-m`` reads it: ``"model.encoder.channels=[8,16],[4,8]"``), crossed with the rest. With
    ``samples`` above 0, each of those points is crossed with ``samples`` distinct draws from
    ``space`` (``dotted.name: [values]``, each drawn uniformly), by ``seed``.
    """

    name: str = "sweep"
    gaussian: tuple[int, ...] = (2, 8)
    categorical: tuple[int, ...] = (10, 30)
    categorical_gaussian: tuple[int, ...] = ()
    extra: tuple[str, ...] = ()
    space: dict[str, Any] = field(default_factory=dict)
    samples: int = 0
    seed: int = 0
    scheduler: str = "grid"
    grace_period: int = 1
    reduction_factor: int = 2
    metric: str = "val_nll"
    mode: str = "min"
    epochs: int = 1
    num_workers: int = 1
    cpus_per_worker: float = 1.0

    def __post_init__(self) -> None:
        if not self.sizes():
            raise ConfigError("sweep: the search space is empty: give sweep.gaussian or sweep.categorical a size")
        for kind, size in self.sizes():
            try:  # an invalid pairing fails here, naming the prior
                PriorConfig(kind=kind, dim=size)
            except ConfigError as error:
                raise ConfigError(f"sweep.{kind}: {error}") from error
        self.extra_values()
        if self.scheduler not in ("grid", "asha"):
            raise ConfigError(f"sweep.scheduler={self.scheduler!r} is not one of grid, asha")
        if self.metric not in REPORTED_METRICS:
            raise ConfigError(f"sweep.metric={self.metric!r} is not one a trial reports: {', '.join(REPORTED_METRICS)}")
        if self.metric in CATEGORY_METRICS and self.gaussian:
            raise ConfigError(f"sweep.metric={self.metric} needs categories, which sweep.gaussian's priors do not have")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"sweep.mode={self.mode!r} is not one of min, max")
        if self.epochs < 1 or self.num_workers < 1:
            raise ConfigError("sweep.epochs and sweep.num_workers must be >= 1")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"sweep.cpus_per_worker={self.cpus_per_worker} must be > 0")
        if self.samples < 0:
            raise ConfigError(f"sweep.samples={self.samples} must be >= 0")
        choices = self.choices()
        for key, values in choices.items():
            if any(value == other for i, value in enumerate(values) for other in values[i + 1 :]):
                raise ConfigError(f"sweep.space.{key}={values} lists a value twice")
        set_by_the_sweep = {"prior.kind", "prior.dim", "train.epochs", "train.num_workers", "train.cpus_per_worker"}
        for key in choices.keys() & (set_by_the_sweep | self.extra_values().keys()):
            raise ConfigError(f"sweep.space.{key}: the sweep sets {key} itself (sizes, epochs, workers or sweep.extra)")
        if self.samples and not choices:
            raise ConfigError(f"sweep.samples={self.samples} draws from sweep.space, which is empty")
        if self.samples > math.prod(len(values) for values in choices.values()):
            raise ConfigError(f"sweep.samples={self.samples}: sweep.space holds fewer distinct points")

    def choices(self) -> dict[str, list[Any]]:
        """``space`` as ``{dotted.name: values}``."""
        flat = dotted(self.space)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"sweep.space.{key} must be a non-empty list of values, got {values!r}")
        return flat

    def sizes(self) -> list[tuple[str, int]]:
        return [(kind, size) for kind in ("gaussian", "categorical", "categorical_gaussian") for size in getattr(self, kind)]

    def extra_values(self) -> dict[str, list[Any]]:
        """``extra`` read by Hydra's sweep grammar (``key=v1,v2`` or ``key=range(1,4)``, as
        ``-m`` reads it): a plain change, a choice or a range, in the order given."""
        values = {}
        for item in self.extra:
            (override,) = parse_overrides([item], "sweep.extra")
            plain = not (override.is_add() or override.is_delete() or override.is_force_add() or override.value() == "")
            sweep = override.is_choice_sweep() and not override.value().shuffle or override.is_range_sweep()
            if not plain or override.is_sweep_override() and not sweep:
                raise ConfigError(f"sweep.extra: {item!r} is not of the form dotted.name=value1,value2 (or =range(a,b))")
            values[override.key_or_group] = list(override.sweep_iterator()) if sweep else [override.value()]
        return values

    def drawn(self) -> list[dict[str, Any]]:
        """``samples`` distinct points of ``space``, the same for the same seed ([{}] without)."""
        if not self.samples:
            return [{}]
        rng, choices = random.Random(self.seed), self.choices()
        points: list[dict[str, Any]] = []
        while len(points) < self.samples:
            point = {key: rng.choice(values) for key, values in sorted(choices.items())}
            if point not in points:
                points.append(point)
        return points

    def points(self) -> list[dict[str, Any]]:
        """Every trial's overrides: prior x size, crossed with every extra value and every draw."""
        extra, drawn = self.extra_values(), self.drawn()
        crossed = [dict(zip(extra, values)) for values in itertools.product(*extra.values())]
        return [{"prior.kind": kind, "prior.dim": size} | more | draw
                for kind, size in self.sizes() for more in crossed for draw in drawn]


def trial_specs(params: dict[str, Any], sweep: SweepConfig) -> list[TrainSpec]:
    """Check every trial's full spec on the driver, before any trial starts. Two points
    that train the same spec (a size listed twice, an ``extra`` key training ignores) would
    share one Train run, so they are refused."""
    base = {"train.epochs": sweep.epochs, "train.num_workers": sweep.num_workers, "train.cpus_per_worker": sweep.cpus_per_worker}
    specs = [train_spec(with_overrides(params, base | point, "sweep")) for point in sweep.points()]
    if len({(spec.paths.data, spec.dataset) for spec in specs}) > 1:
        raise ConfigError("sweep: every trial trains on one data set; sweep.extra may not change dataset.* or paths.data")
    seen: dict[str, dict[str, Any]] = {}
    for spec, point in zip(specs, sweep.points()):
        name = trial_run_name(sweep, spec)
        if name in seen:
            raise ConfigError(f"sweep: the points {seen[name]} and {point} train the same model; list each once")
        seen[name] = point
    return specs


def trial_run_name(sweep: SweepConfig, spec: TrainSpec) -> str:
    """A trial's Ray Train run, named by the sweep and a digest of its settings, not by Tune's
    trial id: run again, a trial finds its run even if Tune lost its own state."""
    return run_name(spec, sweep.name)


def experiment_name(sweep: SweepConfig, specs: list[TrainSpec]) -> str:
    """The Tune experiment of this search: the sweep's name and a digest of its trials and of
    how they are searched. A changed grid is another experiment, never a resumed one."""
    searched = {"runs": [trial_run_name(sweep, spec) for spec in specs], "points": sweep.points(),
                "how": [sweep.scheduler, sweep.grace_period, sweep.reduction_factor, sweep.metric, sweep.mode]}
    return f"{sweep.name}-{hashlib.sha256(json.dumps(searched, sort_keys=True).encode()).hexdigest()[:10]}"


def sweep_experiment(runs: str, name: str) -> tuple[str, bool]:
    """The experiment folder this run of the sweep writes, and whether its trials start afresh:
    ``name``, or ``name-2``, ``name-3``, ... after each finished one. A finished sweep is kept
    for inspection (pipeline/experiment.py), never resumed; a killed one is resumed."""
    attempt, chosen = 1, name
    while storage.exists(storage.join(runs, chosen, FINISHED)):
        attempt += 1
        chosen = f"{name}-{attempt}"
    return chosen, attempt > 1 and not storage.exists(storage.join(runs, chosen))


def build_tuner(sweep: SweepConfig, specs: list[TrainSpec], splits: SharedSplits, runs: str, callbacks: list[Any],
                experiment: str) -> Any:
    """The trials' Tuner (``tuner_over``), searching by ``sweep.metric``, with ASHA if asked."""
    from ray.tune.schedulers import ASHAScheduler

    scheduler = None
    if sweep.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="epoch", max_t=sweep.epochs,  # the run's epoch, which a resumed trial goes on counting
            grace_period=sweep.grace_period, reduction_factor=sweep.reduction_factor,
        )
    trials = [Trial(spec, trial_run_name(sweep, spec), point) for spec, point in zip(specs, sweep.points())]
    return tuner_over(trials, splits, experiment=experiment, runs=runs, callbacks=callbacks,
                      metric=sweep.metric, mode=sweep.mode, scheduler=scheduler)


def results_table(grid: Any) -> list[dict[str, Any]]:
    """A row per trial: its point, its last report's metrics, where its checkpoint is."""
    from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

    rows = []
    for result in grid:
        metrics = result.metrics or {}
        point = result.config["trial"]["point"]
        row = {
            "trial": Path(result.path).name,
            "prior": point["prior.kind"],
            "dim": point["prior.dim"],
            **{key: value for key, value in point.items() if not key.startswith("prior.")},
            "epochs": metrics.get("epoch"),
            "wall_time_s": metrics.get("time_total_s"),
            "checkpoint": project_relative(metrics.get(CHECKPOINT_PATH_KEY)),
            "error": str(result.error) if result.error else None,
        }
        for name in REPORTED_METRICS:
            row[name] = metrics.get(name)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["prior"], r["dim"], r["trial"]))


def epochs_table(grid: Any, runs: str) -> list[dict[str, Any]]:
    """A row per trial and epoch it trained: what it reported, and the training time so far
    (its epochs' own seconds, without Ray's start-up: what a longer run would cost). Read from
    the history in each trial's last checkpoint under ``runs``, so the epochs of a trial that
    was killed and resumed are all there."""
    rows = []
    for result in grid:
        epoch = (result.metrics or {}).get("epoch")
        state = None if epoch is None else whole_checkpoint(
            storage.join(checkpoint_folder(runs, result.config["trial"]["run"], int(epoch)), "checkpoint.pt"))
        trained = 0.0
        for record in [] if state is None else state["history"]:
            trained += record.get("epoch_time_s", 0.0)
            rows.append({"trial": Path(result.path).name, "epoch": int(record["epoch"]), "training_time_s": trained,
                         **{name: _number(record.get(name)) for name in REPORTED_METRICS}})
    return sorted(rows, key=lambda r: (r["trial"], r["epoch"]))


def _epochs_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("trial", pa.string()), ("epoch", pa.int64()), ("training_time_s", pa.float64()),
                      *((name, pa.float64()) for name in REPORTED_METRICS)])


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def project_relative(path: str | None) -> str | None:
    """A path below the working directory (the project, under DVC) as relative to it.

    Ray reports local storage by absolute path (and a bucket's as bucket/...); the committed
    results/best.json and results/sweep.csv must not name the clone they were made in.
    """
    if path is None or not Path(path).is_relative_to(Path.cwd()):
        return path
    return str(Path(path).relative_to(Path.cwd()))


def best_per_prior(rows: list[dict[str, Any]], sweep: SweepConfig) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    sign = 1 if sweep.mode == "min" else -1
    for row in rows:
        if row[sweep.metric] is None:
            continue
        current = best.get(row["prior"])
        if current is None or sign * row[sweep.metric] < sign * current[sweep.metric]:
            best[row["prior"]] = row
    return best


def write_outputs(rows: list[dict[str, Any]], epochs: list[dict[str, Any]], best: dict[str, Any], sweep: SweepConfig,
                  results: Path, experiment: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    with atomic_path(results / "sweep.parquet") as tmp:
        pq.write_table(table, tmp)
    with atomic_path(results / "sweep.csv") as tmp:
        pyarrow.csv.write_csv(table, tmp)
    with atomic_path(results / "sweep_epochs.csv") as tmp:
        pyarrow.csv.write_csv(pa.Table.from_pylist(epochs, schema=_epochs_schema()), tmp)
    write_json(results / "best.json", best)
    where = experiment if storage.is_uri(experiment) else os.path.relpath(experiment, results)  # as the file is moved
    write_json(results / "sweep_experiment.json", {"experiment": where, "trials": len(rows)})
    figure, axes = plt.subplots(figsize=(6, 4))
    prior_of = {row["trial"]: row["prior"] for row in rows}
    colours = {prior: f"C{i}" for i, prior in enumerate(sorted(set(prior_of.values())))}
    for trial in sorted({row["trial"] for row in epochs}):
        curve = [(r["training_time_s"], r[sweep.metric]) for r in epochs if r["trial"] == trial and r[sweep.metric] is not None]
        if curve:
            axes.plot(*zip(*curve), marker=".", linewidth=0.8, color=colours.get(prior_of.get(trial), "C0"))
    for prior, colour in colours.items():
        axes.plot([], [], color=colour, label=prior)
    axes.set_xlabel("training time (s): the trial's epochs, validation included")
    axes.set_ylabel(sweep.metric)
    axes.set_title(f"{sweep.name}: {len(rows)} trials, a line each")
    axes.legend()
    figure.tight_layout()
    with atomic_path(results / "sweep.png") as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


@dataclass(frozen=True)
class SweepPlan:
    """A sweep as checked before any trial starts: its search, every trial's spec, its paths."""

    sweep: SweepConfig
    specs: list[TrainSpec]
    paths: Paths


def plan_sweep(params: dict[str, Any]) -> SweepPlan:
    sweep = read_section(params, SweepConfig, "sweep")
    return SweepPlan(sweep, trial_specs(params, sweep), read_paths(params).resolved())


def configure(argv: Sequence[str]) -> SweepPlan:
    """All the stage reads of params.yaml, as dvc.yaml lists it."""
    return plan_sweep(load_params(argv))


def run_sweep(plan: SweepPlan, callbacks: Sequence[Any] = ()) -> list[dict[str, Any]]:
    sweep, specs, paths = plan.sweep, plan.specs, plan.paths
    name, afresh = sweep_experiment(paths.runs, experiment_name(sweep, specs))
    experiment = storage.join(paths.runs, name)
    if afresh:  # its trials' Train runs finished in the last one: train them again, not resume them
        for spec in specs:
            storage.remove_tree(storage.join(paths.runs, trial_run_name(sweep, spec)))
    connect()
    splits = SharedSplits.put(read_splits(specs[0].paths, specs[0].dataset, test=False))  # one data set (trial_specs)
    grid = build_tuner(sweep, specs, splits, paths.runs, list(callbacks), name).fit()
    rows = results_table(grid)
    write_outputs(rows, epochs_table(grid, paths.runs), best_per_prior(rows, sweep), sweep, Path(paths.results), experiment)
    storage.touch(storage.join(experiment, FINISHED))
    return rows


@command("sweep")
def main(argv: Sequence[str]) -> int:
    started = time.perf_counter()
    rows = run_sweep(configure(argv))
    print(f"sweep: {len(rows)} trials in {time.perf_counter() - started:.0f}s")
    for row in rows:
        print(f"  {row['prior']:>12} {row['dim']:>3}  val_nll={row['val_nll']}  wall={row['wall_time_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
