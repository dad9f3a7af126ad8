"""The evaluate stage's sample scores, category purity among them, for runs of ``python -m pixelgan``.

``python scripts/sample_quality.py models/classifier.pt data/mnist runs/clustering-seed*`` draws
``eval.samples`` codes (params.yaml) from each run's prior, decodes them and prints, per run, the share of
each category's samples that the classifier gives that category's commonest label (averaged
over categories: 1 when every row of the Figure 4 grid holds one digit), beside the other
scores of ``pixelgan.classifier.sample_quality``. The classifier comes from the classifier
stage run on the same data set (``python -m pipeline.classifier dataset=mnist``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.params import eval_config, load_params
from pixelgan.checkpoint import find_checkpoint, load_model
from pixelgan.classifier import load_classifier
from pixelgan.config import ConfigError
from pixelgan.data.parquet import read_prepared
from pixelgan.report import prior_sample_quality

COLUMNS = ("category_purity", "confidence", "label_entropy", "classifier_score", "frechet_distance")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("classifier", type=Path, help="the classifier stage's classifier.pt, trained on the runs' data set")
    parser.add_argument("data", type=Path, help="a prepared folder with a test split (data/mnist)")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding checkpoint.pt, or models/*.pt files")
    args = parser.parse_args(argv)
    classifier, record = load_classifier(args.classifier)
    test = read_prepared(args.data).test
    try:
        models = {run: load_model(find_checkpoint(run)) for run in args.runs}
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    for run, model in models.items():  # every run checked before the first row
        image = model.config.image
        form = (model.config.decoder.likelihood, [image.channels, image.height, image.width])
        if form != (record["likelihood"], list(record["shape"])):
            raise SystemExit(f"error: {run} decodes {form[0]!r} images of shape {form[1]}, the classifier "
                             f"{args.classifier} was trained on {record['likelihood']!r} ones of shape {record['shape']}")
        try:
            model.config.check_images(test.images.shape, str(args.data))
        except ConfigError as error:
            raise SystemExit(f"error: {run}: {error}") from None
    config = eval_config(load_params())  # eval.samples and eval.seed, as the evaluate stage reads them
    print(f"| run | {' | '.join(COLUMNS)} |")
    print("|---|" + "---|" * len(COLUMNS))
    for run, model in models.items():
        with torch.no_grad():
            scores = prior_sample_quality(model, classifier, test, config)
        print(f"| {run.name} | " + " | ".join(f"{scores[c]:.3f}" if c in scores else "" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
