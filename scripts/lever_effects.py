"""Which lever of a search moved what: ``python scripts/lever_effects.py search/results [--epoch N]``.

Reads a sweep's ``sweep.csv`` (a row per trial: its point) and ``sweep_epochs.csv`` (a row per
trial and epoch) and prints, for every parameter the search drew and each of its values, the
trials that took it and their mean validation figures at ``--epoch`` (by default the last
epoch every trial reached: the first rung of the search's ASHA), so that each lever is
judged on all the trials, not only on those that survived. Every figure is the validation split's;
a random search draws the levers independently, so each mean is over the other levers'
values alike. Prints Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.csv

FIGURES = ("val_error_paper_rule", "val_nmi_label", "val_nmi_ink", "val_ink_explained", "val_batch_marginal_entropy",
           "val_top_probability", "val_train_eval_agreement")


def lever_effects(results: Path, epoch: int | None = None) -> list[dict[str, object]]:
    """A row per (lever, value): its trials and their mean figures at ``epoch`` (None: the
    last epoch every trial reached)."""
    trials = pyarrow.csv.read_csv(results / "sweep.csv").to_pylist()
    epochs = pyarrow.csv.read_csv(results / "sweep_epochs.csv").to_pylist()
    if epoch is None:
        epoch = min(max(row["epoch"] for row in epochs if row["trial"] == trial["trial"]) for trial in trials)
    at_epoch = {row["trial"]: row for row in epochs if row["epoch"] == epoch}
    levers = [name for name in trials[0] if "." in name]
    rows = []
    for lever in levers:
        for value in sorted({trial[lever] for trial in trials}, key=str):
            reached = [at_epoch[t["trial"]] for t in trials if t[lever] == value and t["trial"] in at_epoch]
            means = {name: sum(r[name] for r in reached) / len(reached) if reached else None for name in FIGURES}
            rows.append({"lever": lever, "value": value, "trials": len(reached), **means})
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    header = ["lever", "value", "trials", *FIGURES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{row[name]:.3f}" if name in FIGURES and isinstance(row[name], float) else str(row[name])
                 for name in header]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the sweep's results folder (sweep.csv, sweep_epochs.csv)")
    parser.add_argument("--epoch", type=int, help="the epoch to compare at (default: the last one every trial reached)")
    args = parser.parse_args()
    print(markdown(lever_effects(args.results, args.epoch)))


if __name__ == "__main__":
    main()
