"""A finished sweep's Tune experiment, loaded from Ray's storage and printed, a row per trial.

    uv run python -m pipeline.experiment                       # results/sweep_experiment.json's
    uv run python -m pipeline.experiment search/results/sweep_experiment.json
    uv run python -m pipeline.experiment runs/runs-stage       # any experiment folder or URI

The sweep stage names its experiment in results/sweep_experiment.json: a folder, relative to
that file's own, on the machine that ran it, or the URI of a bucket ($PIXELGAN_RUNS), which
any clone with the bucket's credentials reads. Tune's own
``ExperimentAnalysis`` loads it; every trial's reported metrics are also TensorBoard
event files in its folder: ``tensorboard --logdir <experiment>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import storage
from pipeline.cli import command
from pixelgan.config import ConfigError

SHOWN = ["epoch", "val_nll", "val_error_paper_rule", "val_error", "time_total_s"]


def experiment_location(named: str) -> str:
    """The experiment a sweep_experiment.json names, or ``named`` itself (a folder or a URI)."""
    if not named.endswith(".json"):
        return named
    path = Path(named)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; the sweep stage writes it (dvc repro sweep)")
    try:
        location = json.loads(path.read_text())["experiment"]
    except (ValueError, KeyError) as error:
        raise ConfigError(f"{path}: not a sweep_experiment.json the sweep stage wrote ({error})") from error
    return location if storage.is_uri(location) else str((path.resolve().parent / location).resolve())


def trials(location: str) -> list[dict[str, Any]]:
    """Each trial's point and last reported metrics, as Tune's ExperimentAnalysis reads them."""
    from ray.tune import ExperimentAnalysis

    if not storage.exists(location):
        raise ConfigError(f"{location}: no such experiment (Ray's storage of the machine or bucket that ran it)")
    filesystem, path = storage.filesystem(location)
    analysis = ExperimentAnalysis(path, storage_filesystem=filesystem)
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        point = trial.config.get("trial", {}).get("point", {})
        rows.append({"trial": trial.trial_id, "status": trial.status, **point,
                     **{key: last.get(key) for key in SHOWN if key in last}})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as aligned text, a trial a line."""
    import pandas  # Tune's ExperimentAnalysis needs it too

    return pandas.DataFrame(rows).to_string(index=False, float_format="{:.4g}".format)


@command("experiment")
def main(argv: Sequence[str]) -> int:
    """``python -m pipeline.experiment [results/sweep_experiment.json | folder | URI]``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiment", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", nargs="?", default="results/sweep_experiment.json")
    location = experiment_location(parser.parse_args(argv).experiment)
    rows = trials(location)
    print(f"{location}: {len(rows)} trials")
    print(table(rows))
    print(f"curves: uv run tensorboard --logdir {location.partition('?')[0]} --host 127.0.0.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
