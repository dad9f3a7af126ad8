"""Builders shared by the tests."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from pixelgan.checkpoint import checkpoint_state, save_checkpoint
from pixelgan.config import (
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    ImageConfig,
    ModelConfig,
    PriorConfig,
)
from pipeline.params import REPO
from pixelgan.__main__ import main
from pixelgan.model import PixelGAN


# The same shrunk model as `conf/` overrides, for the pipeline's stages.
TINY_MODEL_OVERRIDES = [
    "model.encoder.channels=[8,16]",
    "model.encoder.hidden=32",
    "model.encoder.noise_dim=4",
    "model.decoder.channels=8",
    "model.decoder.n_layers=2",
    "model.decoder.head_channels=8",
    "model.decoder.map_channels=4",
    "model.discriminator.hidden=[16,16]",
]


def tiny_model_config(
    *,
    image: ImageConfig = ImageConfig(1, 8, 8),
    prior: PriorConfig = PriorConfig("gaussian", 3),
    **decoder: object,
) -> ModelConfig:
    """The real model, shrunk so that a CPU test runs in milliseconds."""
    decoder_config = dataclasses.replace(
        DecoderConfig(channels=8, n_layers=2, head_channels=8, map_channels=4), **decoder
    )
    return ModelConfig(
        image=image,
        prior=prior,
        encoder=EncoderConfig(channels=(8, 16), hidden=32, noise_dim=4),
        decoder=decoder_config,
        discriminator=DiscriminatorConfig(hidden=(16, 16)),
    )


def cli_run(out: Path, data: Path, *overrides: str, time_limit: float = 0) -> int:
    """``python -m pixelgan`` into ``out``: the tiny model on scikit-learn's digits under
    ``data`` (prepared there if missing), small figures, ``overrides`` last."""
    digits = ["dataset=digits", "dataset.validation_size=180", "dataset.test_size=180", f"paths.data={data}"]
    small = ["eval.posterior_draws=2", "eval.figure_rows=2", "eval.figure_columns=2"]
    limit = ["--time-limit", str(time_limit)] if time_limit else []
    return main(["--out", str(out), *limit, *digits, *TINY_MODEL_OVERRIDES, *small, *overrides])


def repo_copy(destination: Path) -> Path:
    """The repository's files as a fresh clone would have them (tracked or not ignored)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    return destination


def run(cwd: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def save_run(path: Path, model: PixelGAN) -> Path:
    """A run folder holding ``model``'s checkpoint, as the scripts read one."""
    path.mkdir()
    save_checkpoint(path / "checkpoint.pt", checkpoint_state(model, epoch=0))
    return path
