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

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from pipeline.classifier import load_classifier
from pixelgan.checkpoint import load_checkpoint, model_from_checkpoint
from pixelgan.classifier import Classifier, sample_quality
from pixelgan.clusters import clustering_report
from pixelgan.config import ConfigError, EvalConfig, run_identity
from pixelgan.data import data_form
from pixelgan.data.formats import DataFormatError
from pixelgan.data.splits import Split
from pixelgan.evaluation import score_model
from pixelgan.figures import model_figures, save_grid
from pixelgan.io import atomic_path, write_json
from pixelgan.model import PixelGAN
from pipeline.params import TrainSpec, eval_config, load_params, read_splits, run_params, train_spec
from pixelgan.data.parquet import Splits
from pixelgan.sampling import sample

FIGURE_2 = ("gaussian", "pixelcnn", "aae")  # the runs that make the paper's Figure 2 comparison


def kmeans_baseline(splits: Splits, clusters: int, config: EvalConfig) -> dict[str, float]:
    """k-means on raw pixels with as many clusters, scored by the same rules (score: -distance)."""
    from sklearn.cluster import KMeans

    def pixels(split: Split) -> np.ndarray:
        return split.images.reshape(len(split), -1).astype(np.float32) / 255.0

    kmeans = KMeans(clusters, n_init=config.kmeans_restarts, random_state=config.seed).fit(pixels(splits.train))
    scores, test_scores = (torch.from_numpy(-kmeans.transform(pixels(s))) for s in (splits.validation, splits.test))
    labels, test_labels = (torch.from_numpy(s.labels) for s in (splits.validation, splits.test))
    return clustering_report(scores, labels, test_scores, test_labels)


def score_with_samples(model: PixelGAN, splits: Splits, classifier: Classifier, config: EvalConfig, semi_supervised: bool) -> dict[str, Any]:
    """The library's scores of one model and the quality of its samples from the prior."""
    scores = score_model(model, splits.validation, splits.test, draws=config.posterior_draws,
                         semi_supervised=semi_supervised, seed=config.seed)
    scores["samples"] = prior_sample_quality(model, classifier, splits.test, config)
    return scores


def prior_sample_quality(model: PixelGAN, classifier: Classifier, test: Split, config: EvalConfig) -> dict[str, float]:
    """``eval.samples`` draws from the prior scored by the classifier against the test images,
    with the category purity of each category's draws for a categorical prior."""
    categories = model.config.prior.categories
    generator = torch.Generator().manual_seed(config.seed)
    z = model.prior.sample(config.samples, generator)
    samples = sample(model.decoder, z, generator)
    test_images = data_form(torch.from_numpy(test.images), model.config.decoder.likelihood)
    return sample_quality(classifier, samples, test_images, z[:, :categories].argmax(1) if categories else None)


def figure_2(panels: list[torch.Tensor], per_row: int, path: Path) -> None:
    """Grids side by side (PixelGAN's global/local | plain PixelCNN | AAE), as in the paper."""
    grids = [make_grid(images.cpu(), nrow=per_row, padding=1, pad_value=0.5) for images in panels]
    height = min(grid.shape[1] for grid in grids)
    with atomic_path(path) as tmp:
        save_image(make_grid([grid[:, :height] for grid in grids], nrow=len(grids), padding=6, pad_value=1.0), tmp, format="png")


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


HEADLINE = (("clustering", "val_error_paper_rule"), ("clustering", "error_paper_rule"), ("clustering", "error_majority"),
            ("val_error",), ("test_error",), ("nll_nats",))


def over_seeds(specs: dict[str, TrainSpec], metrics: dict[str, Any]) -> dict[str, Any]:
    """Mean and std of the headline numbers over models that differ only in train.seed (by
    ``run_identity``) and trained as many epochs, keyed by the first of them (the paper
    profile's runs train such replicates)."""
    groups: dict[str, list[str]] = {}
    for name, spec in specs.items():
        identity = run_identity(spec.run)
        del identity["train"]["seed"]
        key = json.dumps(dict(identity, epochs=spec.train.epochs), sort_keys=True)
        groups.setdefault(key, []).append(name)
    summary: dict[str, Any] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        entry: dict[str, Any] = {"models": members}
        for path in HEADLINE:
            values = [_get(metrics[m], path) for m in members]
            if all(v is not None for v in values):
                entry[".".join(path)] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}
        summary[members[0]] = entry
    return summary


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return float(tree)  # type: ignore[arg-type]


def configure(argv: Sequence[str]) -> tuple[EvalConfig, dict[str, TrainSpec]]:
    """All the stage reads of params.yaml, as dvc.yaml lists it: the eval settings, and the spec
    of every model it scores by name (train, then each of runs)."""
    params = load_params(argv)
    runs = {name: train_spec(run_params(params, name)) for name in params.get("runs") or {}}
    return eval_config(params), {"train": train_spec(params)} | runs


def main(argv: list[str] | None = None) -> int:
    try:
        config, specs = configure(sys.argv[1:] if argv is None else argv)
        spec, names = specs["train"], [name for name in specs if name != "train"]
        paths = spec.paths
        models = {"train": Path(paths.models) / "train.pt"} | {n: Path(paths.models) / "runs" / f"{n}.pt" for n in names}
        missing = [str(p) for p in [*models.values(), Path(paths.models) / "classifier.pt"] if not p.is_file()]
        if missing:
            raise ConfigError(f"{', '.join(missing)}: missing; the train, runs and classifier stages write them (dvc repro)")
        likelihood = spec.model.decoder.likelihood
        splits = read_splits(paths, spec.dataset)
    except (ConfigError, DataFormatError) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    out = Path(paths.results) / "eval"
    classifier, _ = load_classifier(Path(paths.models) / "classifier.pt")
    metrics: dict[str, Any] = {"classifier_test_accuracy": json.loads((Path(paths.metrics) / "classifier.json").read_text())["test_accuracy"]}
    figures: dict[str, dict[str, torch.Tensor]] = {}
    validation_images = data_form(torch.from_numpy(splits.validation.images), likelihood)
    for name, path in models.items():
        model = model_from_checkpoint(load_checkpoint(path)).eval()
        metrics[name] = scores = score_with_samples(model, splits, classifier, config, specs[name].train.semi_supervised)
        figures[name] = model_figures(model, validation_images, config.figure_rows, config.figure_columns, config.seed)
        for figure, images in figures[name].items():
            save_grid(images, out / f"{name}_{figure}.png", config.figure_columns)
        print(f"evaluate: {name}: {json.dumps(scores)}", flush=True)
    clusters = spec.model.prior.categories
    if clusters:
        metrics["kmeans_pixels"] = kmeans_baseline(splits, clusters, config)
    if all(name in names for name in FIGURE_2):
        gaussian, pixelcnn, aae = FIGURE_2
        panels = [figures[gaussian]["global_local"], figures[pixelcnn]["samples"], figures[aae]["samples"]]
        figure_2(panels, config.figure_columns, out / "figure2.png")
    if (Path(paths.results) / "sweep.parquet").is_file():
        sweep_table(Path(paths.results), Path(paths.results))
    if seeds := over_seeds(specs, metrics):
        metrics["over_seeds"] = seeds
    metrics["wall_time_s"] = time.perf_counter() - started
    write_json(Path(paths.metrics) / "eval.json", metrics)
    print(f"evaluate: wrote {paths.metrics}/eval.json and {out}/ in {metrics['wall_time_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
