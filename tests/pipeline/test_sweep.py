"""The sweep stage: the search space's checks, and a 2 x 2 sweep killed half-way and resumed
with Tune's saved state lost."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pixelgan.params import load_params
from pipeline.sweep import (
    SweepConfig,
    experiment_name,
    project_relative,
    run_sweep,
    trial_run_name,
    trial_specs,
    whole_checkpoint,
)
from pipeline.train import cores_needed
from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import ConfigError, from_dict
from pixelgan.model import PixelGAN
from tests.helpers import tiny_model_config
from tests.pipeline.conftest import Cluster
from tests.pipeline.test_train import overrides

SWEEP = [
    "train.semi_supervised=false",
    "prior.style_dim=5",
    "sweep.gaussian=[2,3]",
    "sweep.categorical=[4,6]",
    "sweep.epochs=1",
    "sweep.num_workers=1",
    "sweep.cpus_per_worker=1",  # trials in turns on the test cluster, so a kill can fall between them
]


def sweep_params(root: Path, data: Path, *more: str) -> dict[str, Any]:
    return load_params(overrides(root, data) + [f"paths.results={root}/results", *SWEEP, *more])


@pytest.mark.parametrize(
    "override,message",
    [
        ("sweep.gaussian=[]", "sweep: the search space is empty"),
        ("sweep.categorical=[1]", "sweep.categorical: prior.dim (number of categories)=1 must be >= 2"),
        ("sweep.gaussian=[0]", "sweep.gaussian: prior.dim=0 must be >= 1"),
        ("sweep.extra=['train.momentum=0.9']", "sweep: train.momentum is not a parameter"),
        ("sweep.extra=[lr]", "sweep.extra: 'lr' is not of the form"),
        ("sweep.scheduler=random", "sweep.scheduler='random' is not one of grid, asha"),
    ],
)
def test_a_bad_search_space_fails_before_any_trial(
    override: str, message: str, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_tuner(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Tuner was built")

    monkeypatch.setattr("pipeline.sweep.build_tuner", no_tuner)
    params = sweep_params(tmp_path, digits, override, *(["sweep.categorical=[]"] if "empty" in message else []))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run_sweep(params)


def test_the_grid_crosses_priors_sizes_and_extra_values(digits: Path, tmp_path: Path) -> None:
    params = sweep_params(tmp_path, digits, "sweep.extra=['train.lr_reconstruction=0.001,0.0003']")
    sweep = from_dict(SweepConfig, params["sweep"])
    specs = trial_specs(params, sweep)
    assert len(specs) == 8
    assert {(s.model.prior.kind, s.model.prior.dim, s.train.lr_reconstruction) for s in specs} == {
        (kind, dim, lr) for kind, dims in (("gaussian", (2, 3)), ("categorical", (4, 6))) for dim in dims for lr in (0.001, 0.0003)
    }
    assert all(s.train.epochs == 1 and s.scaling.num_workers == 1 for s in specs)


def test_the_default_grid_starts_every_trial_at_once_on_two_cores(digits: Path, tmp_path: Path) -> None:
    params = load_params(overrides(tmp_path, digits) + ["train.semi_supervised=false"])
    sweep = from_dict(SweepConfig, params["sweep"])
    specs = trial_specs(params, sweep)
    assert len(specs) == 4
    assert sum(cores_needed(spec) for spec in specs) <= 2


def test_two_points_that_train_the_same_model_are_refused(digits: Path, tmp_path: Path) -> None:
    params = sweep_params(tmp_path, digits, "sweep.gaussian=[2,2]")
    with pytest.raises(ConfigError, match=r"sweep: the points .* train the same model"):
        trial_specs(params, from_dict(SweepConfig, params["sweep"]))


def test_a_checkpoint_cut_short_is_not_taken_for_a_finished_trial(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, checkpoint_state(PixelGAN(tiny_model_config()), epoch=1, metrics={"val_nll": 1.0}))
    whole = path.read_bytes()
    assert whole_checkpoint(path)["metrics"] == {"val_nll": 1.0}
    for cut in range(0, len(whole), max(1, len(whole) // 50)):
        path.write_bytes(whole[:cut])
        assert whole_checkpoint(path) is None, f"{cut} of {len(whole)} bytes taken for a checkpoint"
    assert whole_checkpoint(tmp_path / "absent.pt") is None


class KillAfterFirstTrial:
    """A Tune callback that SIGKILLs the sweep's driver once the sweep's saved state records a
    finished trial; the marker file it leaves disarms it (a restored Tuner brings it back)."""

    def __new__(cls, marker: Path, experiment: Path) -> Any:
        from ray.tune import Callback

        def saved_finished_trial() -> bool:
            for state in experiment.glob("experiment_state-*.json"):
                try:
                    saved = json.loads(state.read_text())
                except json.JSONDecodeError:  # being written right now
                    continue
                if any(json.loads(trial)["status"] == "TERMINATED" for trial, _ in saved["trial_data"]):
                    return True
            return False

        class Kill(Callback):
            def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
                if not marker.exists() and saved_finished_trial():
                    marker.touch()
                    os.kill(os.getpid(), signal.SIGKILL)

        return Kill()


def test_checkpoint_paths_are_recorded_relative_to_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "runs/sweep-digits-gaussian-2-0123456789/epoch-0001"
    assert project_relative(str(inside)) == "runs/sweep-digits-gaussian-2-0123456789/epoch-0001"
    outside = str(tmp_path.parent / "elsewhere/epoch-0001")
    assert project_relative(outside) == outside
    assert project_relative(None) is None


def experiments(runs: Path) -> set[Path]:
    """The Tune experiments under ``runs`` (sweep-<digest>), not the trials' Train runs."""
    return {path for path in runs.iterdir() if re.fullmatch(r"sweep-[0-9a-f]{10}", path.name)}


def killed_sweep(root: str, data: str) -> None:
    params = sweep_params(Path(root), Path(data))
    sweep = from_dict(SweepConfig, params["sweep"])
    experiment = Path(root) / "runs" / experiment_name(sweep, trial_specs(params, sweep))
    run_sweep(params, callbacks=[KillAfterFirstTrial(Path(root) / "killed-after", experiment)])


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_killed_half_way_then_given_another_grid_runs_that_grid_reusing_only_shared_runs(
    ray_cluster: Cluster, digits: Path, tmp_path: Path
) -> None:
    code = f"from tests.pipeline.test_sweep import killed_sweep; killed_sweep({str(tmp_path)!r}, {str(digits)!r})"
    env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="0")  # save the sweep's state every step
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    finished = {path: path.read_bytes() for path in (tmp_path / "runs").glob("*/epoch-0001/checkpoint.pt")
                if whole_checkpoint(path) is not None}
    assert finished, "killed before any trial finished"
    (killed,) = experiments(tmp_path / "runs")

    changed = sweep_params(tmp_path, digits, "sweep.categorical=[4,5]")  # the grid's last point out, categorical 5 in
    rows = run_sweep(changed)

    sweep = from_dict(SweepConfig, changed["sweep"])
    kept = {trial_run_name(sweep, spec) for spec in trial_specs(changed, sweep)}
    shared = {path for path in finished if path.parents[1].name in kept}
    assert shared, "the first trial to finish is one the two grids share (categorical 6, out, starts last)"
    reported = {Path(row["checkpoint"]).resolve() / "checkpoint.pt" for row in rows}
    assert {path.resolve() for path in shared} <= reported, "a finished trial of a shared point was trained again, elsewhere"
    assert all(path.read_bytes() == finished[path] for path in shared), "a finished trial of a shared point was trained again"
    assert not {path.resolve() for path in finished if path not in shared} & reported, "a point of the old grid was reported"
    assert experiments(tmp_path / "runs") - {killed}, "the changed grid is an experiment of its own"
    assert sorted((r["prior"], r["dim"]) for r in rows) == [("categorical", 4), ("categorical", 5), ("gaussian", 2), ("gaussian", 3)]
    assert all(r["error"] is None and r["val_nll"] > 0 and r["epochs"] == 1 and r["checkpoint"] for r in rows), rows
    table = pq.read_table(tmp_path / "results/sweep.parquet").to_pylist()
    assert [(r["prior"], r["dim"]) for r in table] == [(r["prior"], r["dim"]) for r in rows]
    assert (tmp_path / "results/sweep.csv").read_text().count("\n") == 5
    best = json.loads((tmp_path / "results/best.json").read_text())
    assert set(best) == {"gaussian", "categorical"}
    assert best["gaussian"]["val_nll"] == min(r["val_nll"] for r in rows if r["prior"] == "gaussian")
    assert (tmp_path / "results/sweep.png").stat().st_size > 0
    for row in rows:
        (trial,) = (tmp_path / "runs").glob(f"sweep-*/{row['trial']}")
        assert list(trial.glob("events.out.tfevents*")), f"no TensorBoard events in {trial.name}"
