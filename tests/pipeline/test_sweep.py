"""The sweep stage: the search space's checks, and a 2 x 2 sweep with its storage on S3, killed
half-way and run again with a changed grid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import pipeline.experiment
from pipeline import storage
from pipeline.params import RAY_STORAGE, load_params
from pipeline.sweep import (
    SweepConfig,
    epochs_table,
    project_relative,
    plan_sweep,
    run_sweep,
    sweep_experiment,
    trial_run_name,
    trial_specs,
    whole_checkpoint,
)
from pipeline.ray_train import FINISHED, runs_at_once
from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import ConfigError, from_dict
from pixelgan.model import PixelGAN
from tests.helpers import tiny_model_config
from tests.pipeline.conftest import Cluster, S3Server
from tests.pipeline.test_train import overrides, s3_runs

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
        ("sweep.extra=[lr]", "sweep.extra 'lr': expected key=value"),
        ("sweep.extra=['train.seed=shuffle(1,2)']", "sweep.extra: 'train.seed=shuffle(1,2)' is not of the form"),
        ("sweep.extra=['train.seed=']", "sweep.extra: 'train.seed=' is not of the form"),
        ("sweep.scheduler=random", "sweep.scheduler='random' is not one of grid, asha"),
        ("sweep.samples=2", "sweep.samples=2 draws from sweep.space, which is empty"),
        ("+sweep.space.train.marginal_entropy=1.0", "sweep.space.train.marginal_entropy must be a non-empty list"),
        ("+sweep.space.train.binarize=[threshold,stochastic] sweep.samples=3", "sweep.samples=3: sweep.space holds fewer"),
        ("+sweep.space.train.momentum=[0.9] sweep.samples=1", "sweep: train.momentum is not a parameter"),
        ("+sweep.space.train.marginal_entropy=[0,0.0] sweep.samples=1", "sweep.space.train.marginal_entropy=[0, 0.0] lists a value twice"),
        ("+sweep.space.train.epochs=[1,2] sweep.samples=1", "sweep.space.train.epochs: the sweep sets train.epochs itself"),
        ("sweep.metric=val_accuracy", "sweep.metric='val_accuracy' is not one a trial reports"),
        ("sweep.metric=val_error_paper_rule", "sweep.metric=val_error_paper_rule needs categories"),
    ],
)
def test_a_bad_search_space_fails_before_any_trial(
    override: str, message: str, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_tuner(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Tuner was built")

    monkeypatch.setattr("pipeline.sweep.build_tuner", no_tuner)
    params = sweep_params(tmp_path, digits, *override.split(), *(["sweep.categorical=[]"] if "is empty" in message else []))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run_sweep(plan_sweep(params))


def test_the_grid_crosses_priors_sizes_and_extra_values(digits: Path, tmp_path: Path) -> None:
    params = sweep_params(tmp_path, digits, "sweep.extra=['train.lr_reconstruction=0.001,0.0003']")
    sweep = from_dict(SweepConfig, params["sweep"])
    specs = trial_specs(params, sweep)
    assert len(specs) == 8
    assert {(s.model.prior.kind, s.model.prior.dim, s.train.lr_reconstruction) for s in specs} == {
        (kind, dim, lr) for kind, dims in (("gaussian", (2, 3)), ("categorical", (4, 6))) for dim in dims for lr in (0.001, 0.0003)
    }
    assert all(s.train.epochs == 1 and s.scaling.num_workers == 1 for s in specs)


def test_extra_reads_hydras_sweep_grammar_lists_and_numbers_included() -> None:
    sweep = SweepConfig(extra=("model.encoder.channels=[8,16],[4,8]", "train.lr_reconstruction=1e-3,3e-4", "train.seed=2",
                               "prior.style_dim=range(1,4)"))
    assert sweep.extra_values() == {"model.encoder.channels": [[8, 16], [4, 8]], "train.lr_reconstruction": [1e-3, 3e-4],
                                    "train.seed": [2], "prior.style_dim": [1, 2, 3]}, \
        "1e-3 a number, as Hydra reads it; a single value a one-point axis"


def test_the_default_grid_runs_a_thread_per_booked_core_two_trials_at_a_time(digits: Path, tmp_path: Path) -> None:
    """A trial's worker runs one thread at least, whatever fraction of a core it books: four
    trials of half a core each ran four threads on two cores (docs/speed.md)."""
    params = load_params(overrides(tmp_path, digits) + ["train.semi_supervised=false"])
    sweep = from_dict(SweepConfig, params["sweep"])
    specs = trial_specs(params, sweep)
    assert len(specs) == 4
    assert all(spec.scaling.cpus_per_worker >= max(1, round(spec.scaling.cpus_per_worker)) for spec in specs)
    assert runs_at_once(specs, cpus=2) == 2


SPACE = ["+sweep.space.train.marginal_entropy=[0.0,0.5,2.0]", "+sweep.space.train.binarize=[threshold,stochastic]",
         "+sweep.space.model.encoder.batch_norm_logits=[true,false]"]


def test_a_random_search_draws_distinct_points_of_its_space_by_its_seed(digits: Path, tmp_path: Path) -> None:
    def drawn(*more: str) -> list[tuple[Any, ...]]:
        params = sweep_params(tmp_path, digits, *SPACE, "sweep.gaussian=[]", "sweep.samples=5", *more)
        specs = trial_specs(params, from_dict(SweepConfig, params["sweep"]))
        return [(s.model.prior.dim, s.train.marginal_entropy, s.train.binarize, s.model.encoder.batch_norm_logits)
                for s in specs]

    points = drawn()
    assert len(points) == 10 and len(set(points)) == 10, "5 distinct draws for each of the 2 sizes"
    assert {p[0] for p in points} == {4, 6} and {p[1] for p in points} <= {0.0, 0.5, 2.0}
    assert {p[2] for p in points} <= {"threshold", "stochastic"} and {p[3] for p in points} <= {True, False}
    assert drawn() == points, "the same seed draws the same points"
    assert drawn("sweep.seed=1") != points


def test_the_committed_search_params_are_conf_composed_with_the_search() -> None:
    from pipeline.params import REPO, compose_yaml

    assert (REPO / "search/params.yaml").read_text() == compose_yaml(["+experiment=categorical_search"]), (
        "search/params.yaml differs from conf/; regenerate it with "
        "`python -m pipeline.params --out search/params.yaml +experiment=categorical_search`"
    )


def test_the_epochs_table_holds_every_epoch_of_a_trials_last_checkpoint(tmp_path: Path) -> None:
    """Its rows come from the history in the checkpoint of the last epoch a trial reported, so
    the epochs a killed and resumed trial trained before the kill are there too."""

    class Result:
        def __init__(self, name: str, run: str, epoch: int | None) -> None:
            self.path, self.config = str(tmp_path / name), {"trial": {"run": run}}
            self.metrics = {} if epoch is None else {"epoch": epoch}

    history = [{"epoch": 1, "epoch_time_s": 30.0, "val_error_paper_rule": 0.4},
               {"epoch": 2, "epoch_time_s": 20.0, "val_error_paper_rule": 0.3, "g_loss": 0.7}]
    save_checkpoint(tmp_path / "runs/run-b/epoch-0002/checkpoint.pt",
                    checkpoint_state(PixelGAN(tiny_model_config()), epoch=2, metrics=history[-1], history=history))
    rows = epochs_table([Result("b", "run-b", 2), Result("a", "run-a", None)], str(tmp_path / "runs"))
    assert [(r["trial"], r["epoch"], r["training_time_s"], r["val_error_paper_rule"]) for r in rows] == [
        ("b", 1, 30.0, 0.4), ("b", 2, 50.0, 0.3)]
    assert rows[0]["g_loss"] is None and rows[1]["g_loss"] == 0.7, "a metric the epoch did not report is empty"


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


class KillOnFirstFinishedTrial:
    """A Tune callback that SIGKILLs the sweep's driver as the first trial finishes, its Train
    run's last checkpoint already in storage."""

    def __new__(cls) -> Any:
        from ray.tune import Callback

        class Kill(Callback):
            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                os.kill(os.getpid(), signal.SIGKILL)

        return Kill()


def test_checkpoint_paths_are_recorded_relative_to_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "runs/sweep-digits-gaussian-2-0123456789/epoch-0001"
    assert project_relative(str(inside)) == "runs/sweep-digits-gaussian-2-0123456789/epoch-0001"
    outside = str(tmp_path.parent / "elsewhere/epoch-0001")
    assert project_relative(outside) == outside
    assert project_relative(None) is None


def stored(runs: str, pattern: str) -> list[str]:
    """The files under the storage URI ``runs`` whose path below it matches ``pattern``."""
    fs, root = storage.filesystem(runs)
    found = [info.path.removeprefix(root).lstrip("/") for info in fs.get_file_info(pafs.FileSelector(root, recursive=True))
             if info.type == pafs.FileType.File]
    return [path for path in found if PurePosixPath(path).match(pattern)]


def experiments(runs: str) -> set[str]:
    """The Tune experiments in storage (sweep-<digest>), not the trials' Train runs."""
    return {path.split("/")[0] for path in stored(runs, "*/*") if re.fullmatch(r"sweep-[0-9a-f]{10}", path.split("/")[0])}


def killed_sweep(root: str, data: str) -> None:
    run_sweep(plan_sweep(sweep_params(Path(root), Path(data))), callbacks=[KillOnFirstFinishedTrial()])


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_killed_half_way_then_given_another_grid_runs_that_grid_reusing_only_shared_runs(
    ray_cluster: Cluster, s3_server: S3Server, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tune's experiments and the trials' Train runs in the S3 bucket: a sweep killed as its
    first trial finishes, run again with a changed grid, reports the new grid's points, reuses
    the finished run of a shared point and trains none of the old grid's."""
    runs = s3_runs(s3_server, tmp_path)
    monkeypatch.setenv(RAY_STORAGE, runs)  # here and in the process it starts
    code = f"from tests.pipeline.test_sweep import killed_sweep; killed_sweep({str(tmp_path)!r}, {str(digits)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    finished = {PurePosixPath(path).parts[0]: storage.read_bytes(storage.join(runs, path))
                for path in stored(runs, "*/epoch-0001/checkpoint.pt")
                if whole_checkpoint(storage.join(runs, path)) is not None}
    assert finished, "killed before any trial finished"
    (killed,) = experiments(runs)

    # The changed grid keeps the points whose trials finished (which trials finish first is the
    # cluster's to decide), drops one that did not, and adds a new size of the same prior.
    first = sweep_params(tmp_path, digits)
    first_sweep = from_dict(SweepConfig, first["sweep"])
    points = {trial_run_name(first_sweep, spec): (spec.model.prior.kind, spec.model.prior.dim)
              for spec in trial_specs(first, first_sweep)}
    unfinished = [point for name, point in points.items() if name not in finished]
    assert unfinished, "killed before every trial finished"
    kind, out = unfinished[-1]
    sizes = {k: [d for kk, d in points.values() if kk == k] for k in ("gaussian", "categorical")}
    sizes[kind] = [d for d in sizes[kind] if d != out] + [max(sizes[kind]) + 1]
    grid = [f"sweep.{k}=[{','.join(map(str, v))}]" for k, v in sizes.items()]
    changed = sweep_params(tmp_path, digits, *grid)
    rows = run_sweep(plan_sweep(changed))

    sweep = from_dict(SweepConfig, changed["sweep"])
    kept = {trial_run_name(sweep, spec) for spec in trial_specs(changed, sweep)}
    shared = set(finished) & kept
    assert shared == set(finished), "every finished point is kept"
    reported = {PurePosixPath(row["checkpoint"]).parent.name for row in rows}
    assert shared <= reported, "a finished trial of a shared point was trained again, elsewhere"
    assert all(storage.read_bytes(storage.join(runs, run, "epoch-0001", "checkpoint.pt")) == finished[run] for run in shared), \
        "a finished trial of a shared point was trained again"
    dropped = next(name for name, point in points.items() if point == (kind, out))
    assert dropped not in reported, "the point the changed grid left out was reported"
    assert experiments(runs) - {killed}, "the changed grid is an experiment of its own"
    assert sorted((r["prior"], r["dim"]) for r in rows) == sorted((k, d) for k, v in sizes.items() for d in v)
    assert all(r["error"] is None and r["val_nll"] > 0 and r["epochs"] == 1 and r["checkpoint"] for r in rows), rows
    table = pq.read_table(tmp_path / "results/sweep.parquet").to_pylist()
    assert [(r["prior"], r["dim"]) for r in table] == [(r["prior"], r["dim"]) for r in rows]
    assert (tmp_path / "results/sweep.csv").read_text().count("\n") == 5
    best = json.loads((tmp_path / "results/best.json").read_text())
    assert set(best) == {"gaussian", "categorical"}
    assert best["gaussian"]["val_nll"] == min(r["val_nll"] for r in rows if r["prior"] == "gaussian")
    assert (tmp_path / "results/sweep.png").stat().st_size > 0
    for row in rows:
        assert stored(runs, f"sweep-*/{row['trial']}/events.out.tfevents*"), f"no TensorBoard events in {row['trial']}"
    assert pipeline.experiment.main([str(tmp_path / "results/sweep_experiment.json")]) == 0, "the bucket's experiment"
    shown = capsys.readouterr().out
    assert f"{len(rows)} trials" in shown and all(row["trial"].rsplit("-", 1)[1] in shown for row in rows), shown


def test_a_finished_sweep_run_again_trains_afresh_beside_it_and_a_killed_one_resumes(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    assert sweep_experiment(runs, "sweep-abc") == ("sweep-abc", False), "the first: its trials' runs may be reused"
    storage.touch(storage.join(runs, "sweep-abc", FINISHED))
    assert sweep_experiment(runs, "sweep-abc") == ("sweep-abc-2", True)
    (tmp_path / "runs/sweep-abc-2").mkdir()  # started, then killed
    assert sweep_experiment(runs, "sweep-abc") == ("sweep-abc-2", False)
    storage.touch(storage.join(runs, "sweep-abc-2", FINISHED))
    assert sweep_experiment(runs, "sweep-abc") == ("sweep-abc-3", True)
    assert (tmp_path / "runs/sweep-abc" / FINISHED).exists(), "the finished ones are kept"
