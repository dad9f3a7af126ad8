"""The conditional PixelCNN: causality, no blind spot, the receptive field, conditioning."""

from __future__ import annotations

import itertools

import pytest
import torch

from pixelgan.config import ImageConfig
from pixelgan.decoder import PixelCNNDecoder, negative_log_likelihood
from tests.helpers import tiny_model_config

CONDITIONINGS = ["location_independent", "location_dependent"]


def make_decoder(channels: int, likelihood: str, conditioning: str, size: int = 7, n_layers: int = 2, kernel_size: int = 3) -> PixelCNNDecoder:
    config = tiny_model_config(
        image=ImageConfig(channels, size, size),
        likelihood=likelihood,
        conditioning=conditioning,
        n_layers=n_layers,
        kernel_size=kernel_size,
    )
    return PixelCNNDecoder(config.image, config.decoder, config.prior.code_dim).double()


def input_gradients(decoder: PixelCNNDecoder) -> dict[tuple[int, int, int], torch.Tensor]:
    """For every output sub-pixel (c, i, j), which input sub-pixels its logit depends on.

    The input is a float tensor so that it can carry a gradient; the decoder's input scaling
    is affine, so which entries are zero does not depend on it.
    """
    image = decoder.image
    x = torch.rand(1, image.channels, image.height, image.width, dtype=torch.float64, requires_grad=True)
    z = torch.randn(1, 3, dtype=torch.float64)
    logits = decoder(x, z)
    if logits.dim() == 5:
        logits = logits[:, 7]  # one of the 256 values; all share the same dependencies
    found = {}
    for c, i, j in itertools.product(range(image.channels), range(image.height), range(image.width)):
        (grad,) = torch.autograd.grad(logits[0, c, i, j], x, retain_graph=True)
        found[c, i, j] = grad[0] != 0
    return found


def before(c: int, i: int, j: int, c2: int, i2: int, j2: int) -> bool:
    """Is sub-pixel (c2, i2, j2) generated before (c, i, j)? Raster order, then R, G, B."""
    return (i2, j2, c2) < (i, j, c)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("channels,likelihood", [(1, "bernoulli"), (3, "categorical")])
def test_no_logit_sees_its_own_or_a_later_subpixel(channels: int, likelihood: str, conditioning: str) -> None:
    decoder = make_decoder(channels, likelihood, conditioning)
    for (c, i, j), depends in input_gradients(decoder).items():
        for c2, i2, j2 in zip(*torch.nonzero(depends, as_tuple=True)):
            assert before(c, i, j, int(c2), int(i2), int(j2)), f"{(c, i, j)} sees {(int(c2), int(i2), int(j2))}"


@pytest.mark.parametrize("channels,likelihood", [(1, "bernoulli"), (3, "categorical")])
def test_a_deep_enough_decoder_has_no_blind_spot(channels: int, likelihood: str) -> None:
    config = tiny_model_config(image=ImageConfig(channels, 7, 7), kernel_size=3)
    n_layers = config.decoder.layers_to_cover(7, 7)
    decoder = make_decoder(channels, likelihood, "location_independent", n_layers=n_layers)
    for (c, i, j), depends in input_gradients(decoder).items():
        for c2, i2, j2 in itertools.product(range(channels), range(7), range(7)):
            if before(c, i, j, c2, i2, j2):
                assert depends[c2, i2, j2], f"{(c, i, j)} is blind to earlier {(c2, i2, j2)}"


@pytest.mark.parametrize("n_layers,kernel_size", [(1, 3), (2, 3), (1, 5)])
def test_the_receptive_field_is_what_the_config_says(n_layers: int, kernel_size: int) -> None:
    decoder = make_decoder(1, "bernoulli", "location_independent", size=14, n_layers=n_layers, kernel_size=kernel_size)
    rows_above, columns = decoder.config.receptive_field
    for (_, i, j), depends in input_gradients(decoder).items():
        for i2, j2 in itertools.product(range(14), range(14)):
            if i2 < i:
                expected = i - i2 <= rows_above and abs(j - j2) <= columns
            elif i2 == i:
                expected = j2 < j and j - j2 <= columns + 1
            else:
                expected = False
            assert bool(depends[0, i2, j2]) == expected, f"pixel {(i, j)} and input {(i2, j2)}"


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_changing_the_code_changes_every_logit(conditioning: str) -> None:
    decoder = make_decoder(1, "bernoulli", conditioning)
    x = torch.randint(0, 2, (2, 1, 7, 7)).double()
    z = torch.randn(2, 3, dtype=torch.float64)
    changed = decoder(x, z) != decoder(x, z + 0.5)
    assert changed.all()


def test_the_location_dependent_map_has_the_image_size() -> None:
    for size in (7, 8, 28):
        decoder = make_decoder(1, "bernoulli", "location_dependent", size=size)
        condition = decoder.condition(torch.randn(5, 3, dtype=torch.float64))
        assert condition.shape == (5, decoder.config.map_channels, size, size)
        assert condition.std(dim=(2, 3)).min() > 0, "the map varies across positions"


def test_the_location_independent_code_is_one_bias_per_channel() -> None:
    decoder = make_decoder(1, "bernoulli", "location_independent")
    assert decoder.condition(torch.randn(5, 3)).shape == (5, 3, 1, 1)


def test_nll_is_in_nats_per_image() -> None:
    # Logits of zero put probability 1/2 on each binary pixel and 1/256 on each 8-bit value.
    binary = torch.randint(0, 2, (4, 1, 5, 6)).float()
    assert torch.allclose(negative_log_likelihood(torch.zeros(4, 1, 5, 6), binary), torch.full((4,), 30 * torch.log(torch.tensor(2.0))))
    levels = torch.randint(0, 256, (4, 3, 5, 6))
    expected = torch.full((4,), 90 * torch.log(torch.tensor(256.0)))
    assert torch.allclose(negative_log_likelihood(torch.zeros(4, 256, 3, 5, 6), levels), expected)


def test_the_categorical_decoder_returns_256_logits_per_subpixel() -> None:
    decoder = make_decoder(3, "categorical", "location_independent").float()
    logits = decoder(torch.randint(0, 256, (2, 3, 7, 7)), torch.randn(2, 3))
    assert logits.shape == (2, 256, 3, 7, 7)


def test_the_plain_pixelcnn_baseline_never_reads_the_code() -> None:
    decoder = PixelCNNDecoder(ImageConfig(1, 7, 7), tiny_model_config(image=ImageConfig(1, 7, 7), conditioning="none").decoder, 3)
    x = torch.randint(0, 2, (2, 1, 7, 7)).float()
    z = torch.randn(2, 3)
    assert torch.equal(decoder(x, z), decoder(x, z + 5.0))
    assert not any(layer.condition for layer in decoder.layers)


def test_the_aae_baseline_decoder_never_reads_the_pixels() -> None:
    config = tiny_model_config(image=ImageConfig(1, 7, 7), conditioning="location_dependent", autoregressive=False)
    decoder = PixelCNNDecoder(ImageConfig(1, 7, 7), config.decoder, 3)
    z = torch.randn(2, 3)
    x = torch.randint(0, 2, (2, 1, 7, 7)).float()
    assert torch.equal(decoder(x, z), decoder(1 - x, z))
    assert not torch.equal(decoder(x, z), decoder(x, z + 1.0))
    logits = decoder(x, z)
    assert logits.std(dim=(2, 3)).min() > 0, "the code's map draws a picture, not a constant"


def test_a_decoder_that_reads_no_pixels_needs_the_location_dependent_map() -> None:
    from pixelgan.config import ConfigError

    with pytest.raises(ConfigError, match="decoder.autoregressive=false"):
        tiny_model_config(autoregressive=False, conditioning="location_independent")
