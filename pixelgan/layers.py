"""Causal convolutions, the gated unit and the adaptive bias of the conditional PixelCNN.

Gated PixelCNN (van den Oord et al. 2016, arXiv 1606.05328, sections 2.2-2.3). All masking
geometry of the decoder lives in this file. Causality comes from shifting, not from masking,
so no FLOPs go to taps that a mask would zero (the layout of PixelCNN++, Salimans et al. 2017).
Generation order is raster order: row by row, left to right, and within a pixel channel by
channel (R, then G, then B).

Two invariants hold from the input layer on (``CausalInput``):

- a *vertical* feature at (i, j) depends only on pixels in rows < i;
- a *horizontal* feature at (i, j) depends only on rows < i and on row i at columns < j.

Kernels that keep them, for ``kernel_size`` k = 5 (r = k // 2 = 2; ``o`` is the output position,
whose own input is already shifted as the invariant says)::

    DownShiftedConv2d, (r+1) x k       DownRightShiftedConv2d, 1 x (r+1)
        x x x x x
        x x x x x
        x x o x x                          x x o

The vertical stack's field is a rectangle that widens by r columns a side per layer and the
horizontal stack covers the row to the left, so the union has no blind spot (tests check this
with gradients). NOTE: the original Gated PixelCNN orders sub-pixels with channel masks in
every layer; here the layers see only earlier *pixels*, and the earlier sub-pixels of the
current pixel enter once, in ``SubPixelHead``, through a channel-masked 1x1 convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def down_shift(x: Tensor) -> Tensor:
    """Move a feature map one row down, so row i holds what row i-1 saw."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: Tensor) -> Tensor:
    """Move a feature map one column right, so column j holds what column j-1 saw."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class DownShiftedConv2d(nn.Conv2d):
    """A (r+1) x k convolution whose output at row i reads input rows i-r .. i only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        self.reach = kernel_size // 2
        super().__init__(in_channels, out_channels, (self.reach + 1, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        r = self.reach
        return super().forward(F.pad(x, (r, r, r, 0)))


class DownRightShiftedConv2d(nn.Conv2d):
    """A 1 x (r+1) convolution whose output at column j reads input columns j-r .. j only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        self.reach = kernel_size // 2
        super().__init__(in_channels, out_channels, (1, self.reach + 1))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.reach, 0, 0, 0)))


class CausalInput(nn.Module):
    """The first layer ('mask A'): both stacks see only pixels strictly before (i, j)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.vertical = DownShiftedConv2d(in_channels, channels, kernel_size)
        self.horizontal = DownRightShiftedConv2d(in_channels, channels, kernel_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        v = down_shift(self.vertical(x))
        h = v + right_shift(self.horizontal(x))
        return v, h


def gate(x: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) over the two halves of the channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks, with the code's adaptive bias added before each gate.

    ``condition`` is the code as a (B, D, 1, 1) tensor (location-independent: one bias per
    channel) or a (B, D, H, W) map (location-dependent: a bias per position). Either way a
    1x1 convolution turns it into the bias, V h in the paper's notation. With
    ``condition_channels=0`` the layer reads no code (a plain PixelCNN).
    """

    def __init__(self, channels: int, kernel_size: int, condition_channels: int) -> None:
        super().__init__()
        self.vertical = DownShiftedConv2d(channels, 2 * channels, kernel_size)
        self.horizontal = DownRightShiftedConv2d(channels, 2 * channels, kernel_size)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.condition = nn.Conv2d(condition_channels, 4 * channels, 1) if condition_channels else None

    def biases(self, condition: Tensor | None) -> tuple[Tensor | float, Tensor | float]:
        """The adaptive biases of the vertical and the horizontal gate (0 without a code)."""
        if self.condition is None or condition is None:
            return 0.0, 0.0
        bias_v, bias_h = self.condition(condition).chunk(2, dim=1)
        return bias_v, bias_h

    def forward(self, v: Tensor, h: Tensor, condition: Tensor | None) -> tuple[Tensor, Tensor]:
        bias_v, bias_h = self.biases(condition)
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        v = gate(v_pre + bias_v)
        h = h + self.horizontal_out(gate(h_pre + bias_h))
        return v, h


class LatentMap(nn.Module):
    """The location-dependent conditioning: z -> a (B, C, H, W) map by a small deconv net."""

    def __init__(self, code_dim: int, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.size = (height, width)
        self.seed_size = (math.ceil(height / 4), math.ceil(width / 4))
        self.project = nn.Linear(code_dim, channels * self.seed_size[0] * self.seed_size[1])
        self.upsample = nn.Sequential(
            nn.ELU(),
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
            nn.ELU(),
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        seed = self.project(z).view(z.shape[0], -1, *self.seed_size)  # [B, C, H/4, W/4]
        height, width = self.size
        return self.upsample(seed)[:, :, :height, :width]  # [B, C, H, W]


class SubPixelMaskedConv1x1(nn.Conv2d):
    """1x1 conv on the current pixel: output group c reads input channels < c only ('mask B').

    With one input channel every weight is masked: only the bias is left, as the first
    sub-pixel of a pixel has nothing earlier within that pixel.
    """

    def __init__(self, image_channels: int, group_channels: int) -> None:
        super().__init__(image_channels, image_channels * group_channels, 1)
        out_channel = torch.arange(image_channels * group_channels) // group_channels
        mask = out_channel[:, None] > torch.arange(image_channels)[None, :]
        self.register_buffer("mask", mask[:, :, None, None].to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


class SubPixelHead(nn.Module):
    """Logits of each sub-pixel from the context before the pixel and its earlier sub-pixels.

    Groups keep the channels apart: channel c's logits read only hidden group c, which sees
    the context and channels < c of the current pixel.
    """

    def __init__(self, channels: int, image_channels: int, hidden: int, n_values: int) -> None:
        super().__init__()
        self.image_channels = image_channels
        self.n_values = n_values
        self.context = nn.Conv2d(channels, image_channels * hidden, 1)
        self.current = SubPixelMaskedConv1x1(image_channels, hidden)
        self.out = nn.Conv2d(image_channels * hidden, image_channels * n_values, 1, groups=image_channels)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        hidden = F.elu(self.context(F.elu(h)) + self.current(x))
        return self.out(F.elu(hidden))  # [B, C * V, H, W], channel-major
