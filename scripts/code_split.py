"""How the nats a categories-plus-style code carries split between its two parts.

``python scripts/code_split.py data/mnist runs/paper/clustering-30-style-seed*`` prints, for each
run with a ``categorical_gaussian`` prior, the test NLL given each image's own code, and given
its own code with one part swapped for the next image's: the rise when the categories are
swapped is what the decoder reads from them, and likewise for the style. The same pairing as
``nll_other_code`` in metrics.json (pixelgan/engine.py), one part at a time
(``pixelgan.evaluation.code_split_nll``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


from pixelgan.checkpoint import find_checkpoint, load_model
from pixelgan.data.parquet import read_prepared
from pixelgan.evaluation import code_split_nll


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a prepared folder with a test split (data/mnist)")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding checkpoint.pt, or models/*.pt files")
    args = parser.parse_args(argv)
    print("| run | own code | other categories | other style | other code |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        try:
            model = load_model(find_checkpoint(run))
            test = read_prepared(args.data).test
        except FileNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
        if model.config.prior.kind != "categorical_gaussian":
            raise SystemExit(f"error: {run} has prior {model.config.prior.kind!r}; this splits a categorical_gaussian code")
        nll = code_split_nll(model, test)
        print(f"| {run.name} | " + " | ".join(f"{value:.2f}" for value in nll.values()) + " |")


if __name__ == "__main__":
    main()
