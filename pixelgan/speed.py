"""Making the training step fast without changing what it computes.

Three switches of ``TrainConfig``, each applied by wrapping the model's parts, so that the
phases in ``objective`` stay as they are:

- ``precision: bf16``: every part's forward runs under ``torch.autocast`` in bfloat16; the
  losses are computed in float32 from its outputs, and the weights and optimizer states stay
  float32 (mixed precision, not a bf16 model);
- ``channels_last``: weights and activations in NHWC, the layout oneDNN and cuDNN prefer;
- ``compile``: ``torch.compile`` of each part, in its default mode: CUDA graphs
  (``reduce-overhead``) would let the discriminator's second call in a step overwrite the
  outputs of its first before their backward pass.

``auto``, the default of ``precision`` and ``channels_last``, is resolved where the step runs
(``resolve``), by what the training-step benchmark measured (benchmarks/results/, docs/speed.md):
bf16 only on an x86 CPU that computes it (avx512_bf16 or AMX), as emulated bf16 is far slower
than fp32 and a GPU's step at these sizes is bound by kernel launches, where autocast's casts
only add work; channels-last only beside bf16 on such a CPU, the one place it paid.
``compile`` has no ``auto``: its compiling costs more than it saves in the pipeline's short runs.

The causal convolutions already spend no FLOPs on masked-out taps (``layers``).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pixelgan.config import TrainConfig
from pixelgan.model import PixelGAN

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo's names
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what a result table prints


@dataclasses.dataclass(frozen=True)
class Speed:
    """The switches as resolved on one device: what a run records beside its metrics."""

    precision: Literal["fp32", "bf16"]
    channels_last: bool
    compile: bool


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


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them, or None where that file cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return None


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _x86_cpu_bf16() -> bool | None:
    """Whether this x86 CPU has bf16 instructions (avx512_bf16 or AMX): torch's own probes,
    else /proc/cpuinfo; None where neither can tell."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    found = [probe for probe in probes if probe is not None]
    if found:
        return any(probe() for probe in found)
    flags = cpu_flags()
    return None if flags is None else bool(flags & NATIVE_BF16_FLAGS)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware, so that autocast to it pays."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and _x86() and _x86_cpu_bf16() is True


def emulates_bf16(device: torch.device) -> bool:
    """Whether ``device`` is an x86 CPU known to lack bf16 instructions, where oneDNN emulates
    bf16 and a step runs slower than in fp32. Where nothing can tell: no."""
    return device.type == "cpu" and _x86() and _x86_cpu_bf16() is False


def resolve(config: TrainConfig, device: torch.device) -> Speed:
    """The switches of ``config`` for a step on ``device``, ``auto`` decided (module docstring).
    An explicit bf16 stays bf16, with a warning where the CPU emulates it."""
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cpu" and native_bf16(device) else "fp32"
    elif precision == "bf16" and emulates_bf16(device):
        warnings.warn(
            "train.precision=bf16 on a CPU without avx512_bf16 or AMX: bf16 is emulated here and a step "
            "runs slower than in fp32; train.precision=auto (the default) or fp32 is faster",
            stacklevel=2,
        )
    channels_last = config.channels_last
    if channels_last == "auto":
        channels_last = precision == "bf16" and device.type == "cpu"
    return Speed(precision, channels_last, config.compile)


def accelerated(model: PixelGAN, speed: Speed, device: torch.device) -> PixelGAN:
    """A view of ``model`` (same parameters) whose parts run as ``speed`` says."""
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)

    def wrap(part: nn.Module) -> nn.Module:
        if speed.precision == "bf16":
            part = Autocast(part, device.type, torch.bfloat16)
        if speed.compile:
            part = torch.compile(part)
        return part

    return model.with_parts(wrap) if speed.precision != "fp32" or speed.compile else model


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


def flags_line(device: torch.device) -> str:
    """The CPU flags that decide the speed switches, yes or no each, for a table's header."""
    if device.type == "cuda":
        return f"bf16: {'yes' if native_bf16(device) else 'no'}"
    flags = cpu_flags()
    if flags is None:
        return "CPU flags: unknown (no /proc/cpuinfo)"
    return "CPU flags: " + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in REPORTED_FLAGS)


def machine_kind(device: torch.device) -> str:
    """A file-name slug for the kind of machine: the GPU, or the CPU model and its widest
    vector unit, so that two AMD EPYC generations get tables of their own."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        flags = cpu_flags() or frozenset()
        unit = next((flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if flag in flags), platform.machine())
        name = f"{device_name(device).split(' (')[0]} {unit}"
    return "-".join("".join(c if c.isalnum() or c == "_" else " " for c in name.lower()).split())
