"""The speed switches change how fast a step runs, not what it computes; ``auto`` picks them
by what the hardware computes natively."""

from __future__ import annotations

import dataclasses
import platform
import warnings
from pathlib import Path

import pytest
import torch

from pixelgan import speed
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, train_step
from pixelgan.speed import Autocast, Speed, accelerated, resolve
from tests.helpers import tiny_model_config

CPU = torch.device("cpu")
LABELLED = 16  # labelled images a step: an accuracy over them moves in steps of 1/16
# The optimizers do not step: every phase of a step then meets the same weights in both runs,
# so what is compared is the function a mode computes (losses, gradients), not two training
# paths. Over several steps Adam's first updates (lr * sign(g)) turn a rounding-level
# difference in a near-zero gradient into a whole step, which is what made the earlier 4-step
# comparison fail under load on one CPU and pass on another.
# What each mode may change, from the arithmetic it changes:
# - channels-last and compile reorder float32 sums: at most about n * eps_fp32 relative for a
#   sum of n terms, n ~ 8,000 here (a batch of 16 8x8 images, 8 channels): 1e-3;
# - bf16 rounds each part's inputs and weights to 8 significant bits (unit roundoff 2^-8):
#   a loss may move by a few of those, so 16 * 2^-8 = 0.0625 relative; its gradients through
#   the batch-normalised categorical head lose more of their length than of their direction,
#   so they are held to pointing the same way (cosine >= 0.95 per part; 0.987 worst measured).
FP32_REORDERING = 1e-3
BF16_LOSS = 16 * 2**-8
BF16_GRADIENT_COSINE = 0.95


def one_step(mode: dict, batch_seed: int, device: torch.device = CPU) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """The losses of every phase of one step, and each part's gradient after it, from the
    same (unmoving) weights and noise."""
    torch.manual_seed(0)
    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical_gaussian", 4, style_dim=2))).to(device)
    config = dataclasses.replace(TrainConfig(precision="fp32", channels_last=False), **mode)
    optimizers = build_optimizers(model, config)
    for optimizer in vars(optimizers).values():
        optimizer.step = lambda *args, **kwargs: None  # the weights stay where both runs began
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 on a CPU that emulates it: slow, and still tested
        fast = accelerated(model, resolve(config, device), device)
    generator = torch.Generator().manual_seed(batch_seed)
    batch = Batch(torch.randint(0, 2, (LABELLED, 1, 8, 8), generator=generator).float().to(device),
                  torch.randint(0, 4, (LABELLED,), generator=generator).to(device))
    torch.manual_seed(2)
    losses = {k: float(v) for k, v in train_step(fast, optimizers, batch, batch).items()}
    gradients: dict[str, list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():  # none and zero alike: compile returns zeros for a part a phase left out
        grad = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        gradients.setdefault(".".join(name.split(".")[:2]), []).append(grad.float().flatten().cpu())
    return losses, {part: torch.cat(grads) for part, grads in gradients.items()}


def test_bf16_autocast_runs_the_parts_in_bf16_and_keeps_float32_weights() -> None:
    model = PixelGAN(tiny_model_config())
    fast = accelerated(model, Speed("bf16", channels_last=False, compile=False), CPU)
    assert isinstance(fast.decoder, Autocast) and fast.decoder.module is model.decoder
    x = torch.randint(0, 2, (2, 1, 8, 8)).float()
    assert fast.decoder(x, torch.randn(2, 3)).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("mode", [{"channels_last": True}, {"precision": "bf16"}, {"compile": True}],
                         ids=["channels-last", "bf16", "compile"])
def test_a_fast_mode_computes_the_fp32_eager_step(mode: dict) -> None:
    assert_computes_fp32_eager_step(mode, CPU)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", [{"precision": "bf16"}, {"compile": True}], ids=["bf16", "compile"])
def test_on_a_gpu_a_fast_mode_computes_the_fp32_eager_step(mode: dict) -> None:
    """Also every phase of a compiled step: the discriminator is called twice a step, which
    CUDA graphs (``reduce-overhead``) broke."""
    assert_computes_fp32_eager_step(mode, torch.device("cuda"))


def assert_computes_fp32_eager_step(mode: dict, device: torch.device) -> None:
    import torch._inductor.config

    bf16 = mode.get("precision") == "bf16"
    for batch_seed in range(2):
        # Compiled code draws its own random numbers unless told to use eager's: here it must,
        # so that both runs see the same encoder noise and prior samples.
        with torch._inductor.config.patch(fallback_random=True):
            (reference, reference_grads), (fast, fast_grads) = one_step({}, batch_seed, device), one_step(mode, batch_seed, device)
        assert reference.keys() == fast.keys() and reference_grads.keys() == fast_grads.keys()
        tolerance = BF16_LOSS if bf16 else FP32_REORDERING
        for name in reference.keys() - {"sup_acc"}:
            assert fast[name] == pytest.approx(reference[name], rel=tolerance), name
        # An accuracy counts images: a rounding may flip one of them, never two.
        assert abs(fast["sup_acc"] - reference["sup_acc"]) <= 1 / LABELLED + 1e-6
        for part, gradient in reference_grads.items():
            if not gradient.any():
                assert not fast_grads[part].any(), part
            elif bf16:
                cosine = torch.nn.functional.cosine_similarity(fast_grads[part].double(), gradient.double(), dim=0)
                assert cosine >= BF16_GRADIENT_COSINE, (part, float(cosine))
            else:
                assert (fast_grads[part] - gradient).norm() <= FP32_REORDERING * gradient.norm(), part


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "no-bf16"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_takes_bf16_only_on_a_cpu_that_computes_it(
    native: bool, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU stays in fp32 even where it has bf16: at these models' sizes autocast made the
    step slower there (docs/speed.md)."""
    monkeypatch.setattr(speed, "native_bf16", lambda _: native)
    monkeypatch.setattr(speed, "emulates_bf16", lambda _: device == "cpu" and not native)
    resolved = resolve(TrainConfig(), torch.device(device))
    assert resolved.precision == ("bf16" if native and device == "cpu" else "fp32")
    assert resolved.channels_last == (native and device == "cpu"), "channels-last only beside bf16 on a CPU"
    assert not resolved.compile
    forced = resolve(TrainConfig(precision="fp32", channels_last=True, compile=True), torch.device(device))
    assert forced == Speed("fp32", channels_last=True, compile=True), "an explicit choice is kept"


def test_bf16_asked_for_on_a_cpu_that_emulates_it_warns_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "emulates_bf16", lambda device: True)
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match=r"train\.precision=bf16 on a CPU without avx512_bf16"):
        assert resolve(TrainConfig(precision="bf16"), CPU).precision == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(TrainConfig(precision="auto"), CPU).precision == "fp32"
        resolve(TrainConfig(precision="fp32"), CPU)
        monkeypatch.setattr(speed, "emulates_bf16", lambda device: False)
        resolve(TrainConfig(precision="bf16"), CPU)


def test_only_an_x86_cpu_lacking_bf16_instructions_counts_as_emulating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert speed.emulates_bf16(CPU) and not speed.native_bf16(CPU)
    assert not speed.emulates_bf16(torch.device("cuda"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert not speed.emulates_bf16(CPU) and speed.native_bf16(CPU)
    monkeypatch.setattr(speed.platform, "machine", lambda: "arm64")
    assert not speed.emulates_bf16(CPU) and not speed.native_bf16(CPU), "unmeasured: fp32, no warning"


def test_without_torch_probes_the_flags_of_proc_cpuinfo_decide(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(speed.platform, "machine", lambda: "x86_64")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    cpuinfo, read = tmp_path / "cpuinfo", speed.cpu_flags
    monkeypatch.setattr(speed, "cpu_flags", lambda: read(cpuinfo))
    for flags, native in [("fpu avx2 fma", False), ("fpu avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16 amx_tile", True)]:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert speed.native_bf16(CPU) is native and speed.emulates_bf16(CPU) is not native, flags
    cpuinfo.unlink()
    assert not speed.native_bf16(CPU) and not speed.emulates_bf16(CPU), "nothing tells: fp32, no warning"


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or speed.cpu_flags() is None,
    reason="needs an x86 CPU and a readable /proc/cpuinfo",
)
def test_the_real_detection_agrees_with_proc_cpuinfo() -> None:
    """torch's own probes, which ``native_bf16`` asks first, against the flags Linux lists."""
    flags = speed.cpu_flags()
    assert flags is not None and "fpu" in flags, "the flags line was found and split"
    listed = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert speed.native_bf16(CPU) is listed
    assert speed.emulates_bf16(CPU) is not listed
    assert resolve(TrainConfig(), CPU).precision == ("bf16" if listed else "fp32")


def test_machine_kinds_part_cpus_of_one_name_by_their_vector_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "device_name", lambda device: "AMD EPYC (2 cores), 2 threads")
    kinds = {}
    for flags in ("avx2", "avx2 avx512f avx512_bf16", "avx2 avx512f avx512_bf16 amx_bf16"):
        monkeypatch.setattr(speed, "cpu_flags", lambda flags=flags: frozenset(flags.split()))
        kinds[flags] = speed.machine_kind(CPU)
        assert ("avx512_bf16 yes" in speed.flags_line(CPU)) == ("avx512_bf16" in flags)
    assert kinds == {"avx2": "amd-epyc-avx2", "avx2 avx512f avx512_bf16": "amd-epyc-avx512_bf16",
                     "avx2 avx512f avx512_bf16 amx_bf16": "amd-epyc-amx_bf16"}
