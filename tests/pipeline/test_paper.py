"""The paper-column table: run folders as `python -m pixelgan` writes them, in; Markdown and CSV out."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv
import pytest

from pipeline import paper


def write_run(runs: Path, name: str, **fields: object) -> None:
    run = {"device": "test CPU", "data": "data/mnist", "profile": "cpu", "prior": "categorical", "dim": 30,
           "labels": 0, "conditioning": "location_independent", "autoregressive": True, "seed": 0,
           "epochs": 4, "train_time_s": 600.0, "test": {"nll_nats": 80.0}} | fields
    (runs / name).mkdir(parents=True)
    (runs / name / "metrics.json").write_text(json.dumps(run))


def test_each_run_sits_beside_the_papers_figure_with_a_mean_over_seeds(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "results"
    for seed, error in enumerate([0.20, 0.30]):  # stopped by a time limit after 4 and 5 epochs
        write_run(runs, f"clustering-seed{seed}", seed=seed, epochs=4 + seed, categorical_code="one_hot", logit_scale=3.0,
                  test={"nll_nats": 80.0, "clustering": {"error_paper_rule": error}})
    write_run(runs, "clustering-softmax", categorical_code="softmax", logit_scale=6, test={"nll_nats": 80.0, "clustering": {"error_paper_rule": 0.1}})
    write_run(runs, "clustering-penalty", categorical_code="softmax", logit_scale=6, gradient_penalty=10.0,
              test={"nll_nats": 80.0, "clustering": {"error_paper_rule": 0.4}})
    write_run(runs, "clustering-default-seed0", seed=0, test={"nll_nats": 80.0, "clustering": {"error_paper_rule": 0.02}})  # older: no code fields
    write_run(runs, "clustering-default-seed1", seed=1, categorical_code="softmax", logit_scale=3.0,
              test={"nll_nats": 80.0, "clustering": {"error_paper_rule": 0.04}})
    write_run(runs, "clustering-style", prior="categorical_gaussian", test={"nll_nats": 80.0, "clustering": {"error_paper_rule": 0.15}})
    write_run(runs, "semi-20", prior="categorical_gaussian", dim=10, labels=20, label_shift=2, test={"nll_nats": 81.0, "test_error": 0.5})
    write_run(runs, "semi-20-cosine", prior="categorical_gaussian", dim=10, labels=20, label_shift=2, lr_schedule="cosine",
              test={"nll_nats": 81.0, "test_error": 0.25})
    write_run(runs, "semi-20-turned", prior="categorical_gaussian", dim=10, labels=20, label_shift=2, label_rotation=15.0,
              test={"nll_nats": 81.0, "test_error": 0.2})
    write_run(runs, "semi-20-larger", prior="categorical_gaussian", dim=10, labels=20, label_shift=2,
              set={"encoder.hidden": 1000, "discriminator.hidden": [1000, 1000], "encoder.logit_scale": 3.0},
              test={"nll_nats": 81.0, "test_error": 0.3})
    write_run(runs, "pixelcnn", prior="gaussian", dim=2, conditioning="none", test={"nll_nats": 90.5})
    write_run(runs, "aae", prior="gaussian", dim=2, conditioning="location_dependent", autoregressive=False, test={"nll_nats": 199.0})
    (runs / "semi-20" / "figure.png").write_bytes(b"png")
    assert paper.main([str(runs), "--out", str(out)]) == 0

    rows = {row["run"]: row for row in pyarrow.csv.read_csv(out / "table.csv").to_pylist()}
    assert rows["clustering-seed1"]["ours"] == pytest.approx(30.0) and rows["clustering-seed1"]["paper"] == "5.27 ±1.81"
    assert rows["semi-20"]["ours"] == pytest.approx(50.0) and rows["semi-20"]["paper"] == "12.08 ±5.50"
    assert rows["semi-20"]["prior"] == "categorical_gaussian 10, location_independent, labelled images shifted ±2"
    assert rows["semi-20-cosine"]["prior"].endswith("labelled images shifted ±2, cosine learning rates"), "a summary row of its own"
    assert rows["semi-20-turned"]["prior"].endswith("labelled images turned ±15° and shifted ±2")
    assert rows["semi-20-larger"]["prior"] == ("categorical_gaussian 10, location_independent, encoder.hidden=1000, "
                                               "discriminator.hidden=[1000, 1000], labelled images shifted ±2"), "--set, once"
    assert rows["clustering-style"]["measures"] == "clustering error %, 30 categories", "30 categories + a style code"
    assert rows["clustering-style"]["ours"] == pytest.approx(15.0)
    assert rows["pixelcnn"]["measures"] == "test NLL, plain PixelCNN" and rows["pixelcnn"]["ours"] == pytest.approx(90.5)
    assert rows["aae"]["measures"].startswith("test NLL, AAE")
    text = (out / "table.md").read_text()
    assert "| clustering error %, 30 categories | 25.00 ±7.07 | 2 | 5.27 ±1.81 | categorical 30, location_independent, one_hot code, logit scale 3 | cpu | mnist | 4–5 |" in text
    assert "| clustering error %, 30 categories | 10.00 | 1 | 5.27 ±1.81 | categorical 30, location_independent, softmax code, logit scale 6 |" in text
    assert "| 40.00 | 1 | 5.27 ±1.81 | categorical 30, location_independent, softmax code, logit scale 6, gradient penalty 10 |" in text
    assert "| clustering error %, 30 categories | 3.00 ±1.41 | 2 | 5.27 ±1.81 | categorical 30, location_independent | cpu |" in text
    assert (out / "semi-20.png").read_bytes() == b"png" and not (out / "aae.png").exists()


def test_a_folder_without_runs_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert paper.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path}: no <run>/metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_one_seed_twice_in_a_set_up_is_an_error_naming_both_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    for name, epochs in (("semi-100-seed0", 9), ("semi-100-longer-seed0", 10)):
        write_run(runs, name, prior="categorical_gaussian", dim=10, labels=100, epochs=epochs, test={"test_error": 0.03})
    assert paper.main([str(runs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "runs semi-100-longer-seed0 and semi-100-seed0 are one set-up with the same seed 0" in err
    assert not (tmp_path / "out").exists()


def test_runs_recorded_earlier_are_kept_and_a_folder_replaces_its_own_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    for seed, error in enumerate([0.10, 0.20]):
        write_run(tmp_path / "earlier", f"semi-20-seed{seed}", prior="categorical_gaussian", dim=10, labels=20, seed=seed,
                  test={"nll_nats": 81.0, "test_error": error})
    (tmp_path / "earlier" / "semi-20-seed0" / "figure.png").write_bytes(b"old")
    assert paper.main([str(tmp_path / "earlier"), "--out", str(out)]) == 0
    # A later session has only its own folders: seed 1 trained longer, seed 2 new.
    for seed, error in ((1, 0.40), (2, 0.30)):
        write_run(tmp_path / "later", f"semi-20-seed{seed}", prior="categorical_gaussian", dim=10, labels=20, seed=seed,
                  epochs=8, test={"nll_nats": 81.0, "test_error": error})
    assert paper.main([str(tmp_path / "later"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"2 runs from {tmp_path / 'later'}, 1 kept from {out / 'table.csv'}")

    rows = {row["run"]: row for row in pyarrow.csv.read_csv(out / "table.csv").to_pylist()}
    assert {name: (row["ours"], row["epochs"]) for name, row in rows.items()} == {
        "semi-20-seed0": (pytest.approx(10.0), 4), "semi-20-seed1": (pytest.approx(40.0), 8), "semi-20-seed2": (pytest.approx(30.0), 8)}
    assert "| test error %, 20 labels | 26.67 ±15.28 | 3 | 12.08 ±5.50 |" in (out / "table.md").read_text()
    assert (out / "semi-20-seed0.png").read_bytes() == b"old"


def test_a_table_csv_of_other_columns_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "runs", "clustering-seed0", test={"clustering": {"error_paper_rule": 0.1}})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "table.csv").write_text("run,error\nx,0.1\n")
    assert paper.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'out' / 'table.csv'}: columns ['run', 'error']" in capsys.readouterr().err
    assert (tmp_path / "out" / "table.csv").read_text() == "run,error\nx,0.1\n"
