"""DVC stage `table` of paper/dvc.yaml, and the scoring step of its train stages: Table 1's
MNIST column from the pipeline's own runs, built from small files kept in git.

    uv run dvc repro paper/dvc.yaml                             # every stage; these run in paper/
    cd paper && python -m pipeline.table --score clustering train.seed=0   # one model's scores
    cd paper && python -m pipeline.table                        # the column from those scores
    cd paper && python -m pipeline.table --stages               # score@<run>-<seed>, one a line

``--score RUN`` (the ``score@<run>-<seed>`` stage, once ``train@<run>-<seed>`` has trained
the model) scores the model ``models/runs/<run>-seed<seed>.pt`` with the library's
``evaluate_model`` (each test figure beside its validation figure) and writes
``metrics/runs/<run>-seed<seed>_scores.json`` (in git, with the run's spec) and its figures
in ``results/figures/<run>-seed<seed>/``. Without it, the table stage reads those files
alone, no model and no data, for each run in ``column.runs`` and seed in ``column.seeds``,
and writes:

- ``metrics/paper.json``: each model's scores, and per run the mean and std over its seeds
  of each headline figure (``over_seeds``, as the evaluate stage);
- ``results/table.md``: a row per run with the validation figure the configuration is
  judged by, the test figure, and the paper's (docs/paper-facts.md).

So the column is built run by run on whatever machines are at hand: a clone holding some
runs' lock entries and score files trains only the rest (``dvc repro --allow-missing``,
docs/pipeline.md), and ``--stages`` names every run's stage for DVC's queue, which trains
them side by side. The configuration is fixed in conf/ before the runs; nothing here
chooses. The test split enters the test figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cli import command
from pipeline.params import (Paths, TrainSpec, column_output, load_params, read_section, read_splits, run_params,
                             train_spec)
from pixelgan.checkpoint import load_model
from pixelgan.config import ConfigError, EvalConfig, RunSpec
from pixelgan.io import atomic_path, write_json
from pixelgan.report import evaluate_model, over_seeds

# Table 1 (docs/paper-facts.md: 5.27 confirmed, the rest recalled), by labelled images (0: clustering).
PAPER = {0: "5.27 ±1.81", 100: "1.08 ±0.15", 50: "1.16 ±0.17", 20: "12.08 ±5.50"}


def measure(spec: RunSpec) -> tuple[str, str, str]:
    """What a run is judged by: (its name, the validation figure's key, the test figure's key)
    in ``over_seeds``'s summary."""
    if spec.train.semi_supervised:
        return f"test error %, {spec.dataset.labels} labels", "val_error", "test_error"
    return f"clustering error %, {spec.model.prior.categories} categories (paper's rule)", \
        "clustering.val_error_paper_rule", "clustering.error_paper_rule"


def column_runs(params: dict[str, Any]) -> list[tuple[str, int]]:
    """Every model of the column as its run and seed."""
    column = params.get("column") or {}
    if not column.get("runs") or len(column.get("seeds") or []) < 2:
        raise ConfigError("column.runs must name the runs and column.seeds at least two seeds, "
                          "for a mean ± std (+experiment=paper_column)")
    return [(name, seed) for name in column["runs"] for seed in column["seeds"]]


def score_run(plan: Scoring) -> dict[str, Any]:
    """Score the column's model ``plan.output``; write its scores file (its spec beside its
    scores) and its figures; return the file's record."""
    spec = plan.spec
    path = Path(spec.paths.models) / f"{plan.output}.pt"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; `python -m pipeline.train --run` writes it (the stage's first command)")
    model = load_model(path)
    splits = read_splits(spec.paths, spec.dataset)
    scores, _ = evaluate_model(model, splits, plan.config, Path(spec.paths.results) / "figures" / Path(plan.output).name,
                               semi_supervised=spec.train.semi_supervised)
    record = {"spec": spec.run.to_dict(), "scores": scores}
    write_json(spec.paths.scores(plan.output), record)
    return record


def read_scores(paths: Paths, outputs: list[str]) -> tuple[dict[str, RunSpec], dict[str, Any]]:
    """Each model's spec and scores from its scores file, every file checked first: there,
    and of the seed its name says."""
    missing = [str(paths.scores(output)) for output in outputs if not paths.scores(output).is_file()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: missing; the column's score stages write them (dvc repro paper/dvc.yaml)")
    specs, scores = {}, {}
    for output in outputs:
        try:
            record = json.loads(paths.scores(output).read_text())
            specs[output], scores[output] = RunSpec.from_dict(record["spec"]), record["scores"]
        except (ValueError, KeyError, TypeError) as error:  # ConfigError is a ValueError
            raise ConfigError(f"{paths.scores(output)}: not a scores file this code reads ({error})") from error
        if f"-seed{specs[output].train.seed}" != output[output.rindex("-seed"):]:
            raise ConfigError(f"{paths.scores(output)}: holds seed {specs[output].train.seed}, not its name's")
    return specs, scores


def check_rows(summary: dict[str, Any], outputs: list[str]) -> None:
    """Every run of the column a row over all its seeds: ``over_seeds`` leaves out a group
    that is not replicates of one set-up (say, seeds trained with other settings)."""
    rows = {tuple(entry["models"]) for entry in summary.values()}
    runs: dict[str, list[str]] = {}
    for output in outputs:
        runs.setdefault(output.rsplit("-seed", 1)[0], []).append(output)
    if missing := [run for run, members in runs.items() if tuple(members) not in rows]:
        raise ConfigError(f"{', '.join(missing)}: their seeds' scores files are not of one set-up; rerun their train stages")


def table(specs: dict[str, RunSpec], summary: dict[str, Any]) -> str:
    """One row per run: validation and test figures (mean ± std over seeds, in %) beside the paper's."""
    lines = ["| run | measures | validation (chosen by) | test | paper | seeds | epochs |", "|---|---|---|---|---|---|---|"]
    for first, entry in summary.items():
        spec = specs[first]
        what, val_key, test_key = measure(spec)

        def shown(key: str) -> str:
            figure = entry.get(key)
            return "n/a" if figure is None else f"{100 * figure['mean']:.2f} ±{100 * figure['std']:.2f}"

        run = first.removeprefix("runs/").rsplit("-seed", 1)[0]
        labels = spec.dataset.labels if spec.train.semi_supervised else 0
        lines.append(f"| {run} | {what} | {shown(val_key)} | {shown(test_key)} | {PAPER.get(labels, 'n/a')} | "
                     f"{len(entry['models'])} | {spec.train.epochs} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Scoring:
    """``--score``: one model of the column to score, and how."""

    spec: TrainSpec
    config: EvalConfig
    output: str


@dataclass(frozen=True)
class Stages:
    """``--stages``: the column's score stages (each with its train stage upstream)."""

    names: list[str]


@dataclass(frozen=True)
class Column:
    """The column to build: every model's output name, and where the files are."""

    outputs: list[str]
    paths: Paths


def configure(argv: Sequence[str]) -> Scoring | Stages | Column:
    """All the stage reads of its params file, as paper/dvc.yaml lists it."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.table", description=main.__doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--score", metavar="RUN", help="score the column's model of RUN at train.seed")
    which.add_argument("--stages", action="store_true", help="print every run's score stage, for `dvc exp run --queue`")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE")
    args = parser.parse_args(argv)
    params = load_params(args.overrides)
    if args.score:
        spec = train_spec(run_params(params, args.score))
        scoring = read_section(params, EvalConfig, "eval", ["posterior_draws", "seed", "figure_rows", "figure_columns"])
        return Scoring(spec, scoring, column_output(args.score, spec.train.seed))
    if args.stages:
        return Stages([f"score@{name}-{seed}" for name, seed in column_runs(params)])
    outputs = [column_output(name, seed) for name, seed in column_runs(params)]
    return Column(outputs, read_section(params, Paths, "paths", ["metrics", "results"]))


@command("table")
def main(argv: Sequence[str]) -> int:
    """``python -m pipeline.table [--score RUN | --stages] [overrides]``: one model's scores,
    the column's stages, or the column."""
    plan = configure(argv)
    if isinstance(plan, Stages):
        print("\n".join(plan.names))
        return 0
    if isinstance(plan, Scoring):
        record = score_run(plan)
        print(f"table: {plan.output}: {json.dumps(record['scores'])}")
        return 0
    specs, metrics = read_scores(plan.paths, plan.outputs)
    metrics["over_seeds"] = summary = over_seeds(specs, metrics)
    check_rows(summary, plan.outputs)
    write_json(Path(plan.paths.metrics) / "paper.json", metrics)
    text = "# Table 1's MNIST column from paper/dvc.yaml\n\n" + table(specs, summary)
    with atomic_path(Path(plan.paths.results) / "table.md") as tmp:
        Path(tmp).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
