"""Whether a semi-supervised run's categories are bad clusters or good clusters under the wrong labels.

``python scripts/label_alignment.py data/mnist runs/paper/semi-20-seed*`` prints, for each
run trained semi-supervised on N labels (``train.semi_supervised=true dataset.labels=N``): the head's test error (the paper's score, argmax of q(y|x));
the test error its categories would have if each took the commonest label among the
validation images it holds (10,000 labels: what the clusters could give, not a score of the
method); how many categories the head names otherwise than that; and how many of the N
labelled training rows the head gets right; and the head's commonest test errors (true digit
→ the digit it said, with counts). Many renamed categories with the labelled rows all right is
the head memorising its few labels while the clusters form under other names
(``pixelgan.evaluation.label_alignment``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixelgan.checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from pixelgan.config import DatasetConfig, from_dict
from pixelgan.data.parquet import read_prepared
from pixelgan.data.splits import labelled_rows
from pixelgan.evaluation import label_alignment


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
            state = load_checkpoint(find_checkpoint(run))
            splits = read_prepared(args.data)
        except FileNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
        spec = (state.get("run") or {}).get("spec")
        if not spec or not spec["train"]["semi_supervised"]:
            raise SystemExit(f"error: {run} was not trained semi-supervised; its categories have no names to check")
        rows = labelled_rows(splits.train.labels, from_dict(DatasetConfig, spec["dataset"]), spec["train"]["seed"])
        found = label_alignment(model_from_checkpoint(state), splits.train, rows, splits.validation, splits.test)
        cells = [f"{found['head error %']:.2f}", f"{found['majority-label error %']:.2f}",
                 f"{found['categories renamed']} of {found['categories']}", f"{found['labelled rows right']} of {found['labelled rows']}",
                 ", ".join(f"{true}→{said} {count}" for true, said, count in found["commonest errors"])]
        print(f"| {run.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
