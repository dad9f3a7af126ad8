"""Making the training step fast without changing what it computes.

Three switches of ``TrainConfig``, each applied by wrapping the model's parts, so that the
phases in ``objective`` stay as they are:

- ``precision: bf16``: every part's forward runs under ``torch.autocast`` in bfloat16 (CPUs
  with avx512_bf16 or AMX, and GPUs); the losses are computed in float32 from its outputs,
  and the weights and optimizer states stay float32 (mixed precision, not a bf16 model);
- ``channels_last``: weights and activations in NHWC, the layout oneDNN and cuDNN prefer;
- ``compile``: ``torch.compile`` of each part (on a GPU with ``mode=reduce-overhead``, which
  captures CUDA graphs: every training batch has the same shape).

The causal convolutions already spend no FLOPs on masked-out taps (``layers``).
"""

from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelgan.config import TrainConfig
from pixelgan.model import PixelGAN


class Autocast(nn.Module):
    """A part whose forward runs under autocast to ``dtype``."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(*args, **kwargs)


def emulates_bf16(device: torch.device) -> bool:
    """Whether ``device`` is an x86 CPU without avx512_bf16 or AMX, where oneDNN emulates
    bf16 and a step runs slower than in fp32 (0.64x on a 2-core Intel Xeon: README, Speed).
    A torch without the (private) probes cannot tell: then no."""
    if device.type != "cpu" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    found = [probe for probe in probes if probe is not None]
    return bool(found) and not any(probe() for probe in found)


def accelerated(model: PixelGAN, config: TrainConfig, device: torch.device) -> PixelGAN:
    """A view of ``model`` (same parameters) whose parts run as ``config`` asks."""
    if config.precision == "bf16" and emulates_bf16(device):
        warnings.warn(
            "train.precision=bf16 on a CPU without avx512_bf16 or AMX: bf16 is emulated here and a step "
            "runs slower than in fp32; train.precision=fp32 (python -m pixelgan --precision fp32) is faster",
            stacklevel=2,
        )
    if config.channels_last:
        model.to(memory_format=torch.channels_last)

    def wrap(part: nn.Module) -> nn.Module:
        if config.precision == "bf16":
            part = Autocast(part, device.type, torch.bfloat16)
        if config.compile:
            part = torch.compile(part, mode="reduce-overhead" if device.type == "cuda" else None)
        return part

    return model.with_parts(wrap) if config.precision != "fp32" or config.compile else model


def device_name(device: torch.device) -> str:
    """The machine's name for result tables: the GPU's, or the CPU's model and cores."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model} ({os.cpu_count()} cores), {torch.get_num_threads()} threads"
