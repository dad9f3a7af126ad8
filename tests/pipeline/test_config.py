"""conf/ and params.yaml stay one source of truth; every dataset profile builds a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.params import CONF_DIR, PARAMS, RAY_STORAGE, REPO, compose_yaml, dataset_config, load_params, read_paths, run_params
from pixelgan.config import ConfigError


def test_params_yaml_is_what_dvc_composes_from_conf(tmp_path: Path) -> None:
    from dvc.utils.hydra import compose_and_dump

    composed = tmp_path / "params.yaml"
    compose_and_dump(composed, str(CONF_DIR), None, "config", str(tmp_path), [])
    assert PARAMS.read_text() == composed.read_text(), (
        "params.yaml differs from conf/; regenerate it with `python -m pipeline.params`"
    )


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")))
def test_every_dataset_profile_builds_a_valid_config(name: str) -> None:
    config = dataset_config(load_params([f"dataset={name}"]))
    assert config.name == name


def test_overrides_reach_the_config_and_bad_ones_name_the_option() -> None:
    assert dataset_config(load_params(["dataset=digits", "dataset.labels=50"])).labels == 50
    with pytest.raises(ConfigError, match="dataset/imagenet"):
        load_params(["dataset=imagenet"])
    with pytest.raises(ConfigError, match=r"unknown option dataset\.colour"):
        dataset_config(yaml.safe_load(compose_yaml(["+dataset.colour=red"])))


def test_a_run_lays_its_changes_over_the_other_parameters() -> None:
    params = load_params()
    aae = run_params(params, "aae")
    assert aae["model"]["decoder"]["autoregressive"] is False
    assert aae["prior"]["kind"] == "gaussian" and aae["prior"]["dim"] == 2
    assert aae["model"]["decoder"]["channels"] == params["model"]["decoder"]["channels"]
    assert params["model"]["decoder"]["autoregressive"] is True, "the base parameters are untouched"
    with pytest.raises(ConfigError, match="runs.nope: no such run"):
        run_params(params, "nope")
    params["runs"]["typo"] = {"model": {"decoder": {"colour": 3}}}
    with pytest.raises(ConfigError, match="runs.typo: model.decoder.colour is not a parameter"):
        run_params(params, "typo")


def test_dotted_overrides_lie_over_params_yaml_without_composing_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hydra(overrides: object = ()) -> str:
        raise AssertionError("Hydra composed conf/ for dotted overrides")

    monkeypatch.setattr("pipeline.params.compose_yaml", no_hydra)
    params = load_params(["train.seed=3", "train.lr_generator=1e-5", "model.encoder.channels=[8,16]", "train.compile=true"])
    assert params["train"]["seed"] == 3 and params["train"]["lr_generator"] == 1e-5, "1e-5 is a number, as Hydra reads it"
    assert params["model"]["encoder"]["channels"] == [8, 16] and params["train"]["compile"] is True
    assert params["dataset"] == yaml.safe_load(PARAMS.read_text())["dataset"], "the rest is params.yaml's"
    with pytest.raises(ConfigError, match="train.sed is not a parameter"):
        load_params(["train.sed=3"])
    with pytest.raises(ConfigError, match="override: seed is not a parameter"):
        load_params(["seed=3"])  # no dot, but no group of conf/ either: a key, refused by name
    with pytest.raises(AssertionError, match="Hydra composed"):
        load_params(["prior=gaussian"])  # a group choice needs conf/


def test_a_group_choice_is_refused_when_params_yaml_holds_edits_it_would_drop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load(PARAMS.read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_params(["prior=gaussian"])["prior"]["kind"] == "gaussian", "params.yaml as conf/ composes it: no loss"
    params["train"]["epochs"] += 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"params.yaml holds train\.epochs other than conf/, which prior=gaussian composes"):
        load_params(["prior=gaussian"])
    epochs = params["train"]["epochs"]
    assert load_params(["prior=gaussian", f"train.epochs={epochs}"])["train"]["epochs"] == epochs, "the edit given again"
    assert load_params(["prior=gaussian", "train.epochs=1"])["train"]["epochs"] == 1, "an override of the edited key sets it"
    assert load_params(["prior.dim=3"])["train"]["epochs"] == epochs, "a dotted override keeps the edit"


def test_a_pipelines_own_params_yaml_takes_the_group_choice_it_was_composed_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO / "paper")
    assert load_params(["+experiment=paper_column"]) == yaml.safe_load((REPO / "paper" / "params.yaml").read_text())
    with pytest.raises(ConfigError, match="other than conf/"):
        load_params(["prior=gaussian"])  # would drop the paper column's set-up


@pytest.mark.parametrize(("override", "message"), [
    ("train.seed.x=1", "override: train.seed.x is not a parameter"),
    ("train.seed=1,2", "override train.seed=1,2: a sweep"),
    ("train.seed", "expected key=value"),
])
def test_a_dotted_override_is_refused_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params([override])


def test_a_dotted_overrides_value_replaces_the_whole_value_typed_as_hydra_types_it() -> None:
    params = load_params(["runs.aae={prior: {kind: gaussian, dim: 3}}", "eval.samples=inf", "dataset.root=yes"])
    assert params["runs"]["aae"] == {"prior": {"kind": "gaussian", "dim": 3}}, "the run's other changes are replaced"
    assert params["eval"]["samples"] == float("inf") and params["dataset"]["root"] == "yes"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "train.epochs must be int, got 'abc'"),
        ("train.precision=fp8", "train.precision='fp8' is not one of auto, fp32, bf16"),
        ("dataset.validation_size=1", "dataset.validation_size=1 must be >= 2"),
        ("train.num_workers=0", "train.num_workers=0 must be >= 1"),
        ("eval.samples=1", "eval.samples=1"),
        ("+model.decoder.depth=3", "unknown option model.decoder.depth"),
        ("+runs.aae.train.lr_generator=0", "train.lr_generator=0 must be > 0"),
    ],
)
def test_the_params_writer_refuses_what_a_stage_would(tmp_path: Path, override: str, message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.params import main

    out = tmp_path / "params.yaml"
    assert main(["--out", str(out), override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing is written"
    assert main(["--out", str(out)]) == 0 and out.is_file()


def test_rays_storage_comes_from_the_environment_and_is_no_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    params = load_params([])
    monkeypatch.delenv(RAY_STORAGE)
    assert read_paths(params).runs == "runs", "runs/ in the stage's folder when unset"
    monkeypatch.setenv(RAY_STORAGE, "s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    assert read_paths(params).resolved().runs == "s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http"
    with pytest.raises(ConfigError, match="paths.runs is not a parameter: set Ray's storage with PIXELGAN_RUNS"):
        read_paths({**params, "paths": {**params["paths"], "runs": "elsewhere"}})
