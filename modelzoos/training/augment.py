"""Train-time augmentation on batches of tensors, on the device: random crop with padding,
horizontal flip and rotation, each image's draw a pure function of its model's key.

torchvision's transforms work one PIL image at a time on the CPU; here every model's batch is
transformed at once where the images already live. The random numbers come from the same counter
hash as the dropout masks (`keyed_uniform`), so a model draws the same augmentations in any
group, process or device, and the plain per-model loop draws them too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..architectures.dropout import keyed_uniform
from ..spec import Augmentation


def augment(x: Tensor, keys: Tensor, aug: Augmentation, fill: Tensor) -> Tensor:
    """Augmented copy of x (K x B x C x H x W), model k's images drawn from keys[k].

    `fill` (C) is the value of a black pixel after normalization: what padding and uncovered
    corners hold, as torchvision's transforms (which run before Normalize) leave them.
    """
    K, B, C, H, W = x.shape
    u = keyed_uniform(keys, (B, 4)).flatten(0, 1)  # per image: crop row, crop column, flip, angle
    fill = fill.view(1, C, 1, 1).to(x)
    x = x.flatten(0, 1)
    n = len(x)
    # Pixels move, they are never recomputed: an augmented image holds its own exact values.
    if aug.crop_padding:
        pad = aug.crop_padding
        padded = fill.expand(n, C, H + 2 * pad, W + 2 * pad).clone()
        padded[:, :, pad : pad + H, pad : pad + W] = x
        top = (u[:, 0] * (2 * pad + 1)).long().clamp_(max=2 * pad)
        left = (u[:, 1] * (2 * pad + 1)).long().clamp_(max=2 * pad)
        rows = top[:, None] + torch.arange(H, device=x.device)
        cols = left[:, None] + torch.arange(W, device=x.device)
        nhwc = padded.permute(0, 2, 3, 1)
        x = nhwc[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if aug.hflip:
        x = torch.where((u[:, 2] < 0.5).view(-1, 1, 1, 1), x.flip(-1), x)
    if aug.rotation:
        angle = (u[:, 3] * 2 - 1) * math.radians(aug.rotation)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, [n, C, H, W], align_corners=False)
        # nearest, as RandomRotation's default: no blur, and pixels keep their exact values
        turned = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        x = torch.where(inside > 0, turned, fill)
    return x.reshape(K, B, C, H, W)


def black(mean: list[float] | None, std: list[float] | None, channels: int) -> Tensor:
    """The normalized value of a black pixel, per channel."""
    if mean is None:
        return torch.zeros(channels)
    return -torch.tensor(mean) / torch.tensor(std)
