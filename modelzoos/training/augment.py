"""Train-time augmentation on batches of tensors, on the device: random resized crop, random crop
with padding, horizontal flip, rotation and erasing, each image's draw a pure function of its
model's key.

torchvision's transforms work one PIL image at a time on the CPU; here every model's batch is
transformed at once where the images already live. The random numbers come from the same counter
hash as the dropout masks (`keyed_uniform`), so a model draws the same augmentations in any
group, process or device, and the plain per-model loop draws them too.
"""

from __future__ import annotations

import math

import numpy as np
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
    if aug.resized_crop:  # resampled, so not exact pixels; its own draws leave the others' as they were
        x = resized_crop(x, keyed_uniform(keys ^ 0x2D2D2D2D, (B, 4)).flatten(0, 1))
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
    if aug.erasing:
        x = _erase(x, keyed_uniform(keys ^ 0x5A5A5A5A, (B, 1 + 4 * ERASE_TRIES)).flatten(0, 1), aug.erasing)
    return x.reshape(K, B, C, H, W)


ERASE_TRIES = 10  # torchvision's RandomErasing tries 10 rectangles and erases the first that fits


def _erase(x: Tensor, u: Tensor, p: float) -> Tensor:
    """RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) on every image of x (N x C x H x W)."""
    n, _, H, W = x.shape
    tries = u[:, 1:].view(n, ERASE_TRIES, 4)
    area = H * W * (0.02 + tries[..., 0] * (0.33 - 0.02))
    aspect = torch.exp(math.log(0.3) + tries[..., 1] * (math.log(3.3) - math.log(0.3)))
    h, w = (area * aspect).sqrt().round().long(), (area / aspect).sqrt().round().long()
    fits = (h < H) & (w < W)
    first = fits.long().argmax(1, keepdim=True)  # the first rectangle that fits
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top = (tries[..., 2].gather(1, first)[:, 0] * (H - h + 1)).long()
    left = (tries[..., 3].gather(1, first)[:, 0] * (W - w + 1)).long()
    rows, cols = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
    erase = (u[:, 0] < p) & fits.any(1)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def mix_draws(seeds: list[int], epoch: int, step: int, aug: Augmentation) -> Tensor:
    """Per model (K x 4): the mixing weight, whether CutMix (1) or mixup (0), and the CutMix box
    centre (row, column) as uniforms. Drawn on the CPU from (seed, epoch, step), so a model mixes
    alike in any group; numpy's Beta sampler, as torch has none that takes a generator."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng([seed, epoch, step, 0x6D6978])  # the last: this purpose's stream
        cut = aug.cutmix > 0 and (aug.mixup == 0 or rng.random() < 0.5)
        alpha = aug.cutmix if cut else aug.mixup
        rows.append([rng.beta(alpha, alpha), float(cut), rng.random(), rng.random()])
    return torch.tensor(rows, dtype=torch.float32)


def mix(x: Tensor, y: Tensor, draws: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Mixup or CutMix of each model's batch with itself reversed, as timm's Mixup in batch mode.

    x: K x B x C x H x W, y: K x B labels, draws: K x 4 from `mix_draws`. Returns the mixed images
    and soft targets (K x B x classes) weighted by the share of each image actually present.
    """
    K, B, C, H, W = x.shape
    lam, cut, cy, cx = draws.to(x.device).unbind(1)
    cut = cut > 0
    ratio = (1 - lam).sqrt()
    ch, cw = (H * ratio).long(), (W * ratio).long()
    cyi, cxi = (cy * H).long().clamp_(max=H - 1), (cx * W).long().clamp_(max=W - 1)
    y0, y1 = (cyi - ch // 2).clamp(0, H), (cyi + ch // 2).clamp(0, H)
    x0, x1 = (cxi - cw // 2).clamp(0, W), (cxi + cw // 2).clamp(0, W)
    rows, cols = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    box = ((rows >= y0[:, None]) & (rows < y1[:, None]))[:, :, None] & ((cols >= x0[:, None]) & (cols < x1[:, None]))[:, None, :]
    lam = torch.where(cut, 1 - ((y1 - y0) * (x1 - x0)).to(lam) / (H * W), lam)
    other = x.flip(1)
    l5 = lam.view(K, 1, 1, 1, 1)
    mixed = torch.where(
        cut.view(K, 1, 1, 1, 1), torch.where(box[:, None, None], other, x), l5 * x + (1 - l5) * other
    )
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    l3 = lam.view(K, 1, 1).to(x.dtype)
    return mixed, l3 * onehot + (1 - l3) * onehot.flip(1)


def black(mean: list[float] | None, std: list[float] | None, channels: int) -> Tensor:
    """The normalized value of a black pixel, per channel."""
    if mean is None:
        return torch.zeros(channels)
    return -torch.tensor(mean) / torch.tensor(std)


def resized_crop(img: Tensor, u: Tensor) -> Tensor:
    """RandomResizedCrop(size=H, scale=(0.08, 1), ratio=(3/4, 4/3)) of each image of img
    (N x C x H x W), from 4 uniforms an image (u: N x 4), resampled bilinearly in one
    `grid_sample` (no antialiasing); a box that does not fit is clipped rather than redrawn."""
    n, _, H, W = img.shape
    area = H * W * (0.08 + 0.92 * u[:, 0])
    aspect = torch.exp(math.log(3 / 4) + u[:, 1] * (math.log(4 / 3) - math.log(3 / 4)))
    h = (area / aspect).sqrt().clamp(1, H)
    w = (area * aspect).sqrt().clamp(1, W)
    top, left = u[:, 2] * (H - h), u[:, 3] * (W - w)
    zero = torch.zeros_like(h)
    # output pixel (-1..1) -> input position of the box, in grid_sample's normalized coordinates
    theta = torch.stack(
        [torch.stack([w / W, zero, (2 * left + w) / W - 1], 1), torch.stack([zero, h / H, (2 * top + h) / H - 1], 1)], 1
    )
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
