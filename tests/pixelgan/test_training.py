"""Short real trainings: the decoder uses z; the one-process run resumes and scores prepared data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from pixelgan.checkpoint import SaveEveryEpoch, load_checkpoint, model_from_checkpoint, save_checkpoint
from pixelgan.config import (
    DatasetConfig,
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
)
from pipeline.params import load_params, read_splits, train_spec
from pixelgan.data import ImageDataset
from pixelgan.data.parquet import Splits, read_prepared
from pixelgan.data.prepare import prepare_dataset
from pixelgan.data.splits import Split
from pixelgan.engine import Callback, EpochProgress, evaluate, fit
from pixelgan.model import PixelGAN
from pixelgan.objective import AdversarialGame, build_optimizers
from pixelgan.run import Run
from tests.helpers import TINY_MODEL_OVERRIDES, cli_run

Z_USE_MARGIN_NATS = 10.0


@pytest.mark.slow
def test_the_decoder_uses_the_code(mnist5k: tuple[torch.Tensor, torch.Tensor]) -> None:
    """After ~15 s of training on 256 digits, a digit's own code explains it far better than
    another digit's code: the small-field PixelCNN has to take the global shape from z."""
    images, labels = mnist5k
    subset = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:256]
    data = ImageDataset(images[subset], labels[subset], binarize="threshold")
    config = ModelConfig(
        prior=PriorConfig("gaussian", 8),
        encoder=EncoderConfig(channels=(16, 32), hidden=128),
        decoder=DecoderConfig(channels=16, n_layers=1, head_channels=16),
        discriminator=DiscriminatorConfig(hidden=(64, 64)),
    )
    model = PixelGAN(config)
    optimizers = build_optimizers(model, TrainConfig(lr_reconstruction=3e-3))
    fit(model, optimizers, DataLoader(data, batch_size=32, shuffle=True, drop_last=True), epochs=40)
    nll = evaluate(model, DataLoader(data, batch_size=256), "cpu")
    print(f"\nNLL given own code {nll['nll']:.2f} nats, given another image's code {nll['nll_other_code']:.2f}")
    assert nll["nll_other_code"] - nll["nll"] > Z_USE_MARGIN_NATS, nll


def test_the_adversarial_diagnostics_read_what_the_code_and_the_discriminator_do() -> None:
    """A head that always picks category 3 gives one-hot codes from one category; a
    discriminator that calls everything a prior sample is right on exactly half its calls, and
    one that tells one-hot samples from the head's soft codes on all of them."""
    model = PixelGAN(ModelConfig(prior=PriorConfig("categorical", 5), encoder=EncoderConfig(channels=(8, 8), hidden=32),
                                 decoder=DecoderConfig(channels=8, n_layers=1, head_channels=8)))
    with torch.no_grad():
        model.encoder.categorical.weight.zero_()
        model.encoder.categorical.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 10.0, 0.0]))  # x logit_scale 3: p(3) ~ 1
        last = model.discriminator.nets[0][-1]
        last.weight.zero_()
        last.bias.fill_(5.0)
    data = ImageDataset(torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8), torch.zeros(40, dtype=torch.long))
    metrics = evaluate(model, DataLoader(data, batch_size=16), "cpu")
    assert metrics["categories_used"] == 1.0
    assert metrics["top_probability"] > 0.999
    assert metrics["d_accuracy"] == 0.5
    with torch.no_grad():
        model.encoder.categorical.bias.zero_()  # every category alike: the first wins each tie
        last.bias.fill_(-5.0)
    metrics = evaluate(model, DataLoader(data, batch_size=16), "cpu")
    assert metrics["top_probability"] == pytest.approx(1 / 5) and metrics["d_accuracy"] == 0.5

    class OneHotSpotter(torch.nn.Module):
        def forward(self, code: torch.Tensor) -> torch.Tensor:  # "prior" exactly on one-hot rows
            return torch.where(code.max(dim=1, keepdim=True).values > 0.99, 5.0, -5.0)

    model.discriminator = OneHotSpotter()
    assert evaluate(model, DataLoader(data, batch_size=16), "cpu")["d_accuracy"] == 1.0, "right on every call"


def test_the_validation_error_is_the_heads_error_on_the_labels_given(tmp_path: Path) -> None:
    """A deterministic encoder's own predictions as labels score 0, every one shifted scores 1,
    and a model without labels reports no error; in a process group of one, the same."""
    config = ModelConfig(
        prior=PriorConfig("categorical_gaussian", 10),
        encoder=EncoderConfig(channels=(8, 8), hidden=32, stochastic=False, noise_dim=0),
        decoder=DecoderConfig(channels=8, n_layers=1, head_channels=8),
    )
    model = PixelGAN(config).eval()
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    whole = next(iter(DataLoader(ImageDataset(images, torch.zeros(40, dtype=torch.int64)), batch_size=40)))
    predicted = model.encoder(whole.images).logits.argmax(dim=1)

    def error(labels: torch.Tensor, classify: bool = True) -> dict[str, float]:
        return evaluate(model, DataLoader(ImageDataset(images, labels), batch_size=16), "cpu", classify)

    assert error(predicted)["error"] == 0.0
    assert error((predicted + 1) % 10)["error"] == 1.0
    assert "error" not in error(predicted, classify=False)
    alone = error(predicted)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        assert error(predicted) == alone, "summed over the workers (here one) as in one process"
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paths.data folder with scikit-learn's digits prepared as the test runs name them."""
    root = tmp_path_factory.mktemp("data")
    prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180), root / "digits", root / "raw")
    return root


@pytest.mark.slow
def test_the_cli_run_checkpoints_resumes_and_does_not_repeat_itself(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, data, "train.epochs=1") == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"nll", "d_loss", "g_loss", "val_nll", "val_nll_other_code", "epoch_time_s"} <= set(metrics["last_epoch"])
    assert metrics["epochs"] == 1 and metrics["spec"]["dataset"]["name"] == "digits" and metrics["device"]
    # A longer run with other settings in the same folder is refused, naming the checkpoint ...
    # (first a change that the weights' shapes would let through, so only the check stops it)
    assert cli_run(tmp_path, data, "train.epochs=2", "prior.style_dim=3") == 2
    error = capsys.readouterr().err
    assert "checkpoint.pt belongs to a run with other settings" in error
    assert "model.prior.style_dim 5 in the checkpoint, 3 now" in error, "it names what differs"
    assert cli_run(tmp_path, data, "train.epochs=2", "prior.dim=5") == 2
    assert "model.prior.dim 30 in the checkpoint, 5 now" in capsys.readouterr().err
    assert cli_run(tmp_path, data, "train.epochs=2", "model.encoder.categorical_code=softmax") == 2
    assert "model.encoder.categorical_code 'one_hot' in the checkpoint, 'softmax' now" in capsys.readouterr().err
    # ... while asking for more epochs, or another speed switch, is not: it carries on from the checkpoint,
    # even one written before a setting existed (it reads as its default, as that run behaved),
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    del state["run"]["spec"]["train"]["prior_temperature"]
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    assert cli_run(tmp_path, data, "train.epochs=2", "train.precision=fp32", "train.prior_temperature=0.5") == 2
    assert "train.prior_temperature 0.0 in the checkpoint, 0.5 now" in capsys.readouterr().err
    assert cli_run(tmp_path, data, "train.epochs=2", "train.precision=fp32") == 0
    assert "resuming" in capsys.readouterr().out
    # A checkpoint with a setting this code no longer has is refused by name, not with a traceback.
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    retired = copy.deepcopy(state)
    retired["run"]["spec"]["train"]["retired_knob"] = 1
    save_checkpoint(tmp_path / "checkpoint.pt", retired)
    assert cli_run(tmp_path, data, "train.epochs=2") == 2
    assert "no longer accepts (unknown option train.retired_knob" in capsys.readouterr().err
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    # and a finished run, started again, trains nothing and rewrites nothing.
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert cli_run(tmp_path, data, "train.epochs=2") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def assert_equal_states(a: object, b: object, where: str = "") -> None:
    """Two nested checkpoint parts (dicts, lists, tensors, numbers) equal bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_states(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


FP32 = ("train.precision=fp32", "train.channels_last=false")


@pytest.mark.slow
def test_a_cli_run_stopped_within_a_step_resumes_to_the_unbroken_runs_weights(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A limit long past stops the call after one step, part-way through epoch 1, saying so;
    the next call passes over that step and ends where an unbroken run does: weights,
    optimizer moments, random state and curves, in fp32 bit for bit (semi-supervised, so the
    labelled batches and their shifts are drawn again too)."""
    run = ("train.epochs=2", *FP32, *SEMI, "train.label_shift=1")
    assert cli_run(tmp_path / "unbroken", data, *run) == 0
    assert cli_run(tmp_path / "resumed", data, *run, time_limit=1e-9) == 0
    assert "stopped in epoch 1/2 after step 1/22" in capsys.readouterr().out
    stopped = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert stopped["epoch"] == 0 and stopped["within_epoch"]["batches"] == 1
    assert not (tmp_path / "resumed" / "metrics.json").exists(), "an unfinished run is not marked done"
    assert cli_run(tmp_path / "resumed", data, *run) == 0
    assert "after epoch 0/2, step 1 of epoch 1" in capsys.readouterr().out
    unbroken, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("unbroken", "resumed"))
    assert resumed["epoch"] == 2 and "within_epoch" not in resumed
    for part in ("model", "optimizers", "rng"):
        assert_equal_states(unbroken[part], resumed[part], part)
    without_time = [{k: v for k, v in epoch.items() if k != "epoch_time_s"} for epoch in unbroken["history"]]
    assert without_time == [{k: v for k, v in epoch.items() if k != "epoch_time_s"} for epoch in resumed["history"]]
    # Extended past its scores and stopped again, it loses them: they describe 2 epochs, not 3.
    assert cli_run(tmp_path / "resumed", data, *run[1:], "train.epochs=3", time_limit=1e-9) == 0
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["within_epoch"]["epoch"] == 3
    assert not (tmp_path / "resumed" / "metrics.json").exists(), "stale scores are not left beside a longer run"
    capsys.readouterr()
    # Fewer epochs than the one it stopped in would score half an epoch as a whole run: refused.
    assert cli_run(tmp_path / "resumed", data, *run[1:], "train.epochs=2") == 2
    assert "stopped part-way through epoch 3; pass train.epochs=3 or more" in capsys.readouterr().err
    # A checkpoint that drew its labelled batches from the global random state cannot go on exactly.
    state = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    del state["run"]["labelled_order"]
    save_checkpoint(tmp_path / "resumed" / "checkpoint.pt", state)
    assert cli_run(tmp_path / "resumed", data, *run[1:], "train.epochs=3") == 2
    assert "drew its labelled batches in an order this code no longer draws" in capsys.readouterr().err


class StopAt(Callback):
    """Asks ``fit`` to stop after step ``batch`` (from 0) of ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at, self.stopped = (epoch, batch), False

    def on_batch_end(self, epoch: int, batch: int) -> None:
        self.stopped = self.stopped or (epoch, batch) == self.at

    def should_stop(self) -> bool:
        return self.stopped


@pytest.mark.parametrize("at", [(2, 6), (1, 21), (2, 21)], ids=["mid-epoch-2", "after-an-epochs-last-step", "after-the-last-step"])
def test_a_run_stopped_anywhere_in_an_epoch_resumes_to_the_unbroken_runs_weights(
    data: Path, tmp_path: Path, at: tuple[int, int]
) -> None:
    """The library's own loop, stopped at any step (the last one of an epoch included, whose
    end the resumed run then does), resumes from the checkpoint to the unbroken weights."""
    params = load_params(["dataset=digits", "dataset.validation_size=180", "dataset.test_size=180",
                          f"paths.data={data}", *TINY_MODEL_OVERRIDES, "train.epochs=2", *FP32, *SEMI, "train.label_shift=1"])
    spec = train_spec(params)
    splits = read_splits(spec.paths, spec.dataset)

    def saved(path: Path, *callbacks: Callback) -> dict:
        run = Run(spec.run, splits, torch.device("cpu"))
        if path.exists():
            run.resume(load_checkpoint(path))
        run.fit([SaveEveryEpoch(path, run.model, run.optimizers, spec.train, history=run.history), *callbacks])
        return load_checkpoint(path)

    unbroken = saved(tmp_path / "unbroken.pt")
    stopped = saved(tmp_path / "resumed.pt", StopAt(*at))
    assert (stopped["epoch"], stopped["within_epoch"]["batches"]) == (at[0] - 1, at[1] + 1)
    resumed = saved(tmp_path / "resumed.pt")
    for part in ("model", "optimizers", "rng"):
        assert_equal_states(unbroken[part], resumed[part], part)
    assert resumed["history"][at[0] - 1]["epoch_time_s"] >= stopped["within_epoch"]["seconds"] > 0, "both parts timed"


@pytest.mark.slow
def test_a_missing_data_set_is_prepared_and_the_run_draws_its_figures(tmp_path: Path) -> None:
    assert cli_run(tmp_path / "run", tmp_path / "data", "train.epochs=1", "prior=gaussian", "prior.dim=2") == 0
    assert {p.name for p in (tmp_path / "data" / "digits").glob("*.parquet")} == {"train.parquet", "validation.parquet", "test.parquet"}
    from PIL import Image

    grid = Image.open(tmp_path / "run" / "global_local.png")
    assert grid.size == (2 * 9 + 1, 2 * 9 + 1), "the global/local grid: 2 codes, 2 draws each, of 8x8 digits"
    assert (tmp_path / "run" / "samples.png").is_file()


def test_splits_prepared_with_other_settings_are_refused_naming_both(data: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The run would otherwise train on 180 validation images and record 100 in its spec."""
    assert cli_run(tmp_path, data, "dataset.validation_size=100", "dataset.seed=1") == 2
    error = capsys.readouterr().err
    assert "train.parquet was prepared with other settings" in error
    assert "dataset.seed 0 there, 1 now; dataset.validation_size 180 there, 100 now" in error
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_batch_larger_than_the_training_set_is_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, data, "train.batch_size=5000") == 2
    assert "train.batch_size=5000 is more than the 1437 training images of digits" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


SEMI = ("prior=categorical_gaussian", "prior.dim=10", "train.semi_supervised=true", "dataset.labels=50")


def test_training_draws_each_pixel_afresh_and_validation_thresholds(data: Path) -> None:
    """Grey digits (100 of 255): training sees each pixel on with probability 100/255, drawn
    anew every epoch; validation sees them all off (threshold 128)."""
    params = load_params(["dataset=digits", "dataset.validation_size=180", "dataset.test_size=180",
                          f"paths.data={data}", *TINY_MODEL_OVERRIDES, "train.batch_size=100",
                          "train.binarize=stochastic"])
    spec = train_spec(params)
    grey = Split(np.full((400, 1, 8, 8), 100, np.uint8), np.zeros(400, np.int64), np.arange(400))
    run = Run(spec.run, Splits(grey, grey, None), torch.device("cpu"))
    first, second = (torch.cat([batch.images for batch in run.train_batches]) for _ in range(2))
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert first.mean().item() == pytest.approx(100 / 255, abs=0.01)
    assert all(batch.images.sum() == 0 for batch in run.validation_batches)


@pytest.mark.slow
def test_the_run_scores_the_test_split_beside_the_validation_split(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each split reaches the scores in its own place (the files' source rows are compared),
    and the scores written are the library's for the saved model on those splits."""
    from pixelgan import report
    from pixelgan.evaluation import score_model

    prepared = read_prepared(data / "digits")
    given = []

    def checked(model, validation, test, **kwargs):
        given.append((validation.index, test.index))
        return score_model(model, validation, test, **kwargs)

    monkeypatch.setattr(report, "score_model", checked)
    # fp32 and the usual memory layout, as the model is scored again below
    assert cli_run(tmp_path / "clusters", data, "train.epochs=1", "model.encoder.categorical_code=softmax",
                   "train.gradient_penalty=0.5", *FP32) == 0
    assert cli_run(tmp_path / "labels", data, "train.epochs=1", *SEMI, *FP32) == 0
    assert len(given) == 2, "both runs were scored through score_model"
    for validation_rows, test_rows in given:
        assert np.array_equal(validation_rows, prepared.validation.index) and np.array_equal(test_rows, prepared.test.index)
    clusters, semi = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("clusters", "labels"))
    assert clusters["spec"]["model"]["encoder"]["categorical_code"] == "softmax"
    assert clusters["last_epoch"]["d_penalty"] >= 0
    assert set(clusters["scores"]["clustering"]) == {"error_paper_rule", "error_majority", "val_error_paper_rule",
                                                     "val_error_majority", "clusters_used"}
    assert {"test_error", "val_error"} <= set(semi["scores"]) and "clustering" not in semi["scores"]
    assert "val_error" not in clusters["last_epoch"], "categories without labels have no names to score"
    for name, written in (("clusters", clusters), ("labels", semi)):
        model = model_from_checkpoint(load_checkpoint(tmp_path / name / "checkpoint.pt")).eval()
        again = score_model(model, prepared.validation, prepared.test, draws=2, seed=0,
                            semi_supervised=written["spec"]["train"]["semi_supervised"])
        assert written["scores"] == again, name
    # Scored again from its checkpoint, the run gives the same figures.
    (tmp_path / "labels/metrics.json").unlink()
    assert cli_run(tmp_path / "labels", data, "train.epochs=1", *SEMI, *FP32) == 0
    assert json.loads((tmp_path / "labels/metrics.json").read_text())["scores"] == semi["scores"]


def test_a_checkpoint_of_the_earlier_one_process_run_is_not_resumed(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = PixelGAN(ModelConfig())
    save_checkpoint(tmp_path / "checkpoint.pt", {"run": {"data": "mnist5k", "labels": 100}, "model": model.state_dict()})
    assert cli_run(tmp_path, data) == 2
    assert "written by an earlier python -m pixelgan" in capsys.readouterr().err


@pytest.mark.parametrize("override,message", [
    ("dataset.labels=15", "dataset.labels=15 must be a multiple of the 10 classes"),
    ("dataset.labels=-10", "dataset.labels=-10 must be >= 0"),
    ("dataset.labels=2000", "dataset.labels=2000 needs 200 labelled images of each class"),
    ("model.decoder.autoregressive=false model.decoder.conditioning=location_independent", "decoder.autoregressive"),
    ("model.encoder.width=3", "model.encoder.width"),
    ("+model.encoder.width=3", "unknown option encoder.width"),
    ("model.encoder.categorical_code=gumbel", "encoder.categorical_code='gumbel'"),
])
def test_bad_settings_are_refused_by_name_before_training(data: Path, tmp_path: Path, override: str, message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, data, *SEMI, *override.split()) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("epochs,expected", [(3, [(0.4, 1.0), (0.2, 0.5), (0.0, 0.0)]), (1, [(0.4, 1.0)])])
def test_what_softens_ds_view_falls_to_none_by_the_last_epoch(
    monkeypatch: pytest.MonkeyPatch, epochs: int, expected: list[tuple[float, float]]
) -> None:
    """Instance noise and the prior's temperature, epoch by epoch; a one-epoch run keeps both."""
    seen = []

    def one_epoch(*args, **kwargs) -> EpochProgress:
        game = args[-2]
        seen.append((round(game.instance_noise, 6), round(game.prior_temperature, 6)))
        assert game.gradient_penalty == 0.5, "the penalty is not annealed"
        return EpochProgress(args[4], complete=True)

    monkeypatch.setattr("pixelgan.engine.train_one_epoch", one_epoch)
    game = AdversarialGame(gradient_penalty=0.5, instance_noise=0.4, prior_temperature=1.0)
    fit(None, None, [], epochs=epochs, game=game)  # type: ignore[arg-type]
    assert seen == expected
