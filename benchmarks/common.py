"""What every benchmark shares: the model profiles from conf/, the device's name, the table."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pipeline.params import load_params
from pixelgan.config import ImageConfig, ModelConfig, PriorConfig, from_dict
from pixelgan.speed import device_name, flags_line, machine_kind

RESULTS = Path(__file__).resolve().parent / "results"


MNIST = ImageConfig(channels=1, height=28, width=28)


def model_config(profile: str, prior: PriorConfig = PriorConfig("categorical", 30)) -> ModelConfig:
    """The model sizes of a profile on 28x28 binarised MNIST: ``cpu``, params.yaml's; any other,
    conf/ composed with ``+experiment=<profile>``."""
    params = load_params([] if profile == "cpu" else [f"+experiment={profile}"])
    return from_dict(ModelConfig, dict(params["model"], prior=dataclasses.asdict(prior), image=dataclasses.asdict(MNIST)))


def timed(step: Callable[[], Any], device: torch.device, repeats: int = 1) -> float:
    """Seconds per call of ``step``, after one warm-up call, waiting for the device."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def write_table(name: str, device: torch.device, header: list[str], rows: list[list[Any]], notes: list[str]) -> Path:
    """Print a Markdown table and write it to benchmarks/results/<name>-<machine kind>.md: one
    table per kind of machine, the CPU flags that decide the speed switches in its header."""
    today = datetime.date.today().isoformat()
    title = f"# {name}: {device_name(device)}, torch {torch.__version__}, {today}"
    lines = [title, "", flags_line(device), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{machine_kind(device)}.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
