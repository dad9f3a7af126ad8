"""Named sizes of the model and its training, read from the repository's `conf/`.

`conf/model/<profile>.yaml` and `conf/train/<profile>.yaml` are the one source of truth for
the `cpu` and `paper` profiles; the pipeline composes them with Hydra, and the one-process
entry point and the benchmarks read the same files here with plain YAML (no Hydra needed,
so a bare GPU machine runs them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from pixelgan.config import ConfigError, ImageConfig, ModelConfig, PriorConfig, TrainConfig, from_dict

CONF = Path(__file__).resolve().parents[1] / "conf"
PROFILES = ("cpu", "paper")


def _read(group: str, profile: str) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    path = CONF / group / f"{profile}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: missing (profiles are read from the repository's conf/)")
    return yaml.safe_load(path.read_text()) or {}


def model_config(
    profile: str, prior: PriorConfig, image: ImageConfig, changes: dict[str, dict[str, Any]] | None = None
) -> ModelConfig:
    """The profile's model sizes for this prior and image shape; ``changes`` maps a part
    (encoder, decoder, discriminator) to the keys to change in it."""
    sizes = _read("model", profile)
    for part, keys in (changes or {}).items():
        if part not in ("encoder", "decoder", "discriminator"):
            raise ConfigError(f"{part}.*: not a part of the model (encoder, decoder, discriminator)")
        sizes[part] = dict(sizes.get(part) or {}, **keys)
    return from_dict(ModelConfig, dict(sizes, image=dataclasses.asdict(image), prior=dataclasses.asdict(prior)))


def train_config(profile: str, **changes: Any) -> TrainConfig:
    """The profile's training settings (its Ray layout left out), with ``changes`` laid over."""
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    values = {key: value for key, value in _read("train", profile).items() if key in names}
    return from_dict(TrainConfig, values | changes, "train.")
