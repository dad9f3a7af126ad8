"""Configuration of a PixelGAN autoencoder: typed dataclasses, validated when built.

These dataclasses are the library's only input. Every error names the field the way `conf/`
spells it (``prior.kind``, ``decoder.n_layers``), so a bad YAML value or command-line override
points at itself. ``from_dict`` builds them from plain nested dicts and refuses unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

PriorKind = Literal["gaussian", "categorical", "categorical_gaussian"]
Conditioning = Literal["location_independent", "location_dependent", "none"]
Likelihood = Literal["bernoulli", "categorical"]
Binarize = Literal["none", "threshold", "stochastic"]
CategoricalCode = Literal["softmax", "one_hot"]  # the code the decoder and D read (encoder.py)
Precision = Literal["auto", "fp32", "bf16"]  # train.precision; auto: resolved per device (speed.py)
LrSchedule = Literal["constant", "cosine"]  # train.lr_schedule (schedule.py)
EncoderOptimizer = Literal["per_phase", "shared"]  # train.encoder_optimizer (objective.py)
Softening = Literal["annealed", "held"]  # train.softening (objective.AdversarialGame)
DatasetName = Literal["mnist5k", "digits", "mnist", "svhn", "smallnorb"]


class ConfigError(ValueError):
    """A configuration value that cannot build a model or a run; the message names the field."""


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def _at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")


@dataclass(frozen=True)
class ImageConfig:
    """Shape of the images the model reads and writes."""

    channels: int = 1
    height: int = 28
    width: int = 28

    def __post_init__(self) -> None:
        _at_least("image.channels", self.channels, 1)
        _at_least("image.height", self.height, 2)
        _at_least("image.width", self.width, 2)


@dataclass(frozen=True)
class PriorConfig:
    """p(z). ``dim`` is the latent size: the Gaussian's dimension or the number of categories.

    ``style_dim`` is the size of the Gaussian style code beside the categories and is read only
    by ``categorical_gaussian`` (semi-supervised content + style).
    """

    kind: PriorKind = "gaussian"
    dim: int = 2
    style_dim: int = 5

    def __post_init__(self) -> None:
        _choice("prior.kind", self.kind, typing.get_args(PriorKind))
        if self.kind == "gaussian":
            _at_least("prior.dim", self.dim, 1)
        else:
            _at_least("prior.dim (number of categories)", self.dim, 2)
        if self.kind == "categorical_gaussian":
            _at_least("prior.style_dim", self.style_dim, 1)

    @property
    def categories(self) -> int:
        """Size of the categorical (content) part of the code; 0 for a Gaussian prior."""
        return 0 if self.kind == "gaussian" else self.dim

    @property
    def gaussian_dim(self) -> int:
        """Size of the Gaussian part of the code (the style part for categorical_gaussian)."""
        if self.kind == "gaussian":
            return self.dim
        return self.style_dim if self.kind == "categorical_gaussian" else 0

    @property
    def code_dim(self) -> int:
        """Width of the code z that the encoder emits and the decoder reads."""
        return self.categories + self.gaussian_dim


@dataclass(frozen=True)
class EncoderConfig:
    """q(z|x) as z = f(x, n): strided convs, then an MLP that also reads the noise n.

    ``batch_norm_logits`` normalises each categorical logit over the batch before
    ``logit_scale`` (encoder.py says why). ``input_noise`` (a standard deviation on the
    [-1, 1] scale) and ``input_dropout`` (the share of pixels turned off) corrupt what the
    encoder reads in training only, as the AAE does; the decoder's target stays the image.
    """

    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    noise_dim: int = 16
    stochastic: bool = True
    logit_scale: float = 3.0
    categorical_code: CategoricalCode = "softmax"
    batch_norm_logits: bool = True
    input_noise: float = 0.0
    input_dropout: float = 0.0

    def __post_init__(self) -> None:
        _choice("encoder.categorical_code", self.categorical_code, typing.get_args(CategoricalCode))
        if not self.channels:
            raise ConfigError("encoder.channels must list at least one conv width")
        if not self.logit_scale > 0:
            raise ConfigError(f"encoder.logit_scale={self.logit_scale} must be > 0")
        for width in self.channels:
            _at_least("encoder.channels[*]", width, 1)
        _at_least("encoder.hidden", self.hidden, 1)
        _at_least("encoder.noise_dim", self.noise_dim, 1 if self.stochastic else 0)
        _at_least("encoder.input_noise", self.input_noise, 0)
        if not 0 <= self.input_dropout < 1:
            raise ConfigError(f"encoder.input_dropout={self.input_dropout} must be in [0, 1)")


@dataclass(frozen=True)
class DecoderConfig:
    """The conditional gated PixelCNN p(x|z).

    Its receptive field grows with ``n_layers`` and ``kernel_size``: the Gaussian-prior
    experiments want it small, so that the code has to carry the global shape.

    The paper's two baselines are settings of this decoder: ``conditioning: none`` is a plain
    PixelCNN that never reads z, and ``autoregressive: false`` never reads x, so p(x|z)
    factorises over pixels: the adversarial autoencoder's deterministic decoder, which needs
    the location-dependent map to place anything.
    """

    channels: int = 32
    n_layers: int = 4
    kernel_size: int = 3
    head_channels: int = 32
    conditioning: Conditioning = "location_independent"
    map_channels: int = 16
    likelihood: Likelihood = "bernoulli"
    autoregressive: bool = True

    def __post_init__(self) -> None:
        _at_least("decoder.channels", self.channels, 1)
        _at_least("decoder.n_layers", self.n_layers, 0)
        _at_least("decoder.head_channels", self.head_channels, 1)
        _at_least("decoder.map_channels", self.map_channels, 1)
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ConfigError(f"decoder.kernel_size={self.kernel_size} must be odd and >= 3")
        _choice("decoder.conditioning", self.conditioning, typing.get_args(Conditioning))
        _choice("decoder.likelihood", self.likelihood, typing.get_args(Likelihood))
        if not self.autoregressive and self.conditioning != "location_dependent":
            raise ConfigError(
                f"decoder.autoregressive=false with decoder.conditioning={self.conditioning}: a "
                "decoder that reads no pixel needs the location_dependent map to draw anything"
            )

    @property
    def receptive_field(self) -> tuple[int, int]:
        """(rows above, columns to each side) of a pixel that its prediction can see.

        In its own row it sees the ``columns + 1`` pixels to its left (tests check both).
        """
        columns = (self.n_layers + 1) * (self.kernel_size // 2)
        return columns + 1, columns

    def layers_to_cover(self, height: int, width: int) -> int:
        """The fewest gated layers with which every pixel sees every earlier pixel."""
        r = self.kernel_size // 2
        return max(0, math.ceil(max(width - 1, height - 2) / r) - 1)

    @property
    def n_values(self) -> int:
        """Logits per sub-pixel: one for a Bernoulli, 256 for an 8-bit softmax."""
        return 1 if self.likelihood == "bernoulli" else 256


@dataclass(frozen=True)
class DiscriminatorConfig:
    """D(z): an MLP per part of the prior."""

    hidden: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        if not self.hidden:
            raise ConfigError("discriminator.hidden must list at least one layer width")
        for width in self.hidden:
            _at_least("discriminator.hidden[*]", width, 1)


@dataclass(frozen=True)
class ModelConfig:
    image: ImageConfig = field(default_factory=ImageConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        enough = self.decoder.layers_to_cover(self.image.height, self.image.width)
        if self.decoder.n_layers > enough:
            raise ConfigError(
                f"decoder.n_layers={self.decoder.n_layers}: the receptive field exceeds the "
                f"image; with decoder.kernel_size={self.decoder.kernel_size}, {enough} layers "
                f"already see every earlier pixel of a {self.image.height}x{self.image.width} "
                "image, and more only add cost"
            )

    def check_images(self, shape: tuple[int, ...], source: str = "data") -> None:
        """Refuse images of another shape than the model's, naming the mismatching field."""
        if len(shape) != 4:
            raise ConfigError(f"{source}: images must be (N, C, H, W), got shape {tuple(shape)}")
        _, channels, height, width = shape
        for name, got, want in (
            ("image.channels", channels, self.image.channels),
            ("image.height", height, self.image.height),
            ("image.width", width, self.image.width),
        ):
            if got != want:
                raise ConfigError(f"{name}={want} but {source} has {got}")


@dataclass(frozen=True)
class TrainConfig:
    """One run's optimisation: a learning rate per phase, as each phase has its own optimizer.

    ``batch_size`` is the global batch, split evenly over data-parallel workers.
    ``semi_supervised`` turns on the supervised phase on the labelled rows of the data;
    without it no label is ever read in training. ``gradient_penalty`` weighs the
    discriminator's zero-centred gradient penalty (``pixelgan.objective``; 0: none).
    ``instance_noise`` is the standard deviation of Gaussian noise added to every code the
    discriminator sees, prior samples and encoded codes alike, in the first epoch, falling
    linearly to none in the last (0: none).
    ``prior_temperature`` draws the categorical prior's samples that the discriminator sees
    relaxed at that temperature (Gumbel-softmax) in the first epoch, falling linearly to
    one-hot samples in the last (0: one-hot throughout; a one-epoch run keeps it, as it
    keeps its instance noise).
    ``label_shift`` moves each labelled image by up to that many pixels every time the
    supervised phase draws it (0: none): with 20 labels the head otherwise learns its two
    images of each digit as exceptions while the categories form under other digits' names.
    ``label_rotation`` turns each labelled image by up to that many degrees either way, afresh
    at every draw, before the shift (0: none): the few labelled images then cover more of the
    slants a digit is written at.
    ``softening`` ``annealed`` lets the instance noise and the prior's temperature fall as
    above; ``held`` keeps them whole to the last epoch.
    ``marginal_entropy`` weighs a term of the encoder's step as generator that raises the
    entropy of q(y|x) averaged over the batch (CatGAN, IMSAT): every category used, in
    proportion, whatever D makes of the codes (0: none); inert for a code without categories.
    ``encoder_optimizer`` ``per_phase`` gives the encoder one Adam per phase (each normalises
    its own gradient); ``shared`` one Adam for all its phases, at ``lr_reconstruction``, so
    the adversarial and reconstruction gradients are weighed against each other.
    ``lr_schedule`` is ``constant`` or ``cosine`` (every phase's rate annealed towards zero
    over ``epochs``: ``pixelgan.schedule``).
    ``precision``, ``channels_last`` and ``compile`` change how fast a step runs, not what it
    computes (``pixelgan.speed``). ``auto`` (precision, channels_last) is resolved on the device
    where the step runs, so one config suits every machine of a mixed cluster.
    """

    epochs: int = 10
    batch_size: int = 64
    lr_reconstruction: float = 1e-3
    lr_discriminator: float = 2e-4
    lr_generator: float = 2e-4
    lr_supervised: float = 1e-3
    lr_schedule: LrSchedule = "constant"
    gradient_penalty: float = 0.0
    instance_noise: float = 0.0
    prior_temperature: float = 0.0
    softening: Softening = "annealed"
    marginal_entropy: float = 0.0
    encoder_optimizer: EncoderOptimizer = "per_phase"
    label_shift: int = 0
    label_rotation: float = 0.0
    binarize: Binarize = "stochastic"
    semi_supervised: bool = False
    seed: int = 0
    precision: Precision = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        _at_least("train.epochs", self.epochs, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        for name in ("lr_reconstruction", "lr_discriminator", "lr_generator", "lr_supervised"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be > 0")
        _choice("train.lr_schedule", self.lr_schedule, typing.get_args(LrSchedule))
        _at_least("train.gradient_penalty", self.gradient_penalty, 0)
        _at_least("train.instance_noise", self.instance_noise, 0)
        _at_least("train.prior_temperature", self.prior_temperature, 0)
        _choice("train.softening", self.softening, typing.get_args(Softening))
        _at_least("train.marginal_entropy", self.marginal_entropy, 0)
        _choice("train.encoder_optimizer", self.encoder_optimizer, typing.get_args(EncoderOptimizer))
        _at_least("train.label_shift", self.label_shift, 0)
        if not 0 <= self.label_rotation <= 180:
            raise ConfigError(f"train.label_rotation={self.label_rotation} must be degrees in [0, 180]")
        _choice("train.binarize", self.binarize, typing.get_args(Binarize))
        _choice("train.precision", self.precision, typing.get_args(Precision))
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise ConfigError(f"train.channels_last={self.channels_last!r} is not one of true, false, auto")
        if self.gradient_penalty and self.compile:
            raise ConfigError(
                f"train.gradient_penalty={self.gradient_penalty} with train.compile=true: the penalty "
                "differentiates through D's gradient, which torch.compile cannot; turn one off"
            )


@dataclass(frozen=True)
class DatasetConfig:
    """Which data set, where its raw files are, and how the prepare stage splits it.

    ``root`` names a folder of the original files; without it the set is downloaded (mnist,
    svhn, smallnorb) or read from an installed package (mnist5k, digits). ``test_size`` is
    read only by sets without an official test split; ``labels`` is how many labelled images a
    semi-supervised run draws from the training split, as many of each class, by its own seed
    (``train.seed``); ``image_size`` is smallNORB's.
    """

    name: DatasetName = "mnist5k"
    root: str | None = None
    labels: int = 100
    validation_size: int = 500
    test_size: int = 500
    image_size: int = 32
    svhn_extra: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("dataset.name", self.name, typing.get_args(DatasetName))
        _at_least("dataset.labels", self.labels, 0)
        # 2: the validation clustering error names the clusters on one half and scores the other
        _at_least("dataset.validation_size", self.validation_size, 2)
        _at_least("dataset.test_size", self.test_size, 1)
        _at_least("dataset.image_size", self.image_size, 2)
        if self.labels % self.classes:
            raise ConfigError(
                f"dataset.labels={self.labels} must be a multiple of the {self.classes} classes "
                "of this data set, so that every class gets as many labels"
            )

    @property
    def classes(self) -> int:
        return 5 if self.name == "smallnorb" else 10

    def prepared_settings(self) -> dict[str, Any]:
        """What the prepare stage's files depend on: every setting but ``labels``, which each
        run draws for itself, and ``root``, which says where the source files are (the files
        record their sha256s, so the same data moved elsewhere is the same data)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("labels", "root")}


@dataclass(frozen=True)
class RunSpec:
    """One training run, as the library trains it: data set, model and optimisation."""

    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return from_dict(cls, data)


# What a run may change and stay the same run: switches that change speed, not results, and
# more epochs (a finished run trained further is that run continued).
FREE_TO_CHANGE = ("train.precision", "train.channels_last", "train.compile", "train.epochs")


def run_identity(spec: RunSpec) -> dict[str, Any]:
    """What makes two runs the same run: every setting but FREE_TO_CHANGE. A checkpoint
    records it, a resume must match it, and the pipeline names its Ray runs by it."""
    tree = spec.to_dict()
    for dotted in FREE_TO_CHANGE:
        section, name = dotted.split(".")
        del tree[section][name]
    return tree


@dataclass(frozen=True)
class EvalConfig:
    """How a trained model is scored and drawn (the `eval.*` keys)."""

    samples: int = 500
    posterior_draws: int = 8
    kmeans_restarts: int = 3
    classifier_epochs: int = 5
    figure_rows: int = 10
    figure_columns: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "posterior_draws", "kmeans_restarts", "classifier_epochs", "figure_rows", "figure_columns"):
            if getattr(self, name) < 1:
                raise ConfigError(f"eval.{name}={getattr(self, name)} must be >= 1")
        if self.samples < 2:
            raise ConfigError(f"eval.samples={self.samples}: a Fréchet distance needs at least 2 samples")


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build a config dataclass from nested plain dicts (YAML), refusing unknown keys."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        options = ", ".join(sorted(names))
        raise ConfigError(f"unknown option {prefix}{unknown[0]} (known: {options})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name} must be a mapping, got {value!r}")
            value = from_dict(kind, value, f"{prefix}{name}.")
        elif typing.get_origin(kind) is tuple:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{prefix}{name} must be a list, got {value!r}")
            item_kind = typing.get_args(kind)[0]
            for i, item in enumerate(value):
                if not _is_instance(item, item_kind):
                    raise ConfigError(f"{prefix}{name}[{i}] must be {item_kind.__name__}, got {item!r}")
            value = tuple(value)
        elif kind in (int, float, bool) and not _is_instance(value, kind):
            raise ConfigError(f"{prefix}{name} must be {kind.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _is_instance(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))
