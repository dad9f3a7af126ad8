"""Whether a semi-supervised run's categories are bad clusters or good clusters under the wrong labels.

``python scripts/label_alignment.py data/mnist runs/paper/semi-20-seed*`` prints, for each
run trained semi-supervised on N labels (``train.semi_supervised=true dataset.labels=N``): the head's test error (the paper's score, argmax of q(y|x));
the test error its categories would have if each took the commonest label among the
validation images it holds (10,000 labels: what the clusters could give, not a score of the
method); how many categories the head names otherwise than that; and how many of the N
labelled training rows the head gets right; and the head's commonest test errors (true digit
→ the digit it said, with counts). Many renamed categories with the labelled rows all right is
the head memorising its few labels while the clusters form under other names.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from pixelgan.checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from pixelgan.clusters import classification_error, clustering_error, labels_by_majority
from pixelgan.config import DatasetConfig, from_dict
from pixelgan.data import data_form
from pixelgan.data.parquet import read_prepared
from pixelgan.data.splits import labelled_rows
from pixelgan.evaluation import posterior_categories

CLASSES = 10


@torch.no_grad()
def label_alignment(run: Path, data: Path, draws: int = 8, seed: int = 0) -> dict[str, object]:
    """The head's test error, its categories' majority-label test error, the categories
    renamed by the majority labels, the labelled training rows the head gets right, and the
    head's three commonest test errors as (true, said, count). The encoder's noise is drawn
    from ``seed`` afresh for each run, so a run's figures do not depend on the runs before it."""
    state = load_checkpoint(find_checkpoint(run))
    spec = (state.get("run") or {}).get("spec")
    if not spec or not spec["train"]["semi_supervised"]:
        raise SystemExit(f"error: {run} was not trained semi-supervised; its categories have no names to check")
    model = model_from_checkpoint(state).eval()
    torch.manual_seed(seed)  # the encoder's noise
    splits = read_prepared(data)
    likelihood = model.config.decoder.likelihood
    (val_images, val_labels), (test_images, test_labels), (train_images, train_labels) = (
        (torch.from_numpy(split.images), torch.from_numpy(split.labels)) for split in (splits.validation, splits.test, splits.train))
    q_val, q_test = (posterior_categories(model, data_form(images, likelihood), draws) for images in (val_images, test_images))
    majority = labels_by_majority(q_val, val_labels)
    rows = labelled_rows(splits.train.labels, from_dict(DatasetConfig, spec["dataset"]), spec["train"]["seed"])
    head_on_labelled = model.encoder(data_form(train_images[rows], likelihood)).logits.argmax(dim=1)
    said, true = q_test.argmax(dim=1), test_labels
    wrong = said != true
    confusions = Counter(zip(true[wrong].tolist(), said[wrong].tolist())).most_common(3)
    return {
        "head error %": 100 * classification_error(q_test, test_labels),
        "majority-label error %": 100 * clustering_error(q_test, test_labels, majority),
        "categories renamed": int((majority != torch.arange(CLASSES)).sum()),
        "labelled rows right": int((head_on_labelled == train_labels[rows]).sum()),
        "labelled rows": len(rows),
        "commonest errors": [(true_digit, said_digit, count) for (true_digit, said_digit), count in confusions],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the prepared folder the runs were trained on (data/mnist)")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding checkpoint.pt, or models/*.pt files")
    args = parser.parse_args(argv)
    columns = ["head error %", "majority-label error %", "categories renamed", "labelled rows right", "commonest errors"]
    print("| run | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for run in args.runs:
        try:
            found = label_alignment(run, args.data)
        except FileNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
        cells = [f"{found['head error %']:.2f}", f"{found['majority-label error %']:.2f}",
                 f"{found['categories renamed']} of {CLASSES}", f"{found['labelled rows right']} of {found['labelled rows']}",
                 ", ".join(f"{true}→{said} {count}" for true, said, count in found["commonest errors"])]
        print(f"| {run.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
