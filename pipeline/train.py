"""DVC stages `train` and `runs`: the library's training run on Ray (pipeline/ray_train.py).

    python -m pipeline.train                               # params.yaml, as `dvc repro` runs it
    python -m pipeline.train prior=gaussian prior.dim=8    # overrides, as every stage takes them
    python -m pipeline.train --runs                        # every model named in `runs`, at once
    ray job submit --working-dir . -- python -m pipeline.train paths.data=$PWD/data ...

``main`` reads the parameters and checks them before any worker starts; ``train`` fits one
run on Ray Train and ``train_runs`` many as trials of one Tuner, resuming each killed run by
name; then, in the stage's own process, whichever node a run trained on, ``finish`` writes
the outputs DVC looks for and marks the run finished. A failed run fails the stage with its
error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline import storage
from pipeline.cli import command
from pipeline.params import TrainSpec, column_output, load_params, read_splits, run_params, train_spec
from pipeline.ray_train import (FINISHED, SharedSplits, Trial, checkpoint_folder, clear_finished, connect, final_state, fit_on_ray,
                                run_name, tuner_over, whole_checkpoint)
from pixelgan.config import ConfigError
from pixelgan.io import atomic_path, write_json

def write_outputs(spec: TrainSpec, state: dict[str, Any], trained: tuple[float, float], name: str = "train") -> dict[str, Any]:
    """The stage's outputs: models/<name>.pt, metrics/<name>.json and the per-epoch curves
    (metrics/<name>_curves.json, a list of rows that `dvc plots show` draws). The metrics name
    the precision and layout the step ran in (rank 0's, as ``auto`` resolved there), and when
    the run trained, ``trained``: its start and end in Unix seconds (this stage's attempt, so
    that runs queued side by side show they overlapped).

    Every path is absolute: under `ray job submit` the driver's working directory can be
    gone by now, as Ray removes the job's unpacked working_dir once the trainer's actors end.
    """
    with atomic_path(Path(spec.paths.models) / f"{name}.pt") as tmp:
        torch.save(state, tmp)
    started, finished = trained
    metrics = dict(state["metrics"], epochs=state["epoch"], wall_time_s=finished - started, started_at=started,
                   finished_at=finished, **state.get("speed", {}))
    write_json(Path(spec.paths.metrics) / f"{name}.json", metrics)
    write_json(Path(spec.paths.metrics) / f"{name}_curves.json", state["history"])
    return metrics


def finish(spec: TrainSpec, state: dict[str, Any], trained: tuple[float, float], output: str) -> dict[str, Any]:
    """In the stage's own process: write the outputs DVC looks for, then mark the run finished."""
    metrics = write_outputs(spec, state, trained, output)
    storage.touch(storage.join(spec.paths.runs, run_name(spec), FINISHED))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))
    print(f"train: {output} ({run_name(spec)}) finished: {shown}")
    return metrics


def train(spec: TrainSpec, output: str) -> dict[str, Any]:
    """Train ``spec`` on Ray from this process, resuming a killed run of the same spec, and
    write its outputs."""
    clear_finished(spec)
    started = time.time()
    state = final_state(fit_on_ray(spec, read_splits(spec.paths, spec.dataset, test=False), name=run_name(spec)))
    return finish(spec, state, (started, time.time()), output)


# The runs stage's Tune experiment, in Ray's storage ($PIXELGAN_RUNS): the last stage run's
# trials, each one's reports (result.json) beside its Train run's own folder.
RUNS_EXPERIMENT = "runs-stage"


def train_runs(jobs: list[tuple[TrainSpec, str]]) -> None:
    """The runs stage: train every (spec, output) as a trial of one Tuner, longest first, on
    one copy of their data; then, in this process, write each run's outputs from its final
    checkpoint. A failed run fails the stage with its error, and no run is marked finished,
    so the stage run again resumes every run (a run trained to its end is not trained again)."""
    first = jobs[0][0]
    for spec, _ in jobs:
        clear_finished(spec)
    storage.remove_tree(storage.join(first.paths.runs, RUNS_EXPERIMENT))  # never restored: its runs resume by name
    connect()
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
        reported = results[name].metrics  # the trial's last report: when, and its time so far
        finish(spec, state, (reported["timestamp"] - reported["time_total_s"], reported["timestamp"]), output)


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
        return [(spec, column_output(args.run, spec.train.seed))], False
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


@command("train")
def main(argv: Sequence[str]) -> int:
    """``python -m pipeline.train [overrides]`` trains the main model; with ``--runs``, every
    model in ``runs`` (the runs stage), as many at once as the cluster has cores for; with
    ``--run NAME``, that one model of ``runs``, as runs/<NAME>-seed<train.seed> (a stage of the
    paper column, paper/dvc.yaml, one per run and seed)."""
    jobs, at_once = configure(argv)
    if at_once:
        train_runs(jobs)
    else:
        train(*jobs[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
