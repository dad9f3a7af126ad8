"""DVC stage `evaluate`: the paper's scores and figures from the trained models.

    python -m pipeline.evaluate

Reads the train stage's model (models/train.pt), the runs stage's (models/runs/<name>.pt),
the classifier stage's CNN and the sweep's table, and writes:

- metrics/eval.json (`dvc metrics show`): for a model with categories, the clustering error
  by the paper's rule and by majority vote, and for a semi-supervised one the test error of
  its categorical head, each beside its validation figure (``val_*``), the one to choose by,
  and what its categories split by on the validation split (``diagnostics``:
  ``pixelgan.clusters.category_diagnostics``); k-means on pixels scored by the same rules
  (the baseline); for every
  model the test NLL (nats per image for binarised data, bits per dimension for 8-bit) with
  the NLL given another image's code, and the sample-quality scores of ``eval.samples``
  draws from the prior, beside the classifier's own test accuracy;
- results/eval/*.png (`dvc plots show`): samples of every model, one row per category for a
  categorical prior (Figure 4) with reconstructions, the global/local grid of a Gaussian
  prior, and the Figure 2 comparison (PixelGAN | plain PixelCNN | AAE) when the runs hold
  those three models;
- results/sweep.md, the sweep's metrics as a table (beside, not among, the plots: DVC plots
  only images and data files).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.cli import command
from pipeline.params import TrainSpec, eval_config, load_params, read_splits, run_params, train_spec
from pixelgan.checkpoint import load_model
from pixelgan.classifier import load_classifier
from pixelgan.clusters import kmeans_baseline
from pixelgan.config import ConfigError, EvalConfig
from pixelgan.figures import figure_2
from pixelgan.io import atomic_path, write_json
from pixelgan.report import evaluate_model, over_seeds

FIGURE_2 = ("gaussian", "pixelcnn", "aae")  # the runs that make the paper's Figure 2 comparison


def sweep_table(results: Path, out: Path) -> None:
    """The sweep's table (prior x latent size) as Markdown, for docs/results.md and the note."""
    import pyarrow.parquet as pq

    rows = pq.read_table(results / "sweep.parquet").to_pylist()
    columns = [c for c in ("prior", "dim", "epochs", "nll", "val_nll", "val_nll_other_code", "wall_time_s") if rows and c in rows[0]]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(rows, key=lambda r: (r["prior"], r["dim"])):
        lines.append("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")
    with atomic_path(out / "sweep.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def configure(argv: Sequence[str]) -> tuple[EvalConfig, dict[str, TrainSpec]]:
    """All the stage reads of params.yaml, as dvc.yaml lists it: the eval settings, and the spec
    of every model it scores by name (train, then each of runs)."""
    params = load_params(argv)
    runs = {name: train_spec(run_params(params, name)) for name in params.get("runs") or {}}
    return eval_config(params), {"train": train_spec(params)} | runs


@command("evaluate")
def main(argv: Sequence[str]) -> int:
    config, specs = configure(argv)
    spec, names = specs["train"], [name for name in specs if name != "train"]
    paths = spec.paths
    models = {"train": Path(paths.models) / "train.pt"} | {n: Path(paths.models) / "runs" / f"{n}.pt" for n in names}
    missing = [str(p) for p in [*models.values(), Path(paths.models) / "classifier.pt"] if not p.is_file()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: missing; the train, runs and classifier stages write them (dvc repro)")
    splits = read_splits(paths, spec.dataset)
    started = time.perf_counter()
    out = Path(paths.results) / "eval"
    classifier, _ = load_classifier(Path(paths.models) / "classifier.pt")
    metrics: dict[str, Any] = {"classifier_test_accuracy": json.loads((Path(paths.metrics) / "classifier.json").read_text())["test_accuracy"]}
    figures: dict[str, dict[str, torch.Tensor]] = {}
    for name, model in {name: load_model(path) for name, path in models.items()}.items():  # every file checked first
        metrics[name], figures[name] = evaluate_model(model, splits, config, out, prefix=f"{name}_", classifier=classifier,
                                                      semi_supervised=specs[name].train.semi_supervised)
        print(f"evaluate: {name}: {json.dumps(metrics[name])}", flush=True)
    clusters = spec.model.prior.categories
    if clusters:
        metrics["kmeans_pixels"] = kmeans_baseline(splits, clusters, config.kmeans_restarts, config.seed)
    if all(name in names for name in FIGURE_2):
        gaussian, pixelcnn, aae = FIGURE_2
        panels = [figures[gaussian]["global_local"], figures[pixelcnn]["samples"], figures[aae]["samples"]]
        figure_2(panels, config.figure_columns, out / "figure2.png")
    if (Path(paths.results) / "sweep.parquet").is_file():
        sweep_table(Path(paths.results), Path(paths.results))
    if seeds := over_seeds({name: spec.run for name, spec in specs.items()}, metrics):
        metrics["over_seeds"] = seeds
    metrics["wall_time_s"] = time.perf_counter() - started
    write_json(Path(paths.metrics) / "eval.json", metrics)
    print(f"evaluate: wrote {paths.metrics}/eval.json and {out}/ in {metrics['wall_time_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
