"""DVC stage `train`: the library's training loop as a Ray Train job (TorchTrainer, DDP).

    python -m pipeline.train                               # params.yaml, as `dvc repro` runs it
    python -m pipeline.train prior=gaussian prior.dim=8    # Hydra overrides compose conf/
    ray job submit --working-dir . -- python -m pipeline.train paths.data=$PWD/data ...

Ray comes in three thin layers, the shape of Ray's own examples:

- ``train_worker`` runs in every worker and is the only place Ray touches torch: it builds
  the library's ``pixelgan.run.Run`` (the one ``python -m pixelgan`` trains in one process),
  resumes it from Ray's latest checkpoint, and fits it with each part in
  DistributedDataParallel (gloo on CPU, nccl on GPU), reporting every epoch.
- ``fit_on_ray`` is the driver: it builds and fits the TorchTrainer.
- ``main`` reads the parameters, checks them before any worker starts, runs the driver and
  writes the stage's outputs for DVC.

With ``--runs`` (the runs stage) Ray Tune schedules the runs, as Ray's docs compose Train V2
and Tune (``tuner_over``, the sweep's Tuner too): each run is a trial whose driver
(``run_trial``) holds 1% of a CPU, taken from its workers' share so that a run holds its
whole cores, and the Tuner runs as many at once as the cluster has cores for
(``max_concurrent_trials``): two one-core runs train side by side on 2 cores. Ray places
them; each run's outputs are written in the stage's own process from its final checkpoint,
whichever node it trained on, and a failed run fails the stage with its error.

Data: the stage reads the prepared Parquet splits and puts them in Ray's object store once
(the runs stage's runs train on one data set, and share that copy); every worker takes them
from there (no worker opens the stage's data folder, which on a cluster without a shared
disk exists on the stage's machine alone), and a DistributedSampler hands it 1/N of each
epoch's seeded permutation. Our data sets are at most ~75,000 small images, so a copy per
worker is cheap, and the sampler makes a run exactly reproducible for a given number of
workers; Ray Data's streaming earns its overhead only when data outgrows memory.

Resuming: a run lives in ``<paths.runs>/<name>``, the name a hash of its identity, epochs and
layout (``run_name``; not of where its files live, so a submitted job's working copy finds
the same run).
Ray Train restores a failed worker group from the run's last checkpoint (up to
``train.max_failures`` times), and running a killed stage again resumes each run of the
same name (a run that trained to its end is not trained again). A finished run is marked
so; running the same spec again then starts afresh instead of resuming a finished run by
accident.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline import storage
from pipeline.params import TrainSpec, load_params, read_splits, run_params, train_spec
from pixelgan.checkpoint import EpochCheckpoints, load_checkpoint, rng_state
from pixelgan.config import ConfigError, run_identity
from pixelgan.data.formats import DataFormatError
from pixelgan.data.parquet import Splits
from pixelgan.encoder import Encoder
from pixelgan.engine import Callback
from pixelgan.io import atomic_path, write_json
from pixelgan.run import LABELLED_ORDER, Run, run_record

FINISHED = "FINISHED"

# What a driver running inside Ray (a Tune trial: a run of the runs stage, a sweep's trial)
# holds: next to nothing, taken from its workers' share (fit_on_ray's driver_cpu), so that a
# driver and its workers together hold the spec's cores, and two 1-core runs fill 2 cores.
DRIVER_CPU = 0.01


class ReportToRay(EpochCheckpoints):
    """Report each epoch's metrics to Ray Train with a checkpoint: the model and optimizers
    from rank 0, every worker's random state beside it."""

    def __init__(self, rank: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rank = rank

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        import ray.train

        state = self.state(epoch, metrics)
        with tempfile.TemporaryDirectory() as folder:
            if self.rank == 0:
                torch.save(state, Path(folder) / "checkpoint.pt")
            torch.save(rng_state(), Path(folder) / f"rng-{self.rank}.pt")
            ray.train.report(
                dict(metrics, epoch=epoch),
                checkpoint=ray.train.Checkpoint.from_directory(folder),
                checkpoint_dir_name=f"epoch-{epoch:04d}",
            )


@dataclass(frozen=True)
class SharedSplits:
    """Splits already in Ray's object store. Held in a field, the reference travels to a task
    as it is (Ray resolves only references passed as arguments themselves), so many runs
    share one copy of the data."""

    ref: Any  # ray.ObjectRef of a Splits

    @classmethod
    def put(cls, splits: Splits) -> SharedSplits:
        import ray

        return cls(ray.put(splits))


class TensorBoardCurves(Callback):
    """Each epoch's metrics as TensorBoard scalars in ``folder`` (local or a storage URI),
    flushed as the epoch ends, so a long run is watched while it trains
    (``tensorboard --logdir runs``)."""

    def __init__(self, folder: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = storage.Folder(folder)
        self.writer = SummaryWriter(str(self.folder.local))

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()
        self.folder.sync()


def train_worker(config: dict[str, Any]) -> None:
    """The per-worker training function that Ray Train runs in every worker: the library's
    ``Run``, each part in DistributedDataParallel, resumed from Ray's latest checkpoint."""
    import ray
    import ray.train
    import ray.train.torch

    spec = TrainSpec.from_dict(config["spec"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, round(spec.scaling.cpus_per_worker)))
    run = Run(spec.run, ray.get(config["splits"]), ray.train.torch.get_device(), rank, world)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / "checkpoint.pt", map_location=run.device)
            own_rng = Path(folder) / f"rng-{rank}.pt"  # absent when the number of workers changed
            run.resume(state, torch.load(own_rng, weights_only=True) if own_rng.is_file() else None)

    def ddp(part: torch.nn.Module) -> torch.nn.Module:
        # Only the supervised phase of a categorical + Gaussian encoder leaves parameters
        # (the style head) out of a backward pass; DDP must be told, and only then.
        unused = isinstance(part, Encoder) and spec.model.prior.kind == "categorical_gaussian"
        return ray.train.torch.prepare_model(part, parallel_strategy_kwargs={"find_unused_parameters": unused})

    callbacks: list[Callback] = [ReportToRay(rank, run.model, run.optimizers, spec.train, history=run.history, speed=run.speed,
                                             run=run_record(spec.run))]
    if rank == 0:
        callbacks.append(TensorBoardCurves(storage.join(spec.paths.runs, config["run"], "tensorboard")))
    run.fit([*callbacks, *config.get("callbacks", [])], wrap=ddp)


# What decides a run besides its spec: the code's way of drawing its labelled rows (they were
# the prepare stage's, the same for every seed, until commit f95ccbd) and their order. Changing
# it renames every run, so an unfinished run never resumes under another way.
RUN_FORMAT = {"labels_drawn_by": "seed", "labelled_order": LABELLED_ORDER}


def run_name(spec: TrainSpec, prefix: str = "train") -> str:
    """The Ray Train run of ``spec``, named by ``prefix`` (the stage, or a sweep's name) and a
    digest of its identity (``pixelgan.config.run_identity``, the one a one-process resume
    checks) with the epochs it trains to and its layout on Ray (both change its numbers: the
    annealing follows the epochs, the batch splits over the workers): run again, the same job
    finds (and resumes) its checkpoints, and another never picks them up. Where files live,
    the speed switches and how often a failure is retried are not the run."""
    layout = {key: value for key, value in dataclasses.asdict(spec.scaling).items() if key != "max_failures"}
    named = dict(run_identity(spec.run), epochs=spec.train.epochs, scaling=layout, **RUN_FORMAT)
    digest = hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()
    return f"{prefix}-{spec.dataset.name}-{spec.model.prior.kind}-{spec.model.prior.dim}-{digest[:10]}"


def fit_on_ray(
    spec: TrainSpec,
    splits: Splits | SharedSplits,
    *,
    name: str,
    callbacks: Sequence[Any] = (),
    worker_callbacks: Sequence[Callback] = (),
    driver_cpu: float = 0.0,
):  # -> ray.train.Result
    """The driver: build the TorchTrainer for ``spec`` and fit it (resuming ``name`` if it
    exists). The workers get ``splits`` through Ray's object store (put there now unless it
    is already shared), never from ``spec.paths.data``: on a cluster without a shared disk
    that folder is on the driver's machine alone. ``driver_cpu``: the CPU this driver holds
    where it runs inside Ray (a Tune trial); its workers book that much less between them, so
    the job holds ``spec``'s cores, its driver included, and each worker still runs
    ``train.cpus_per_worker`` threads."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": spec.scaling.cpus_per_worker - driver_cpu / spec.scaling.num_workers}
    if spec.scaling.use_gpu:
        resources["GPU"] = spec.scaling.gpus_per_worker
    filesystem, storage_path = storage.filesystem(spec.paths.runs)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"spec": spec.to_dict(), "run": name, "splits": (splits if isinstance(splits, SharedSplits) else SharedSplits.put(splits)).ref, "callbacks": list(worker_callbacks)},
        scaling_config=ScalingConfig(
            num_workers=spec.scaling.num_workers, use_gpu=spec.scaling.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=spec.scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks),
        ),
    )
    return trainer.fit()


def final_state(result: Any) -> dict[str, Any]:
    """The last checkpoint's state (model, optimizers, history) from a finished Ray result."""
    with result.checkpoint.as_directory() as folder:
        return load_checkpoint(Path(folder) / "checkpoint.pt")


def checkpoint_folder(runs: str, run: str, epoch: int) -> str:
    """Where the Train run ``run`` under ``runs`` keeps its checkpoint of ``epoch`` (ReportToRay's)."""
    return storage.join(runs, run, f"epoch-{epoch:04d}")


def whole_checkpoint(path: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (local or a storage URI), or None if it is absent or was cut
    short: Ray Train copies a checkpoint into storage file by file, so a kill can leave part
    of one, which Ray Train never registered and trains again."""
    data = storage.read_bytes(path)
    if data is None:
        return None
    try:
        return load_checkpoint(io.BytesIO(data))
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
        return None


def write_outputs(spec: TrainSpec, state: dict[str, Any], wall_time: float, name: str = "train") -> dict[str, Any]:
    """The stage's outputs: models/<name>.pt, metrics/<name>.json and the per-epoch curves
    (metrics/<name>_curves.json, a list of rows that `dvc plots show` draws). The metrics name
    the precision and layout the step ran in (rank 0's, as ``auto`` resolved there).

    Every path is absolute: under `ray job submit` the driver's working directory can be
    gone by now, as Ray removes the job's unpacked working_dir once the trainer's actors end.
    """
    with atomic_path(Path(spec.paths.models) / f"{name}.pt") as tmp:
        torch.save(state, tmp)
    metrics = dict(state["metrics"], epochs=state["epoch"], wall_time_s=wall_time, **state.get("speed", {}))
    write_json(Path(spec.paths.metrics) / f"{name}.json", metrics)
    write_json(Path(spec.paths.metrics) / f"{name}_curves.json", state["history"])
    return metrics


def clear_finished(spec: TrainSpec) -> None:
    """A finished run is never resumed: its folder goes, and running its spec again trains a new one."""
    run_dir = storage.join(spec.paths.runs, run_name(spec))
    if storage.exists(storage.join(run_dir, FINISHED)):
        storage.remove_tree(run_dir)


def finish(spec: TrainSpec, state: dict[str, Any], wall_time: float, output: str) -> dict[str, Any]:
    """In the stage's own process: write the outputs DVC looks for, then mark the run finished."""
    metrics = write_outputs(spec, state, wall_time, output)
    storage.touch(storage.join(spec.paths.runs, run_name(spec), FINISHED))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))
    print(f"train: {output} ({run_name(spec)}) finished: {shown}")
    return metrics


def train(spec: TrainSpec, output: str) -> dict[str, Any]:
    """Train ``spec`` on Ray from this process, resuming a killed run of the same spec, and
    write its outputs."""
    clear_finished(spec)
    started = time.perf_counter()
    state = final_state(fit_on_ray(spec, read_splits(spec.paths, spec.dataset, test=False), name=run_name(spec)))
    return finish(spec, state, time.perf_counter() - started, output)


@dataclass(frozen=True)
class Trial:
    """A trial of ``tuner_over``: the spec it trains, its Train run (named so that it resumes
    by name, whatever Tune's trial id), and the point it stands for (its folder's name)."""

    spec: TrainSpec
    run: str
    point: dict[str, Any]


def run_trial(config: dict[str, Any], splits: SharedSplits) -> None:
    """One trial: the train stage's driver, reporting each epoch to Tune. ``splits`` is the
    one copy of the data in the object store, not a data folder."""
    import ray.tune
    from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY, TuneReportCallback

    spec = TrainSpec.from_dict(config["trial"]["spec"])
    name = config["trial"]["run"]
    last = checkpoint_folder(spec.paths.runs, name, spec.train.epochs)
    state = whole_checkpoint(storage.join(last, "checkpoint.pt"))
    if state is not None:
        # Trained to the end before the stage was killed (this trial restored, or the stage
        # run again): Ray Train has nothing left to run or report, so the trial reports the
        # final checkpoint's metrics itself.
        where = storage.filesystem(last)[1]  # as Ray reports its own: the path on the storage, no endpoint
        ray.tune.report(dict(state["metrics"], epoch=state["epoch"], **{CHECKPOINT_PATH_KEY: where}))
        return
    fit_on_ray(spec, splits, name=name, callbacks=[TuneReportCallback()], driver_cpu=DRIVER_CPU)


def _trial_dirname(trial: Any) -> str:
    point = trial.config.get("trial", {}).get("point")
    if point is None:  # not resolved yet
        return trial.trial_id
    named = "-".join(f"{key.split('.')[-1]}={value}" for key, value in point.items())
    if len(named) > 100:  # many levers: the run's name (a digest of its settings) fits a file name
        named = trial.config["trial"]["run"]
    return f"{named}-{trial.trial_id}"


def runs_at_once(specs: Sequence[TrainSpec], cpus: float) -> int:
    """How many of these Train runs ``cpus`` CPUs hold at once, each with its driver (whose
    share comes out of its workers'): as many as fit of the largest, so that none of them
    waits for its workers."""
    largest = max(spec.scaling.num_workers * spec.scaling.cpus_per_worker for spec in specs)
    return max(1, int(cpus / largest + 1e-6))


def tuner_over(trials: Sequence[Trial], splits: SharedSplits, *, experiment: str, runs: str,
               callbacks: Sequence[Any] = (), **tune_config: Any) -> Any:  # -> ray.tune.Tuner
    """A Tuner with a trial per Train run, as Ray's docs compose Train V2 and Tune: each trial
    a driver (``run_trial``) holding DRIVER_CPU, and ``max_concurrent_trials`` as many as the
    cluster has CPUs for (``runs_at_once``). Its experiment is ``runs``/``experiment``, always
    new: a killed stage run again resumes through its trials' Train runs (each finds its own
    by name, finished or not), so Tune's saved state, and Tuner.restore (which drops
    callbacks), are not needed. ``tune_config``: the rest of the TuneConfig (metric, mode,
    scheduler)."""
    import ray
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(run_trial, splits=splits), {"CPU": DRIVER_CPU})
    configs = [{"spec": trial.spec.to_dict(), "run": trial.run, "point": trial.point} for trial in trials]
    room = runs_at_once([trial.spec for trial in trials], ray.cluster_resources().get("CPU", 1))
    filesystem, storage_path = storage.filesystem(runs)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=room, trial_dirname_creator=_trial_dirname, **tune_config),
        run_config=tune.RunConfig(name=experiment, storage_path=storage_path, storage_filesystem=filesystem,
                                  callbacks=list(callbacks)),
    )


# The runs stage's Tune experiment, under paths.runs: the last stage run's trials, each one's
# reports (result.json) beside its Train run's own folder.
RUNS_EXPERIMENT = "runs-stage"


def train_runs(jobs: list[tuple[TrainSpec, str]]) -> None:
    """The runs stage: train every (spec, output) as a trial of one Tuner, longest first, on
    one copy of their data; then, in this process, write each run's outputs from its final
    checkpoint. A failed run fails the stage with its error, and no run is marked finished,
    so the stage run again resumes every run (a run trained to its end is not trained again)."""
    import ray

    first = jobs[0][0]
    for spec, _ in jobs:
        clear_finished(spec)
    storage.remove_tree(storage.join(first.paths.runs, RUNS_EXPERIMENT))  # never restored: its runs resume by name
    if not ray.is_initialized():
        ray.init()
    splits = SharedSplits.put(read_splits(first.paths, first.dataset, test=False))  # one data set (configure)
    trials = [Trial(spec, run_name(spec), {"run": Path(output).name}) for spec, output in jobs]
    trials.sort(key=lambda trial: trial.spec.train.epochs * trial.spec.scaling.num_workers * trial.spec.scaling.cpus_per_worker,
                reverse=True)  # the longest starts first
    grid = tuner_over(trials, splits, experiment=RUNS_EXPERIMENT, runs=first.paths.runs).fit()
    if grid.errors:
        raise grid.errors[0]
    results = {result.config["trial"]["run"]: result for result in grid}
    for spec, output in jobs:
        name = run_name(spec)
        state = whole_checkpoint(storage.join(checkpoint_folder(spec.paths.runs, name, spec.train.epochs), "checkpoint.pt"))
        if state is None:
            raise RuntimeError(f"train: {output} ({name}) ended without its epoch-{spec.train.epochs} checkpoint")
        finish(spec, state, results[name].metrics["time_total_s"], output)


def column_output(name: str, spec: TrainSpec) -> str:
    """Where ``--run NAME`` writes: runs/<name>-seed<seed> (the paper column's model files)."""
    return f"runs/{name}-seed{spec.train.seed}"


def configure(argv: Sequence[str]) -> tuple[list[tuple[TrainSpec, str]], bool]:
    """The jobs to train, each a spec and its output name, and whether they train at once
    (``--runs``): all the stage reads of params.yaml, checked before any worker starts."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=main.__doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--runs", action="store_true", help="every model in runs, at once")
    which.add_argument("--run", metavar="NAME", help="one model in runs")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE")
    args = parser.parse_args(argv)
    params = load_params(args.overrides)
    if args.run:
        spec = train_spec(run_params(params, args.run))
        return [(spec, column_output(args.run, spec))], False
    if not args.runs:
        return [(train_spec(params), "train")], False
    jobs = [(train_spec(run_params(params, name)), f"runs/{name}") for name in params.get("runs") or {}]
    if not jobs:
        raise ConfigError("--runs: params.yaml names no runs")
    named: dict[str, str] = {}
    for spec, output in jobs:  # one Ray run each: two outputs may not share one
        if (twin := named.setdefault(run_name(spec), output)) != output:
            raise ConfigError(f"{twin} and {output} train the same model; list it once")
    data = {(spec.paths.data, json.dumps(spec.dataset.prepared_settings(), sort_keys=True)) for spec, _ in jobs}
    if len(data) > 1:  # one copy in the object store (train_runs); dataset.labels is drawn by each run
        raise ConfigError("runs: every run trains on one data set: a run may change dataset.labels, not paths.data "
                          "or the settings the data was prepared with (dataset.name, dataset.validation_size, ...)")
    return jobs, True


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.train [overrides]`` trains the main model; with ``--runs``, every
    model in ``runs`` (the runs stage), as many at once as the cluster has cores for; with
    ``--run NAME``, that one model of ``runs``, as runs/<NAME>-seed<train.seed> (a stage of the
    paper column, paper/dvc.yaml, one per run and seed)."""
    try:
        jobs, at_once = configure(sys.argv[1:] if argv is None else argv)
    except (ConfigError, DataFormatError) as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    if at_once:
        train_runs(jobs)
    else:
        train(*jobs[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
