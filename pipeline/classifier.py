"""DVC stage `classifier`: the small CNN that the evaluate stage scores samples with.

    python -m pipeline.classifier

Trained once on the training split, in the decoder's data form (binarised afresh every epoch
for a Bernoulli decoder), and cached by DVC as its own output, so that re-evaluating a model
does not retrain it. Writes models/classifier.pt and metrics/classifier.json (its test
accuracy, which the evaluate stage reports beside the scores it gives).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.cli import command
from pipeline.params import Paths, load_params, read_section
from pixelgan.classifier import Classifier, predict, save_classifier, train_classifier
from pixelgan.config import DatasetConfig, DecoderConfig, EvalConfig
from pixelgan.data import data_form
from pixelgan.data.parquet import read_split
from pixelgan.io import write_json


def configure(argv: Sequence[str]) -> tuple[DatasetConfig, EvalConfig, Paths, str]:
    """All the stage reads of params.yaml, as dvc.yaml lists it: the data set's name, the two
    eval keys that train the classifier, the decoder's likelihood (the data form it learns)
    and the paths it reads and writes."""
    params = load_params(argv)
    return (read_section(params, DatasetConfig, "dataset", ["name"]),
            read_section(params, EvalConfig, "eval", ["classifier_epochs", "seed"]),
            read_section(params, Paths, "paths", ["data", "models", "metrics"]),
            read_section(params, DecoderConfig, "model.decoder", ["likelihood"]).likelihood)


@command("classifier")
def main(argv: Sequence[str]) -> int:
    dataset, config, paths, likelihood = configure(argv)
    train, _ = read_split(paths.split(dataset.name, "train"))
    test, _ = read_split(paths.split(dataset.name, "test"))
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    images = torch.from_numpy(train.images)
    classifier = Classifier(*images.shape[1:], classes=dataset.classes)
    losses = []
    for epoch in range(config.classifier_epochs):  # a fresh binarisation every epoch
        x = data_form(images, likelihood, "stochastic")
        losses += train_classifier(classifier, x, torch.from_numpy(train.labels), epochs=1, seed=config.seed + epoch)
    probs, _ = predict(classifier, data_form(torch.from_numpy(test.images), likelihood))
    accuracy = float((probs.argmax(1) == torch.from_numpy(test.labels)).double().mean())
    save_classifier(Path(paths.models) / "classifier.pt", classifier, {"shape": list(images.shape[1:]), "classes": dataset.classes,
                                                                        "likelihood": likelihood, "dataset": dataset.name})
    metrics = {"test_accuracy": accuracy, "epochs": config.classifier_epochs, "final_loss": losses[-1],
               "wall_time_s": time.perf_counter() - started}
    write_json(Path(paths.metrics) / "classifier.json", metrics)
    print(f"classifier: test accuracy {accuracy:.4f} after {config.classifier_epochs} epochs "
          f"({metrics['wall_time_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
