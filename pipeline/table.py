"""DVC stage `table` of paper/dvc.yaml: Table 1's MNIST column from the pipeline's own runs.

    uv run dvc repro paper/dvc.yaml            # every stage; this one runs in paper/
    cd paper && python -m pipeline.table       # this stage alone, as DVC runs it

Scores every model that the column's train stages wrote (``models/runs/<run>-seed<seed>.pt``
for each run in ``column.runs`` and seed in ``column.seeds``) with the library's
``score_model`` and writes:

- ``metrics/paper.json`` (``dvc metrics show``): each model's scores, and per run the mean
  and std over its seeds of each headline figure (``over_seeds``, as the evaluate stage);
- ``results/table.md``: a row per run with the validation figure the configuration is
  judged by, the test figure, and the paper's (docs/paper-facts.md);
- ``results/figures/<run>-seed<seed>_<figure>.png``: each model's figures.

The configuration is fixed in conf/ before the runs; this stage chooses nothing. The test
split enters the test figures only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.cli import command
from pipeline.params import TrainSpec, column_output, eval_config, load_params, read_splits, run_params, train_spec, with_overrides
from pixelgan.checkpoint import load_model
from pixelgan.config import ConfigError, EvalConfig
from pixelgan.io import atomic_path, write_json
from pixelgan.report import evaluate_model, over_seeds

# Table 1 (docs/paper-facts.md: 5.27 confirmed, the rest recalled), by labelled images (0: clustering).
PAPER = {0: "5.27 ±1.81", 100: "1.08 ±0.15", 50: "1.16 ±0.17", 20: "12.08 ±5.50"}


def measure(spec: TrainSpec) -> tuple[str, str, str]:
    """What a run is judged by: (its name, the validation figure's key, the test figure's key)
    in ``over_seeds``'s summary."""
    if spec.train.semi_supervised:
        return f"test error %, {spec.dataset.labels} labels", "val_error", "test_error"
    return f"clustering error %, {spec.model.prior.categories} categories (paper's rule)", \
        "clustering.val_error_paper_rule", "clustering.error_paper_rule"


def column_specs(params: dict[str, Any]) -> dict[str, TrainSpec]:
    """Every model of the column by its output name (runs/<run>-seed<seed>)."""
    column = params.get("column") or {}
    if not column.get("runs") or len(column.get("seeds") or []) < 2:
        raise ConfigError("column.runs must name the runs and column.seeds at least two seeds, "
                          "for a mean ± std (+experiment=paper_column)")
    specs = {}
    for name in column["runs"]:
        for seed in column["seeds"]:
            spec = train_spec(run_params(with_overrides(params, {"train.seed": seed}), name))
            specs[column_output(name, spec)] = spec
    if len({(spec.paths.data, spec.dataset.name) for spec in specs.values()}) > 1:
        raise ConfigError("column.runs: every run of the column trains on one data set (a run may change dataset.labels only)")
    return specs


def table(specs: dict[str, TrainSpec], summary: dict[str, Any]) -> str:
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


def configure(argv: Sequence[str]) -> tuple[EvalConfig, dict[str, TrainSpec]]:
    """All the stage reads of params.yaml, as paper/dvc.yaml lists it."""
    params = load_params(argv)
    return eval_config(params), column_specs(params)


@command("table")
def main(argv: Sequence[str]) -> int:
    config, specs = configure(argv)
    paths = next(iter(specs.values())).paths
    models = {name: Path(paths.models) / f"{name}.pt" for name in specs}
    if missing := [str(path) for path in models.values() if not path.is_file()]:
        raise ConfigError(f"{', '.join(missing)}: missing; the column's train stages write them (dvc repro paper/dvc.yaml)")
    splits = read_splits(paths, next(iter(specs.values())).dataset)
    out = Path(paths.results)
    metrics: dict[str, Any] = {}
    for name, model in {name: load_model(path) for name, path in models.items()}.items():  # every file checked first
        metrics[name], _ = evaluate_model(model, splits, config, out / "figures", prefix=f"{name.removeprefix('runs/')}_",
                                          semi_supervised=specs[name].train.semi_supervised)
        print(f"table: {name}: {metrics[name]}", flush=True)
    metrics["over_seeds"] = summary = over_seeds({name: spec.run for name, spec in specs.items()}, metrics)
    write_json(Path(paths.metrics) / "paper.json", metrics)
    text = "# Table 1's MNIST column from paper/dvc.yaml\n\n" + table(specs, summary)
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
