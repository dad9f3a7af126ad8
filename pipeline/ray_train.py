"""The library's training run on Ray: Ray Train for one run, Ray Tune for many.

Three thin layers, the shape of Ray's own examples:

- ``train_worker`` runs in every worker and is the only place Ray touches torch: it builds
  the library's ``pixelgan.run.Run`` (the one ``python -m pixelgan`` trains in one process),
  resumes it from Ray's latest checkpoint, and fits it with each part in
  DistributedDataParallel (gloo on CPU, nccl on GPU), reporting every epoch.
- ``fit_on_ray`` is the driver: it builds and fits the TorchTrainer.
- ``tuner_over`` runs many drivers as trials of one Tuner, as Ray's docs compose Train V2 and
  Tune: each trial's driver (``run_trial``) holds 1% of a CPU, taken from its workers' share
  so that a run holds its whole cores, and the Tuner runs as many at once as the cluster has
  cores for (``max_concurrent_trials``): two one-core runs train side by side on 2 cores. The
  runs stage and the sweep both use it.

Data: the caller reads the prepared Parquet splits and puts them in Ray's object store once
(``SharedSplits``; the trials of one Tuner share that copy); every worker takes them from
there (no worker opens the caller's data folder, which on a cluster without a shared disk
exists on the caller's machine alone), and a DistributedSampler hands it 1/N of each epoch's
seeded permutation. Our data sets are at most ~75,000 small images, so a copy per worker is
cheap, and the sampler makes a run exactly reproducible for a given number of workers; Ray
Data's streaming earns its overhead only when data outgrows memory.

Resuming: a run lives in ``$PIXELGAN_RUNS/<name>``, the name a hash of its identity, epochs and
layout (``run_name``; not of where its files live, so a submitted job's working copy finds
the same run). Ray Train restores a failed worker group from the run's last checkpoint (up to
``train.max_failures`` times), and running a killed stage again resumes each run of the same
name (a run that trained to its end is not trained again). A finished run is marked so
(``FINISHED``); running the same spec again then starts afresh instead of resuming a
finished run by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline import storage
from pipeline.params import TrainSpec
from pipeline.quiet import QUIET_ENV, SETUP_HOOK
from pixelgan.checkpoint import EpochCheckpoints, load_checkpoint, rng_state
from pixelgan.config import run_identity
from pixelgan.data.parquet import Splits
from pixelgan.encoder import Encoder
from pixelgan.engine import Callback
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


def connect() -> None:
    """Join the cluster ``RAY_ADDRESS`` names (or one ``ray start`` left here), or start a local
    Ray, with every process of the job set up for a quiet log (pipeline/quiet.py). A no-op
    where Ray is already up: then its settings are whoever started it's."""
    import ray

    if not ray.is_initialized():
        ray.init(runtime_env={"env_vars": QUIET_ENV, "worker_process_setup_hook": SETUP_HOOK})


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

    connect()
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


def clear_finished(spec: TrainSpec) -> None:
    """A finished run is never resumed: its folder goes, and running its spec again trains a new one."""
    run_dir = storage.join(spec.paths.runs, run_name(spec))
    if storage.exists(storage.join(run_dir, FINISHED)):
        storage.remove_tree(run_dir)


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
