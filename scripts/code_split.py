"""How the nats a categories-plus-style code carries split between its two parts.

``python scripts/code_split.py data/mnist runs/paper/clustering-30-style-seed*`` prints, for each
run with a ``categorical_gaussian`` prior, the test NLL given each image's own code, and given
its own code with one part swapped for the next image's: the rise when the categories are
swapped is what the decoder reads from them, and likewise for the style. The same pairing as
``nll_other_code`` in metrics.json (pixelgan/engine.py), one part at a time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pixelgan.checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from pixelgan.data import ImageDataset
from pixelgan.data.parquet import read_prepared
from pixelgan.decoder import negative_log_likelihood


@torch.no_grad()
def code_split(run: Path, data: Path) -> dict[str, float]:
    """Test NLL (nats per image): own code, other categories, other style, other code."""
    model = model_from_checkpoint(load_checkpoint(find_checkpoint(run))).eval()
    categories = model.config.prior.categories
    if model.config.prior.kind != "categorical_gaussian":
        raise SystemExit(f"error: {run} has prior {model.config.prior.kind!r}; this splits a categorical_gaussian code")
    test = read_prepared(data).test
    likelihood = model.config.decoder.likelihood
    totals = dict.fromkeys(("own code", "other categories", "other style", "other code"), 0.0)
    for batch in DataLoader(ImageDataset(torch.from_numpy(test.images), torch.from_numpy(test.labels), likelihood=likelihood), batch_size=500):
        code = model.encoder(batch.images).code
        other = code.roll(1, dims=0)
        swapped = {
            "own code": code,
            "other categories": torch.cat([other[:, :categories], code[:, categories:]], dim=1),
            "other style": torch.cat([code[:, :categories], other[:, categories:]], dim=1),
            "other code": other,
        }
        for name, z in swapped.items():
            totals[name] += float(negative_log_likelihood(model.decoder(batch.images, z), batch.images).sum())
    return {name: total / len(test) for name, total in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a prepared folder with a test split (data/mnist)")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding checkpoint.pt, or models/*.pt files")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # the encoder's noise
    print("| run | own code | other categories | other style | other code |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        try:
            nll = code_split(run, args.data)
        except FileNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
        print(f"| {run.name} | " + " | ".join(f"{value:.2f}" for value in nll.values()) + " |")


if __name__ == "__main__":
    main()
