"""A one-process training run: ``python -m pixelgan --out runs/quick``.

Trains with the same ``fit`` that the Ray workers call, on the embedded MNIST-5k or on a
prepared data set (``--data data/mnist``, the prepare stage's Parquet splits), with the model
and training sizes of a profile in conf/ (``--profile cpu|paper``). It saves a checkpoint
every epoch and resumes from it, so a run longer than one sitting is the same command run
again (``--time-limit`` ends a call cleanly before an epoch that would end past it). When the run
is done it scores the test split: NLL, and for a categorical prior the paper's clustering
error or, with ``--labels``, the semi-supervised test error, each beside its validation
figure; it writes ``metrics.json``
and figures. Needs torch, torchvision, numpy, pyarrow and PyYAML only, so it runs unchanged
on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from pixelgan import profiles
from pixelgan.checkpoint import SaveEveryEpoch, load_checkpoint, resume
from pixelgan.config import ConfigError, ImageConfig, ModelConfig, PriorConfig, TrainConfig
from pixelgan.data import ImageDataset, data_form, load_mnist5k
from pixelgan.data.formats import DataFormatError
from pixelgan.data.parquet import read_split
from pixelgan.data.splits import labelled_subset
from pixelgan.engine import PrintProgress, evaluate, fit
from pixelgan.evaluation import category_scores, likelihood_units
from pixelgan.figures import by_category, draw, global_local, save_grid
from pixelgan.io import write_json
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers
from pixelgan.schedule import LearningRateSchedule
from pixelgan.speed import accelerated, device_name, resolve

VALIDATION_SIZE = 500  # of the embedded MNIST-5k, which has no split of its own


@dataclasses.dataclass
class Splits:
    """uint8 images [N, C, H, W] and labels of each split; ``test`` only for prepared data."""

    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor] | None

    @property
    def image(self) -> ImageConfig:
        return ImageConfig(*self.train[0].shape[1:])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pixelgan", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quick"), help="run folder")
    parser.add_argument("--data", type=Path, help="a prepared folder (data/mnist); default: the embedded MNIST-5k")
    parser.add_argument("--profile", default="cpu", help="model and training sizes: conf/{model,train}/<profile>.yaml")
    parser.add_argument("--prior", default="gaussian", help="gaussian | categorical | categorical_gaussian")
    parser.add_argument("--dim", type=int, default=2, help="latent size: Gaussian dims or categories")
    parser.add_argument("--conditioning", help="location_independent | location_dependent | none (default: the profile's)")
    parser.add_argument("--set", action="append", default=[], metavar="PART.KEY=VALUE",
                        help="change one model size of the profile, e.g. encoder.logit_scale=6 (repeatable)")
    parser.add_argument("--autoregressive", action=argparse.BooleanOptionalAction,
                        help="--no-autoregressive: a decoder that reads no pixel, the AAE (location_dependent)")
    parser.add_argument("--labels", type=int, default=0,
                        help="semi-supervised on this many labelled training images, as many of each class, drawn by --seed (0: unsupervised)")
    parser.add_argument("--epochs", type=int, help="default: the profile's")
    parser.add_argument("--batch-size", type=int, help="default: the profile's")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-shift", type=int, help="pixels the labelled images move, at most, each time they are drawn; default: the profile's")
    parser.add_argument("--label-rotation", type=float, help="degrees the labelled images turn, at most, each time they are drawn; default: the profile's")
    parser.add_argument("--lr-schedule", help="constant | cosine (every rate annealed towards zero over the epochs); default: the profile's")
    parser.add_argument("--gradient-penalty", type=float, help="weight of D's gradient penalty (0: none); default: the profile's")
    parser.add_argument("--precision", help="auto | fp32 | bf16 (autocast); default: the profile's (auto: bf16 on a CPU that computes it, else fp32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="default: the profile's (auto: beside bf16 on a CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile each part")
    parser.add_argument("--time-limit", type=float, default=0, help="minutes: stop before an epoch that would end past it, at the last epoch's pace (0: none)")
    parser.add_argument("--samples", type=int, default=8, help="figure columns: draws per code (0: no figure)")
    parser.add_argument("--posterior-draws", type=int, default=8, help="noise draws averaged into q(z|x)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def load_splits(data: Path | None, seed: int) -> Splits:
    """The prepared splits of ``data``, or MNIST-5k split 4,500 / 500 by ``seed`` (no test)."""
    if data is None:
        images, labels = load_mnist5k()
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        val, train = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]
        return Splits((images[train], labels[train]), (images[val], labels[val]), None)
    read = {name: read_split(data / f"{name}.parquet")[0] for name in ("train", "validation", "test")}
    tensors = {name: (torch.from_numpy(split.images), torch.from_numpy(split.labels)) for name, split in read.items()}
    return Splits(tensors["train"], tensors["validation"], tensors["test"])


def sizes_set(items: list[str]) -> dict[str, Any]:
    """``--set PART.KEY=VALUE`` items as {"PART.KEY": value}, each value read as YAML."""
    sizes = {}
    for item in items:
        name, equals, value = item.partition("=")
        part, dot, key = name.partition(".")
        if not (equals and dot and key):
            raise ConfigError(f"--set {item!r}: expected PART.KEY=VALUE, e.g. encoder.logit_scale=6")
        sizes[name] = yaml.safe_load(value)
    return sizes


def configs(args: argparse.Namespace, image: ImageConfig) -> tuple[ModelConfig, TrainConfig]:
    given_decoder = {"conditioning": args.conditioning, "autoregressive": args.autoregressive}
    changes: dict[str, dict[str, Any]] = {"decoder": {key: value for key, value in given_decoder.items() if value is not None}}
    for name, value in sizes_set(args.set).items():
        part, _, key = name.partition(".")
        changes.setdefault(part, {})[key] = value
    model = profiles.model_config(args.profile, PriorConfig(kind=args.prior, dim=args.dim), image, changes)
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "gradient_penalty": args.gradient_penalty,
             "label_shift": args.label_shift, "label_rotation": args.label_rotation, "lr_schedule": args.lr_schedule,
             "precision": args.precision, "channels_last": args.channels_last, "compile": args.compile}
    train = profiles.train_config(
        args.profile, seed=args.seed, semi_supervised=args.labels > 0,
        **{key: value for key, value in given.items() if value is not None},
    )
    if train.semi_supervised and model.prior.categories != 10:
        raise ConfigError(f"--labels needs a prior with one category per class: --prior {args.prior} --dim {args.dim}")
    return model, train


def scores(model: PixelGAN, splits: Splits, semi_supervised: bool, draws: int, device: str) -> dict[str, Any]:
    """The test split's NLL (own and another image's code) and, with categories, Table 1's score
    beside the same score on the validation split (``val_*``), the one to choose by."""
    likelihood = model.config.decoder.likelihood
    assert splits.test is not None
    test_batches = DataLoader(ImageDataset(*splits.test, likelihood=likelihood), batch_size=500)
    nll = evaluate(model, test_batches, device)
    image = model.config.image
    result: dict[str, Any] = likelihood_units(nll["nll"], image.channels * image.height * image.width, likelihood == "bernoulli")
    result["nll_other_code"] = nll["nll_other_code"]
    if model.config.prior.categories:
        validation, test = ((data_form(images, likelihood), labels) for images, labels in (splits.validation, splits.test))
        result |= category_scores(model, validation, test, draws, semi_supervised)
    return result


def differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """``name <saved> in the checkpoint, <wanted> now`` for every setting that differs, nested
    dicts flattened to dotted names, so a refused resume says what to pass."""
    changed = []
    for key in sorted(saved.keys() | wanted.keys()):
        old, new = saved.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} {old!r} in the checkpoint, {new!r} now")
    return changed


def write_figure(model: PixelGAN, path: Path, columns: int, seed: int, device: str) -> None:
    """One row per category (categorical priors), the global/local grid (a Gaussian code read
    by a PixelCNN), else plain samples from the prior."""
    generator = torch.Generator(device).manual_seed(seed)
    if model.config.prior.categories:
        images = by_category(model, columns, generator)
    elif model.config.decoder.conditioning != "none" and model.config.decoder.autoregressive:
        images = global_local(model, 10, columns, generator)
    else:
        images = draw(model, model.prior.sample(10 * columns, generator), generator)
    save_grid(images, path, columns)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        splits = load_splits(args.data, args.seed)
        model_config, train_config = configs(args, splits.image)
        train_images, train_labels = splits.train
        if args.limit:
            train_images, train_labels = train_images[: args.limit], train_labels[: args.limit]
        if len(train_images) < train_config.batch_size:
            raise ConfigError(f"--batch-size {train_config.batch_size} is more than the {len(train_images)} training images")
        train_labels_seen = splits.train[1][: args.limit or None].numpy()  # --limit: among the first images only
        labelled = labelled_subset(train_labels_seen, args.labels, 10, args.seed, "--labels") if args.labels else None
    except (ConfigError, DataFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = {"data": str(args.data or "mnist5k"), "profile": args.profile, "labels": args.labels, "limit": args.limit}
    if args.labels:  # a checkpoint from before labels were drawn by seed trained on other images
        run["labels_drawn_by"] = "seed"
    torch.manual_seed(train_config.seed)
    model = PixelGAN(model_config).to(args.device)
    optimizers = build_optimizers(model, train_config)

    checkpoint = args.out / "checkpoint.pt"
    start_epoch, history = 0, []
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, map_location=args.device)
        # A setting newer than the checkpoint had its default then (e.g. no gradient penalty);
        # epochs may be extended; the speed switches change no result, so they may change too.
        same_speed = {key: getattr(train_config, key) for key in ("precision", "channels_last", "compile")}
        saved_train = dataclasses.asdict(TrainConfig()) | dict(state["train_config"], epochs=train_config.epochs, **same_speed)
        saved = {"model": state["model_config"], "train": saved_train, "run": state["run"]}
        wanted = {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_config), "run": run}
        if changed := differences(saved, wanted):
            print(f"error: {checkpoint} belongs to a run with other settings ({'; '.join(changed)}); "
                  "pass those, another --out, or delete that folder", file=sys.stderr)
            return 2
        start_epoch, history = resume(state, model, optimizers), state["history"]
        if start_epoch >= train_config.epochs and (args.out / "metrics.json").exists():
            print(f"{checkpoint} has finished all {train_config.epochs} epochs and is scored; nothing to do")
            return 0
        print(f"resuming {checkpoint} after epoch {start_epoch}/{train_config.epochs}")

    likelihood = model_config.decoder.likelihood
    train_set = ImageDataset(train_images, train_labels, likelihood=likelihood, binarize=train_config.binarize)
    train_batches = DataLoader(train_set, batch_size=train_config.batch_size, shuffle=True, drop_last=True)
    val_batches = DataLoader(ImageDataset(*splits.validation, likelihood=likelihood), batch_size=500)
    labelled_batches = None
    if labelled is not None:
        labelled_set = ImageDataset(train_images[labelled], train_labels[labelled], likelihood=likelihood,
                                    binarize=train_config.binarize, shift=train_config.label_shift,
                                    rotation=train_config.label_rotation)
        labelled_batches = DataLoader(labelled_set, batch_size=min(train_config.batch_size, len(labelled_set)), shuffle=True, drop_last=True)
    if start_epoch < train_config.epochs:  # scores of fewer epochs no longer describe the run
        (args.out / "metrics.json").unlink(missing_ok=True)
    speed = resolve(train_config, torch.device(args.device))
    saver = SaveEveryEpoch(checkpoint, model, optimizers, train_config, run, history, speed=speed)
    callbacks = [LearningRateSchedule(optimizers, train_config), PrintProgress(train_config.epochs), saver]
    fast = accelerated(model, speed, torch.device(args.device))
    started, epoch_s = time.perf_counter(), 0.0
    for epoch in range(start_epoch, train_config.epochs):
        if args.time_limit and epoch > start_epoch and time.perf_counter() - started + epoch_s > args.time_limit * 60:
            print(f"stopped after epoch {epoch}/{train_config.epochs} (--time-limit {args.time_limit:g} min); "
                  "run the same command again to go on")
            return 0
        epoch_started = time.perf_counter()
        fit(fast, optimizers, train_batches, epochs=epoch + 1, start_epoch=epoch, val_batches=val_batches,
            labelled_batches=labelled_batches, callbacks=callbacks, device=args.device,
            gradient_penalty=train_config.gradient_penalty)
        epoch_s = time.perf_counter() - epoch_started

    state = load_checkpoint(checkpoint, map_location=args.device)
    model.load_state_dict(state["model"])
    model.eval()
    metrics: dict[str, Any] = {
        "device": device_name(torch.device(args.device)), **run, "prior": args.prior, "dim": args.dim,
        "conditioning": model_config.decoder.conditioning, "autoregressive": model_config.decoder.autoregressive,
        "categorical_code": model_config.encoder.categorical_code, "logit_scale": model_config.encoder.logit_scale,
        "set": sizes_set(args.set),  # the profile's model sizes this run changed
        "gradient_penalty": train_config.gradient_penalty, "label_shift": train_config.label_shift,
        "label_rotation": train_config.label_rotation, "lr_schedule": train_config.lr_schedule,
        "seed": args.seed, "epochs": state["epoch"], "speed": state.get("speed"),
        "train_time_s": sum(epoch["epoch_time_s"] for epoch in state["history"]),
        "last_epoch": state["metrics"],
    }
    if splits.test is not None:
        metrics["test"] = scores(model, splits, labelled is not None, args.posterior_draws, args.device)
    if args.samples:
        write_figure(model, args.out / "figure.png", args.samples, args.seed, args.device)
    write_json(args.out / "metrics.json", metrics)  # last: its presence marks the run done
    print(f"wrote {args.out}/metrics.json: {metrics.get('test', metrics['last_epoch'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
