"""Bad configurations fail when built, with a message that names the field."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pixelgan.config import (
    ConfigError,
    DatasetConfig,
    DecoderConfig,
    EncoderConfig,
    ImageConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
    from_dict,
)


@pytest.mark.parametrize(
    "build,field",
    [
        (lambda: PriorConfig(kind="laplace"), "prior.kind"),
        (lambda: PriorConfig(kind="gaussian", dim=0), "prior.dim"),
        (lambda: PriorConfig(kind="categorical", dim=1), "prior.dim"),
        (lambda: PriorConfig(kind="categorical_gaussian", dim=10, style_dim=0), "prior.style_dim"),
        (lambda: DecoderConfig(kernel_size=4), "decoder.kernel_size"),
        (lambda: DecoderConfig(conditioning="everywhere"), "decoder.conditioning"),
        (lambda: DecoderConfig(likelihood="gaussian"), "decoder.likelihood"),
        (lambda: EncoderConfig(channels=()), "encoder.channels"),
        (lambda: ModelConfig(image=ImageConfig(1, 8, 8), decoder=DecoderConfig(n_layers=7)), "decoder.n_layers"),
        (lambda: TrainConfig(lr_generator=0.0), "train.lr_generator"),
        (lambda: TrainConfig(softening="frozen"), "train.softening"),
        (lambda: TrainConfig(marginal_entropy=-1.0), "train.marginal_entropy"),
        (lambda: TrainConfig(encoder_optimizer="one"), "train.encoder_optimizer"),
        (lambda: EncoderConfig(input_noise=-0.1), "encoder.input_noise"),
        (lambda: EncoderConfig(input_dropout=1.0), "encoder.input_dropout"),
        (lambda: TrainConfig(binarize="maybe"), "train.binarize"),
        (lambda: TrainConfig(gradient_penalty=-1.0), "train.gradient_penalty"),
        (lambda: TrainConfig(label_shift=-1), "train.label_shift"),
        (lambda: TrainConfig(label_rotation=-5), "train.label_rotation"),
        (lambda: TrainConfig(label_rotation=270), "train.label_rotation"),
        (lambda: TrainConfig(lr_schedule="linear"), "train.lr_schedule"),
        (lambda: TrainConfig(gradient_penalty=1.0, compile=True), "train.compile"),
        (lambda: TrainConfig(precision="fp16"), "train.precision"),
        (lambda: TrainConfig(channels_last="sometimes"), "train.channels_last"),
        (lambda: TrainConfig(channels_last=1), "train.channels_last"),
        (lambda: DatasetConfig(validation_size=1), "dataset.validation_size=1 must be >= 2"),
    ],
)
def test_a_bad_value_names_its_field(build, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


def test_the_receptive_field_limit_is_the_first_depth_that_sees_everything() -> None:
    image = ImageConfig(1, 8, 8)
    enough = DecoderConfig().layers_to_cover(8, 8)
    ModelConfig(image=image, decoder=DecoderConfig(n_layers=enough))
    with pytest.raises(ConfigError, match="receptive field exceeds the image"):
        ModelConfig(image=image, decoder=DecoderConfig(n_layers=enough + 1))


def test_images_of_another_shape_are_refused_by_field() -> None:
    config = ModelConfig()
    config.check_images((10, 1, 28, 28))
    with pytest.raises(ConfigError, match=r"image\.channels=1 but train\.parquet has 3"):
        config.check_images((10, 3, 28, 28), source="train.parquet")
    with pytest.raises(ConfigError, match=r"image\.height=28 but data has 32"):
        config.check_images((10, 1, 32, 28))


def test_from_dict_builds_nested_configs_and_refuses_unknown_keys() -> None:
    config = from_dict(ModelConfig, {"prior": {"kind": "categorical", "dim": 30}, "encoder": {"channels": [8, 16]}})
    assert config.prior.code_dim == 30 and config.encoder.channels == (8, 16)
    assert from_dict(ModelConfig, dataclasses.asdict(config)) == config
    with pytest.raises(ConfigError, match=r"unknown option prior\.size"):
        from_dict(ModelConfig, {"prior": {"size": 3}})
    with pytest.raises(ConfigError, match=r"decoder\.n_layers must be int"):
        from_dict(ModelConfig, {"decoder": {"n_layers": "four"}})
    for bad in (32.5, True, "64"):
        with pytest.raises(ConfigError, match=r"encoder\.channels\[1\] must be int"):
            from_dict(ModelConfig, {"encoder": {"channels": [8, bad]}})


def test_code_sizes_follow_the_prior() -> None:
    assert PriorConfig("gaussian", 5).code_dim == 5
    assert PriorConfig("categorical", 30).code_dim == 30
    mixed = PriorConfig("categorical_gaussian", 10, 5)
    assert (mixed.categories, mixed.gaussian_dim, mixed.code_dim) == (10, 5, 15)


def test_the_default_config_builds_a_model_for_28x28_mnist() -> None:
    from pixelgan.model import PixelGAN

    model = PixelGAN(ModelConfig())
    x = torch.randint(0, 2, (2, 1, 28, 28)).float()
    assert model.decoder(x, model.encoder(x).code).shape == (2, 1, 28, 28)


def test_the_library_imports_no_pipeline_framework() -> None:
    """Every module of `pixelgan` but its command line loads without the pipeline, Hydra,
    OmegaConf, Ray or DVC: the library takes dataclasses and nothing else."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    modules = sorted(".".join(path.relative_to(root).with_suffix("").parts) for path in (root / "pixelgan").rglob("*.py")
                     if path.name not in ("__init__.py", "__main__.py"))
    check = ("import importlib, sys\n"
             f"for name in {modules!r}: importlib.import_module(name)\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'pipeline', 'hydra', 'omegaconf', 'ray', 'dvc', 'yaml'}))")
    found = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
    assert len(modules) > 20 and found.strip() == "[]", found
