"""scripts/lever_effects.py: each lever's value judged on every trial that took it, at one epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_script

lever_effects = load_script("lever_effects")


def test_each_value_of_a_lever_is_the_mean_of_its_trials_at_the_epoch(tmp_path: Path) -> None:
    (tmp_path / "sweep.csv").write_text('trial,prior,train.binarize,val_error_paper_rule\n'
                                        'a,categorical,threshold,0.1\nb,categorical,stochastic,0.9\nc,categorical,threshold,0.5\n')
    figures = ",".join(lever_effects.FIGURES)
    epochs = [f"trial,epoch,{figures}"]
    for trial, epoch, error in (("a", 3, 0.2), ("a", 9, 0.1), ("b", 3, 0.6), ("c", 3, 0.4)):
        epochs.append(",".join([trial, str(epoch), str(error), *["0.5"] * (len(lever_effects.FIGURES) - 1)]))
    (tmp_path / "sweep_epochs.csv").write_text("\n".join(epochs) + "\n")
    rows = {row["value"]: row for row in lever_effects.lever_effects(tmp_path)}  # epoch 3: the last every trial reached
    assert set(rows) == {"threshold", "stochastic"}, "only the drawn levers, not the prior or the metrics"
    assert rows["threshold"]["trials"] == 2 and rows["threshold"]["val_error_paper_rule"] == pytest.approx(0.3)
    assert rows["stochastic"]["val_error_paper_rule"] == pytest.approx(0.6)
    assert "| train.binarize | threshold | 2 | 0.300 |" in lever_effects.markdown(list(rows.values()))
    at_nine = {row["value"]: row for row in lever_effects.lever_effects(tmp_path, epoch=9)}
    assert at_nine["threshold"]["trials"] == 1 and at_nine["threshold"]["val_error_paper_rule"] == pytest.approx(0.1)
