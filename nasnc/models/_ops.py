"""Building blocks of the NAS-Bench-201 network (the benchmark's own definitions)."""

from __future__ import annotations

import torch
from torch import nn

from nasnc._errors import ArchError, ConfigError


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm: the benchmark's ``nor_conv_kxk``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        n, _, h, w = x.shape
        return x.new_zeros((n, self.c_out, h, w))


class AvgPool(nn.Module):
    """``avg_pool_3x3``: 3x3 average pooling, stride 1, padding excluded from the mean."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.pre = ReLUConvBN(c_in, c_out, 1, 1, 0) if c_in != c_out else None
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre is not None:
            x = self.pre(x)
        return self.pool(x)


class ResidualReduction(nn.Module):
    """The residual block between stages: doubles channels, halves the resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One edge operation by its benchmark name."""
    if name == "none":
        return Zero(c_in, c_out, stride)
    if name == "skip_connect":
        if stride != 1 or c_in != c_out:  # never happens inside NB201 cells
            raise ConfigError("skip_connect changes neither stride nor width in NB201 cells")
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, stride, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, stride, 1)
    if name == "avg_pool_3x3":
        return AvgPool(c_in, c_out, stride)
    raise ArchError(f"unknown operation {name!r}")
