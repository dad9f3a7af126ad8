"""Images in data form, binarisation, and the embedded MNIST-5k."""

from __future__ import annotations

import math

import pytest
import torch

from pixelgan.config import ConfigError
from pixelgan.data import ImageDataset, binarize, to_signed_unit


def test_threshold_binarisation_is_fixed_and_stochastic_follows_intensity() -> None:
    images = torch.tensor([0, 127, 128, 255], dtype=torch.uint8).repeat(20000, 1)
    assert binarize(images[:1], "threshold").tolist() == [[0.0, 0.0, 1.0, 1.0]]
    drawn = binarize(images, "stochastic", torch.Generator().manual_seed(0))
    assert torch.allclose(drawn.mean(dim=0), images[0].float() / 255, atol=0.01)
    with pytest.raises(ConfigError, match="train.binarize"):
        binarize(images, "none")


def test_both_data_forms_map_onto_minus_one_to_one() -> None:
    assert to_signed_unit(torch.tensor([0.0, 1.0])).tolist() == [-1.0, 1.0]
    assert to_signed_unit(torch.tensor([0, 255])).tolist() == [-1.0, 1.0]


def test_the_dataset_serves_the_form_the_likelihood_wants() -> None:
    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    levels = ImageDataset(images, torch.arange(4), likelihood="categorical")[2]
    assert levels.images.dtype == torch.long and torch.equal(levels.images, images[2].long())
    binary = ImageDataset(images, torch.arange(4), binarize="threshold")[2]
    assert torch.equal(binary.images, (images[2] >= 128).float())
    assert binary.labels == 2
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), torch.arange(4))
    with pytest.raises(ConfigError, match="train.binarize='none'"):
        ImageDataset(images, torch.arange(4), likelihood="bernoulli", binarize="none")


def test_a_shifted_dataset_moves_each_image_within_its_bound_afresh_at_every_draw() -> None:
    image = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    image[0, 0, 4, 4] = 255  # one lit pixel in the middle: where it lands is the shift
    shifted = ImageDataset(image, torch.zeros(1), likelihood="categorical", shift=2)
    torch.manual_seed(0)
    moves = set()
    for _ in range(200):
        drawn = shifted[0].images[0]
        assert drawn.sum() == 255, "the pixel stays in the frame, nothing else is lit"
        (row, column), = drawn.nonzero().tolist()
        moves.add((row - 4, column - 4))
    assert moves == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert torch.equal(ImageDataset(image, torch.zeros(1), likelihood="categorical")[0].images, image[0].long())


def test_a_turned_dataset_rotates_each_image_within_its_bound_afresh_at_every_draw() -> None:
    image = torch.zeros(1, 1, 21, 21, dtype=torch.uint8)
    image[0, 0, 10, 18] = 255  # one lit pixel 8 right of the centre: its bearing is the turn
    turned = ImageDataset(image, torch.zeros(1), likelihood="categorical", rotation=30)
    rows, columns = torch.meshgrid(torch.arange(21.0) - 10, torch.arange(21.0) - 10, indexing="ij")
    torch.manual_seed(0)
    bearings = []
    for _ in range(200):
        drawn = turned[0].images[0].float()
        y, x = (drawn * rows).sum() / drawn.sum(), (drawn * columns).sum() / drawn.sum()
        assert math.hypot(x, y) == pytest.approx(8, abs=0.5), "turned about the centre, not moved"
        bearings.append(math.degrees(math.atan2(y, x)))
    assert max(map(abs, bearings)) <= 30.5
    assert min(bearings) < -25 and max(bearings) > 25, "both ways, up to the bound"


def test_turn_and_shift_together_turn_about_the_centre_then_move_by_whole_pixels() -> None:
    image = torch.zeros(1, 2, 21, 21, dtype=torch.uint8)  # both channels get the same moves
    image[0, 0, 10, 10] = 255  # at the centre: a turn leaves it, so where it lands is the shift
    image[0, 1, 10, 18] = 255  # 8 right of it: its bearing from the first is the turn
    moved = ImageDataset(image, torch.zeros(1), likelihood="categorical", rotation=30, shift=2)
    rows, columns = torch.meshgrid(torch.arange(21.0) - 10, torch.arange(21.0) - 10, indexing="ij")
    torch.manual_seed(0)
    shifts, bearings = set(), []
    for _ in range(300):
        drawn = moved[0].images.float()
        (y0, y1), (x0, x1) = [((drawn * grid).sum((1, 2)) / drawn.sum((1, 2))).tolist() for grid in (rows, columns)]
        assert abs(y0 - round(y0)) < 0.05 and abs(x0 - round(x0)) < 0.05, "whole pixels: shifted after the turn"
        shifts.add((round(y0), round(x0)))
        assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(8, abs=0.5)
        bearings.append(math.degrees(math.atan2(y1 - y0, x1 - x0)))
    assert shifts == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert max(map(abs, bearings)) <= 30.5 and min(bearings) < -25 and max(bearings) > 25


def test_mnist5k_is_500_real_digits_a_class(mnist5k: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = mnist5k
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and (images == 0).float().mean() > 0.5, "ink on a black ground"
