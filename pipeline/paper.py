"""The paper's MNIST column beside ours: ``python -m pipeline.paper runs/paper``.

Reads every ``<runs>/<name>/metrics.json`` that ``python -m pixelgan --data data/mnist ...``
wrote (on this machine or a GPU one), and writes ``results/paper/table.md`` and
``table.csv`` (a row per run: device, data, profile, seed, epochs, training time, its metric
beside the paper's) and a summary over seeds, with each run's figure copied beside them.
The committed ``table.csv`` is the record: its rows for runs whose folders are not in
``<runs>`` (made in another session or on a GPU machine) are kept, and a folder replaces
the row of the same name.
The paper's figures are those of docs/paper-facts.md: Table 1's PixelGAN row (5.27 is
confirmed, the rest recalled) and the PixelCNN NLL of van den Oord et al. (confirmed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from pixelgan.config import EncoderConfig
from pixelgan.io import atomic_path

# (prior, categories or dims, labels, conditioning) -> (what is measured, the paper's figure)
PAPER = {
    ("categorical", 30, 0): ("clustering error %, 30 categories", "5.27 ±1.81"),
    ("categorical_gaussian", 30, 0): ("clustering error %, 30 categories", "5.27 ±1.81"),  # + a style code (AAE)
    ("categorical", 10, 100): ("test error %, 100 labels", "1.08 ±0.15"),
    ("categorical_gaussian", 10, 100): ("test error %, 100 labels", "1.08 ±0.15"),
    ("categorical", 10, 50): ("test error %, 50 labels", "1.16 ±0.17"),
    ("categorical_gaussian", 10, 50): ("test error %, 50 labels", "1.16 ±0.17"),
    ("categorical", 10, 20): ("test error %, 20 labels", "12.08 ±5.50"),
    ("categorical_gaussian", 10, 20): ("test error %, 20 labels", "12.08 ±5.50"),
}
DEFAULT_ENCODER = EncoderConfig()  # a run that does not name its code had these
PIXELCNN_NLL = "81.30 (PixelCNN, van den Oord et al.)"
COLUMNS = ["run", "measures", "ours", "paper", "test NLL (nats)", "device", "data", "profile", "prior", "seed", "epochs", "train time (min)"]


def metric(run: dict[str, Any]) -> tuple[str, float | None, str]:
    """What a run measures, our figure (percent, or NLL) and the paper's."""
    test = run.get("test", {})
    key = (run["prior"], run["dim"], run["labels"])
    if key in PAPER:
        what, paper = PAPER[key]
        value = test.get("test_error") if run["labels"] else test.get("clustering", {}).get("error_paper_rule")
        return what, None if value is None else 100 * value, paper
    if run.get("conditioning") == "none":
        return "test NLL, plain PixelCNN", test.get("nll_nats"), PIXELCNN_NLL
    if not run.get("autoregressive", True):
        return "test NLL, AAE (decoder reads no pixel)", test.get("nll_nats"), "Figure 2 (no number)"
    return f"test NLL, {run['prior']} {run['dim']}", test.get("nll_nats"), "Figure 2 (no number)"


def prior_text(run: dict[str, Any]) -> str:
    """The prior, its size, the decoder's conditioning, with categories the code's form where
    it is not the default, the profile's model sizes changed with ``--set``, the
    discriminator's gradient penalty, the labelled images' turn and shift and a learning-rate
    schedule where there are any. A run older than one of these settings lacks it in
    metrics.json; it had the default."""
    parts = [f"{run['prior']} {run['dim']}", run.get("conditioning")]
    code = run.get("categorical_code", DEFAULT_ENCODER.categorical_code), run.get("logit_scale", DEFAULT_ENCODER.logit_scale)
    if run["prior"] != "gaussian" and code != (DEFAULT_ENCODER.categorical_code, DEFAULT_ENCODER.logit_scale):
        parts.append(f"{code[0]} code, logit scale {code[1]:g}")
    shown = {"encoder.categorical_code", "encoder.logit_scale"}  # in the code's text above
    parts += [f"{name}={value}" for name, value in run.get("set", {}).items() if name not in shown]
    if run.get("gradient_penalty"):
        parts.append(f"gradient penalty {run['gradient_penalty']:g}")
    moves = [f"turned ±{run['label_rotation']:g}°"] if run.get("label_rotation") else []
    moves += [f"shifted ±{run['label_shift']}"] if run.get("label_shift") else []
    if moves:
        parts.append(f"labelled images {' and '.join(moves)}")
    if run.get("lr_schedule", "constant") != "constant":
        parts.append(f"{run['lr_schedule']} learning rates")
    return ", ".join(part for part in parts if part)


def rows(runs: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(runs.glob("*/metrics.json")):
        run = json.loads(path.read_text())
        what, ours, paper = metric(run)
        found.append({
            "run": path.parent.name, "measures": what, "ours": ours, "paper": paper,
            "test NLL (nats)": run.get("test", {}).get("nll_nats"), "device": run["device"],
            "data": Path(run["data"]).name, "profile": run["profile"],
            "prior": prior_text(run),
            "seed": run["seed"], "epochs": run["epochs"], "train time (min)": run["train_time_s"] / 60,
        })
    return found


def recorded_rows(table_csv: Path, replaced: set[str]) -> list[dict[str, Any]]:
    """The rows of an earlier ``table.csv`` whose runs are not in ``replaced``."""
    if not table_csv.is_file():
        return []
    import pyarrow as pa
    import pyarrow.csv

    types = {"ours": pa.float64(), "test NLL (nats)": pa.float64(), "seed": pa.int64(), "epochs": pa.int64(),
             "train time (min)": pa.float64()}
    types |= {column: pa.string() for column in COLUMNS if column not in types}
    try:
        recorded = pyarrow.csv.read_csv(table_csv, convert_options=pyarrow.csv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as error:
        raise ValueError(f"{table_csv}: not a table this command wrote ({error})") from error
    if recorded.column_names != COLUMNS:
        raise ValueError(f"{table_csv}: columns {recorded.column_names}, expected {COLUMNS}")
    return [row for row in recorded.to_pylist() if row["run"] not in replaced]


def over_seeds(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std of ``ours`` over the seeds of one set-up (measure, prior, profile, data,
    device); runs stopped by a time limit may differ in epochs, shown as their range. A seed
    twice in one set-up is an error: it would be counted twice."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in table:
        groups.setdefault((row["measures"], row["prior"], row["profile"], row["data"], row["device"]), []).append(row)
    summary = []
    for (what, prior, profile, data, device), members in groups.items():
        seeds: dict[int, str] = {}
        for row in members:
            if row["seed"] in seeds:
                raise ValueError(f"runs {seeds[row['seed']]} and {row['run']} are one set-up with the same seed "
                                 f"{row['seed']}: the mean over seeds would count it twice; move one out of the folder "
                                 "(or, for a run kept from table.csv, drop its row)")
            seeds[row["seed"]] = row["run"]
        values = [row["ours"] for row in members if row["ours"] is not None]
        spread = f" ±{statistics.stdev(values):.2f}" if len(values) > 1 else ""
        low, high = min(row["epochs"] for row in members), max(row["epochs"] for row in members)
        summary.append({"measures": what, "ours": f"{statistics.mean(values):.2f}{spread}" if values else "n/a",
                        "seeds": len(values), "paper": members[0]["paper"], "prior": prior, "profile": profile,
                        "data": data, "epochs": str(low) if low == high else f"{low}–{high}", "device": device})
    return sorted(summary, key=lambda row: (row["measures"], row["device"], row["prior"]))


def markdown(table: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else ("n/a" if value is None else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in table]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.paper", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a folder of python -m pixelgan run folders")
    parser.add_argument("--out", type=Path, default=Path("results/paper"))
    args = parser.parse_args(argv)
    found = rows(args.runs)
    if not found:
        print(f"paper: error: {args.runs}: no <run>/metrics.json (python -m pixelgan --out {args.runs}/<name> writes one)", file=sys.stderr)
        return 2
    try:
        recorded = recorded_rows(args.out / "table.csv", {row["run"] for row in found})
        table = sorted(recorded + found, key=lambda row: row["run"])
        summary = over_seeds(table)
    except ValueError as error:
        print(f"paper: error: {args.runs}: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    text = ("# The paper's MNIST column beside ours\n\n## Over seeds\n\n"
            + markdown(summary, ["measures", "ours", "seeds", "paper", "prior", "profile", "data", "epochs", "device"])
            + "\n## Every run\n\n" + markdown(table, COLUMNS))
    with atomic_path(args.out / "table.md") as tmp:
        Path(tmp).write_text(text)
    import pyarrow as pa
    import pyarrow.csv

    with atomic_path(args.out / "table.csv") as tmp:
        pyarrow.csv.write_csv(pa.Table.from_pylist(table), tmp)
    for row in found:
        figure = args.runs / row["run"] / "figure.png"
        if figure.is_file():
            with atomic_path(args.out / f"{row['run']}.png") as tmp:
                shutil.copyfile(figure, tmp)
    print(text)
    print(f"paper: {len(found)} runs from {args.runs}, {len(recorded)} kept from {args.out / 'table.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
