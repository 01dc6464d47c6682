"""Batch-wise augmentation and normalisation on the device (no per-image Python)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nasnc._errors import ConfigError

__all__ = ["DeviceTransform", "random_crop_flip"]


def random_crop_flip(
    x: torch.Tensor, *, padding: int = 4, flip: bool = True, generator: torch.Generator
) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, of a whole batch.

    Equivalent per image to torchvision's ``RandomCrop(size, padding)`` followed
    by ``RandomHorizontalFlip()``, done as one gather on the batch's device.
    The draws come from ``generator`` only (row offsets, column offsets, flips,
    in that order), so a seed fixes the result.

    Parameters
    ----------
    x : Tensor
        ``[B, C, H, W]`` batch of any dtype (uint8 keeps it cheap).
    padding : int, default 4
        Zero padding on each side; offsets are drawn from ``0..2*padding``.
    flip : bool, default True
        Flip each image left-right with probability 1/2.
    generator : torch.Generator
        On ``x``'s device.

    Returns
    -------
    Tensor
        A new ``[B, C, H, W]`` tensor of ``x``'s dtype.
    """
    n, c, h, w = x.shape
    dev = x.device
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=dev)
        ox = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=dev)
    else:
        xp = x
        oy = ox = torch.zeros((n, 1), dtype=torch.int64, device=dev)
    rows = oy + torch.arange(h, device=dev)
    cols = ox + torch.arange(w, device=dev)
    if flip:
        flipped = torch.randint(0, 2, (n, 1), generator=generator, device=dev).bool()
        cols = torch.where(flipped, cols.flip(1), cols)
    if padding <= 0 and not flip:
        return x.clone()
    # gather rows, then columns: two cheap index_select-like gathers on the batch
    hp, wp = xp.shape[2], xp.shape[3]
    flat = xp.reshape(n, c * hp, wp)
    row_idx = (torch.arange(c, device=dev).view(1, c, 1) * hp + rows.view(n, 1, h)).view(n, c * h)
    picked = torch.gather(flat, 1, row_idx.unsqueeze(-1).expand(n, c * h, wp))
    out = torch.gather(picked, 2, cols.view(n, 1, w).expand(n, c * h, w))
    return out.view(n, c, h, w)


class DeviceTransform:
    """Augment (optionally) and normalise uint8 batches on their device.

    Parameters
    ----------
    mean, std : sequence of 3 floats
        Per-channel statistics in ``[0, 1]`` units (``ProxyData.mean``/``std``).
    device : str or torch.device
        Where the batches live; the constants are placed there once.
    augment : bool, default True
        Random crop (zero ``padding``) + horizontal flip in :meth:`train`.
    padding : int, default 4
    flip : bool, default True
    channels_last : bool, default False
        Return ``torch.channels_last`` tensors (for CUDA convolutions).

    Examples
    --------
    >>> t = DeviceTransform((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), device="cpu")
    >>> x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    >>> t.eval(x)[0, 0, 0, 0].item()
    2.0
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        device: str | torch.device = "cpu",
        augment: bool = True,
        padding: int = 4,
        flip: bool = True,
        channels_last: bool = False,
    ) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean and std need 3 values with std > 0, but got {mean=}, {std=}.")
        if padding < 0:
            raise ConfigError(f"padding must be >= 0, but got {padding=}.")
        dev = torch.device(device)
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
        # x_norm = (x / 255 - mean) / std = x * scale + shift
        self._scale = (1.0 / (255.0 * std_t)).view(1, 3, 1, 1).to(dev)
        self._shift = (-mean_t / std_t).view(1, 3, 1, 1).to(dev)
        self.augment = bool(augment)
        self.padding = int(padding)
        self.flip = bool(flip)
        self.channels_last = bool(channels_last)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 batch to float32 (no augmentation)."""
        out = torch.addcmul(self._shift, x.to(torch.float32), self._scale)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def train(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment (when enabled) then normalise a uint8 batch, drawing from ``generator``."""
        if self.augment and (self.padding > 0 or self.flip):
            x = random_crop_flip(x, padding=self.padding, flip=self.flip, generator=generator)
        return self.eval(x)
