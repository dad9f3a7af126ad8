"""A one-process training run: ``python -m pixelgan [--out DIR] [OVERRIDE ...]``.

The run that ``python -m pipeline.train`` trains on Ray, from the same parameters
(params.yaml, or conf/ composed with the same overrides: ``prior=gaussian prior.dim=8``,
``+experiment=paper``, ``train.seed=1``), built by the same ``pixelgan.run.Run`` and scored
by the same ``pixelgan.evaluation.score_model``, here in one process without Ray: for a
machine without a cluster, or to debug. Its device is the parameters' (``train.use_gpu``).

The data set is fetched and prepared first when its Parquet files are missing (the same
library functions as the fetch and prepare stages). A checkpoint is saved every epoch and
the same command resumes from it, so a run longer than one sitting is that command run
again; ``--time-limit`` ends a call within a step of its limit, with a checkpoint from
which the next call goes on as an unbroken run would. With every epoch done, the model
is scored (each test figure beside its validation figure) and its figures drawn;
``metrics.json``, written last, marks the run done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.cli import command
from pipeline.params import Paths, TrainSpec, changed, dataset_config, eval_config, load_params, read_section, read_splits, train_spec
from pixelgan.checkpoint import SaveEveryEpoch, load_checkpoint
from pixelgan.config import ConfigError, RunSpec, run_identity
from pixelgan.data.prepare import prepare_dataset
from pixelgan.data.sources import fetch_source
from pixelgan.engine import TimeLimit
from pixelgan.io import write_json
from pixelgan.report import evaluate_model
from pixelgan.run import LABELLED_ORDER, Run, run_record
from pixelgan.speed import device_name

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pixelgan", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quick"), help="the run's folder (default: runs/quick)")
    parser.add_argument("--time-limit", type=float, default=0, metavar="MINUTES",
                        help="stop at the first training step that ends past it, saving a checkpoint that "
                             "the same command resumes exactly (0: none); scoring a finished run is not cut short")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="as for the pipeline's stages: key=value, group=option, +experiment=paper")
    return parser.parse_args(argv)


def prepared_spec(params: dict[str, Any]) -> TrainSpec:
    """The run's spec, its data set fetched and prepared first if its Parquet files are missing."""
    dataset = dataset_config(params)
    paths = read_section(params, Paths, "paths").resolved()
    if not all(paths.split(dataset.name, name).is_file() for name in ("train", "validation", "test")):
        raw = Path(paths.data) / "raw" / dataset.name
        fetch_source(dataset, raw)
        prepare_dataset(dataset, Path(paths.data) / dataset.name, raw)
    return train_spec(params)


def saved_identity(saved: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    """A checkpoint's identity as this code reads it: a setting added since it was written
    takes its default, which is how that run behaved (new options default to the old way);
    the settings free to change, which a checkpoint does not keep, are ``spec``'s."""
    return run_identity(RunSpec.from_dict(spec.to_dict() | saved))


@command("pixelgan")
def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    limit = TimeLimit(args.time_limit * 60) if args.time_limit else None  # set-up counts too
    params = load_params(args.overrides)
    spec, config = prepared_spec(params), eval_config(params)
    device = torch.device("cuda" if spec.scaling.use_gpu else "cpu")
    splits = read_splits(spec.paths, spec.dataset)
    run = Run(spec.run, splits, device)

    checkpoint, done = args.out / "checkpoint.pt", args.out / "metrics.json"
    wanted = run_identity(spec.run)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, map_location=device)
        if "spec" not in state.get("run", {}):
            raise ConfigError(f"{checkpoint} was written by an earlier python -m pixelgan, whose runs this one "
                              "cannot continue; pass another --out or delete that folder")
        try:
            saved = saved_identity(state["run"]["spec"], spec.run)
        except ConfigError as error:
            raise ConfigError(f"{checkpoint} holds a setting or value this code no longer accepts ({error}); "
                              "pass another --out or delete that folder") from error
        if differences := changed(saved, wanted):
            named = "; ".join(f"{key} {old!r} in the checkpoint, {new!r} now" for key, (old, new) in differences.items())
            raise ConfigError(f"{checkpoint} belongs to a run with other settings ({named}); "
                              "pass those, another --out, or delete that folder")
        if spec.train.semi_supervised and state["run"].get("labelled_order") != LABELLED_ORDER:
            raise ConfigError(f"{checkpoint} drew its labelled batches in an order this code no longer draws, so "
                              "it cannot be continued exactly; pass another --out or delete that folder")
        run.resume(state)
        if run.within is not None and run.within.epoch > spec.train.epochs:
            raise ConfigError(f"{checkpoint} stopped part-way through epoch {run.within.epoch}; pass train.epochs="
                              f"{run.within.epoch} or more to finish it, another --out, or delete that folder")
        scored_with = json.loads(done.read_text()).get("eval") if done.exists() else None
        if run.start_epoch >= spec.train.epochs and scored_with == dataclasses.asdict(config):
            print(f"{checkpoint} has trained its {run.start_epoch} epochs and is scored with these eval settings; nothing to do")
            return 0
        within = f", step {run.within.batches} of epoch {run.within.epoch}" if run.within else ""
        print(f"resuming {checkpoint} after epoch {run.start_epoch}/{spec.train.epochs}{within}")

    if run.start_epoch < spec.train.epochs:  # scores of fewer epochs no longer describe the run
        done.unlink(missing_ok=True)
    saver = SaveEveryEpoch(checkpoint, run.model, run.optimizers, spec.train, run=run_record(spec.run),
                           history=run.history, speed=run.speed)
    run.fit([saver, *([limit] if limit else [])])
    if limit is not None and limit.stopped_in is not None:
        epoch, steps = limit.stopped_in
        print(f"stopped in epoch {epoch}/{spec.train.epochs} after step {steps}/{len(run.train_batches)} "
              f"(--time-limit {args.time_limit:g} min), its checkpoint saved; run the same command again to go on "
              "exactly where it stopped")
        return 0

    state = load_checkpoint(checkpoint, map_location=device)  # the last epoch's record (run.model holds its weights)
    scores, _ = evaluate_model(run.model.eval(), splits, config, args.out, semi_supervised=spec.train.semi_supervised,
                               device=device)
    metrics = {
        "spec": spec.to_dict(), "device": device_name(device), "epochs": state["epoch"], "speed": state.get("speed"),
        "train_time_s": sum(epoch["epoch_time_s"] for epoch in state["history"]),
        "last_epoch": state["metrics"], "eval": dataclasses.asdict(config), "scores": scores,
    }
    write_json(done, metrics)  # last: its presence marks the run done
    print(f"wrote {done}: {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
