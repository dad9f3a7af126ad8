"""The speed switches change how fast a step runs, not what it computes."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from pixelgan import speed
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import Batch
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, train_step
from pixelgan.speed import Autocast, accelerated
from tests.helpers import tiny_model_config


def losses(mode: dict, steps: int = 4) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical_gaussian", 4, style_dim=2)))
    config = dataclasses.replace(TrainConfig(), **mode)
    optimizers = build_optimizers(model, config)
    fast = accelerated(model, config, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    batches = [Batch(torch.randint(0, 2, (16, 1, 8, 8), generator=generator).float(), torch.randint(0, 4, (16,), generator=generator))
               for _ in range(steps)]
    torch.manual_seed(2)
    return [{k: float(v) for k, v in train_step(fast, optimizers, b, b).items()} for b in batches]


def test_bf16_autocast_runs_the_parts_in_bf16_and_keeps_float32_weights() -> None:
    model = PixelGAN(tiny_model_config())
    fast = accelerated(model, TrainConfig(precision="bf16"), torch.device("cpu"))
    assert isinstance(fast.decoder, Autocast) and fast.decoder.module is model.decoder
    x = torch.randint(0, 2, (2, 1, 8, 8)).float()
    assert fast.decoder(x, torch.randn(2, 3)).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize(
    ("mode", "tolerance"),
    [({"channels_last": True}, 1e-2), ({"precision": "bf16"}, 5e-2), ({"compile": True}, 1e-2)],
    ids=["channels-last", "bf16", "compile"],
)
def test_a_fast_mode_follows_the_fp32_eager_losses(mode: dict, tolerance: float) -> None:
    import torch._inductor.config

    # Compiled code draws its own random numbers unless told to use eager's: here it must,
    # so that both runs see the same encoder noise and prior samples.
    with torch._inductor.config.patch(fallback_random=True):
        reference, fast = losses({}), losses(mode)
    for step_ref, step_fast in zip(reference, fast):
        assert step_ref.keys() == step_fast.keys()
        for name in step_ref:
            assert step_fast[name] == pytest.approx(step_ref[name], rel=tolerance, abs=tolerance), name


def test_bf16_on_a_cpu_that_emulates_it_warns_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    model = PixelGAN(tiny_model_config())
    monkeypatch.setattr(speed, "emulates_bf16", lambda device: True)
    with pytest.warns(UserWarning, match=r"train\.precision=bf16 on a CPU without avx512_bf16"):
        accelerated(model, TrainConfig(precision="bf16"), torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accelerated(model, TrainConfig(precision="fp32"), torch.device("cpu"))
        monkeypatch.setattr(speed, "emulates_bf16", lambda device: False)
        accelerated(model, TrainConfig(precision="bf16"), torch.device("cpu"))


def test_only_an_x86_cpu_lacking_bf16_instructions_counts_as_emulating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert speed.emulates_bf16(torch.device("cpu"))
    assert not speed.emulates_bf16(torch.device("cuda"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert not speed.emulates_bf16(torch.device("cpu"))
    monkeypatch.setattr(speed.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not speed.emulates_bf16(torch.device("cpu"))
    monkeypatch.setattr(speed.platform, "machine", lambda: "x86_64")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert not speed.emulates_bf16(torch.device("cpu")), "a torch without the probes cannot tell: no warning"
