"""Short real trainings: the decoder uses z; the one-process run resumes and scores prepared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from pixelgan.__main__ import load_splits, main
from pixelgan.checkpoint import load_checkpoint, save_checkpoint
from pixelgan.data.splits import labelled_subset
from pixelgan.config import (
    DatasetConfig,
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
)
from pixelgan.data import ImageDataset
from pixelgan.data.prepare import prepare_dataset
from pixelgan.engine import evaluate, fit
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers
from tests.helpers import cli_run

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


@pytest.mark.slow
def test_the_cli_run_checkpoints_resumes_and_does_not_repeat_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, "--epochs", "1") == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"nll", "d_loss", "g_loss", "val_nll", "val_nll_other_code", "epoch_time_s"} <= set(metrics["last_epoch"])
    assert metrics["epochs"] == 1 and metrics["profile"] == "cpu" and metrics["device"]
    # A longer run with other settings in the same folder is refused, naming the checkpoint ...
    assert cli_run(tmp_path, "--epochs", "2", "--dim", "5") == 2
    error = capsys.readouterr().err
    assert "checkpoint.pt belongs to a run with other settings" in error
    assert "model.prior.dim 2 in the checkpoint, 5 now" in error, "it names what differs"
    assert cli_run(tmp_path, "--epochs", "2", "--limit", "256") == 2, "another training set"
    assert "run.limit 128 in the checkpoint, 256 now" in capsys.readouterr().err
    # ... while asking for more epochs is not: it carries on from the checkpoint,
    assert cli_run(tmp_path, "--epochs", "2") == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    # and a finished run, started again, trains nothing and rewrites nothing.
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert cli_run(tmp_path, "--epochs", "2") == 0
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


@pytest.mark.slow
def test_a_cli_run_stopped_and_resumed_ends_where_an_unbroken_one_does(tmp_path: Path) -> None:
    """Weights, optimizer moments and random state all come back: fp32, bit for bit."""
    fp32 = ("--epochs", "2", "--precision", "fp32", "--no-channels-last", "--device", "cpu")
    assert cli_run(tmp_path / "unbroken", *fp32) == 0
    assert cli_run(tmp_path / "resumed", *fp32, "--time-limit", "1e-9") == 0
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    assert cli_run(tmp_path / "resumed", *fp32) == 0
    unbroken, resumed = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("unbroken", "resumed"))
    assert resumed["epoch"] == 2
    for part in ("model", "optimizers", "rng"):
        assert_equal_states(unbroken[part], resumed[part], part)


@pytest.mark.slow
def test_a_checkpoint_older_than_a_training_setting_resumes_with_its_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, "--epochs", "1") == 0
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    for name in ("gradient_penalty", "label_shift", "label_rotation"):  # added after the first full-MNIST runs
        del state["train_config"][name]
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    # The cpu profile's shift (2) came later than the checkpoint, which trained without one.
    assert cli_run(tmp_path, "--epochs", "2") == 2
    assert "train.label_shift 0 in the checkpoint, 2 now" in capsys.readouterr().err
    assert cli_run(tmp_path, "--epochs", "2", "--label-shift", "0") == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    # A setting the checkpoint does name must still match.
    assert cli_run(tmp_path, "--epochs", "3", "--label-shift", "0", "--gradient-penalty", "0.5") == 2
    assert "belongs to a run with other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_a_time_limit_ends_the_call_after_an_epoch_and_the_next_call_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(tmp_path, "--epochs", "3", "--time-limit", "1e-9") == 0
    assert "stopped after epoch 1/3" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / "metrics.json").exists(), "an unfinished run is not marked done"
    assert cli_run(tmp_path, "--epochs", "3") == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 3
    # Extended past its scores and stopped again, it loses them: they describe 3 epochs, not 4.
    assert cli_run(tmp_path, "--epochs", "5", "--time-limit", "1e-9") == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 4
    assert not (tmp_path / "metrics.json").exists(), "stale scores are not left beside a longer run"


@pytest.mark.slow
def test_the_cli_run_draws_a_figure_from_the_prior(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--limit", "64", "--epochs", "1", "--samples", "2"]) == 0
    from PIL import Image

    grid = Image.open(tmp_path / "figure.png")
    assert grid.size == (2 * 29 + 1, 10 * 29 + 1), "the global/local grid: 10 codes, 2 draws each"


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--limit", "10", "--batch-size", "64"]) == 2
    assert "--batch-size 64 is more than the 10 training images" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def prepared_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    prepare_dataset(DatasetConfig(name="digits", validation_size=180, test_size=180), root / "digits", root / "raw")
    return root / "digits"


def digits_run(out: Path, data: Path, *args: str) -> int:
    return main(["--out", str(out), "--data", str(data), "--prior", "categorical", "--dim", "10",
                 "--epochs", "1", "--samples", "0", "--posterior-draws", "2", *args])


@pytest.mark.slow
def test_on_prepared_data_the_run_scores_the_test_split(prepared_digits: Path, tmp_path: Path) -> None:
    assert digits_run(tmp_path / "clusters", prepared_digits, "--set", "encoder.categorical_code=one_hot",
                      "--set", "encoder.logit_scale=6", "--gradient-penalty", "0.5") == 0
    clusters = json.loads((tmp_path / "clusters/metrics.json").read_text())
    assert clusters["data"] == str(prepared_digits) and clusters["labels"] == 0
    assert (clusters["categorical_code"], clusters["logit_scale"], clusters["gradient_penalty"]) == ("one_hot", 6, 0.5)
    assert clusters["set"] == {"encoder.categorical_code": "one_hot", "encoder.logit_scale": 6}
    assert clusters["last_epoch"]["d_penalty"] >= 0
    assert 0 <= clusters["test"]["clustering"]["error_paper_rule"] <= 1
    assert 0 <= clusters["test"]["clustering"]["val_error_paper_rule"] <= 1
    assert 1 <= clusters["test"]["clustering"]["clusters_used"] <= 10 and clusters["test"]["nll_nats"] > 0
    semi_args = "--prior", "categorical_gaussian", "--labels", "50", "--label-shift", "1", "--label-rotation", "10"  # a style code too
    assert digits_run(tmp_path / "labels", prepared_digits, *semi_args) == 0
    semi = json.loads((tmp_path / "labels/metrics.json").read_text())
    assert (clusters["label_shift"], semi["label_shift"]) == (2, 1), "the cpu profile's, then --label-shift"
    assert (clusters["label_rotation"], semi["label_rotation"]) == (0, 10), "the cpu profile's, then --label-rotation"
    assert 0 <= semi["test"]["test_error"] <= 1 and "clustering" not in semi["test"] and semi["set"] == {}
    assert 0 <= semi["test"]["val_error"] <= 1
    assert semi["last_epoch"]["sup_acc"] >= 0 and 0 <= semi["last_epoch"]["val_error"] <= 1
    assert "val_error" not in clusters["last_epoch"], "categories without labels have no names to score"
    # Scored again from its checkpoint (which restores the random state), the run gives the same figures.
    (tmp_path / "labels/metrics.json").unlink()
    assert digits_run(tmp_path / "labels", prepared_digits, *semi_args) == 0
    assert json.loads((tmp_path / "labels/metrics.json").read_text())["test"] == semi["test"]


def test_with_a_limit_the_labels_come_from_the_first_images(prepared_digits: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    labels = load_splits(prepared_digits, seed=0).train[1].numpy()
    assert digits_run(tmp_path, prepared_digits, "--labels", "100", "--limit", "80") == 2
    assert "--labels=100 needs 10 labelled images of each class, but the training images have only" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()
    rows = labelled_subset(labels[:200], 20, 10, seed=0)
    assert rows.max() < 200 and len(rows) == 20, "the first 200 images hold 2 of each digit"
    assert not np.array_equal(rows, labelled_subset(labels, 20, 10, seed=0)), "drawn among those only"


@pytest.mark.slow
def test_a_checkpoint_trained_on_labels_drawn_the_old_way_is_not_resumed(prepared_digits: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert digits_run(tmp_path, prepared_digits, "--labels", "20") == 0
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    del state["run"]["labels_drawn_by"]  # as written before each seed drew its own labelled images
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    assert digits_run(tmp_path, prepared_digits, "--labels", "20", "--epochs", "2") == 2
    assert "run.labels_drawn_by None in the checkpoint, 'seed' now" in capsys.readouterr().err


@pytest.mark.parametrize("labels,message", [("15", "--labels=15 must be a multiple of the 10 classes"),
                                            ("-10", "--labels=-10 must be a multiple of the 10 classes (0 or more)"),
                                            ("2000", "--labels=2000 needs 200 labelled images of each class")])
def test_bad_label_counts_are_refused(prepared_digits: Path, tmp_path: Path, labels: str, message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert digits_run(tmp_path, prepared_digits, "--labels", labels) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


def test_the_aae_baseline_needs_the_location_dependent_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--no-autoregressive", "--conditioning", "location_independent"]) == 2
    assert "decoder.autoregressive" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("change,message", [("encoder.logit_scale", "expected PART.KEY=VALUE"),
                                            ("encoder.width=3", "unknown option encoder.width"),
                                            ("prior.dim=3", "prior.*: not a part of the model"),
                                            ("encoder.categorical_code=gumbel", "encoder.categorical_code='gumbel'")])
def test_bad_model_changes_are_refused_by_name(tmp_path: Path, change: str, message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--prior", "categorical", "--dim", "10", "--set", change]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()
