"""Dropout whose masks are a pure function of a key: (model seed, epoch, step, layer) -> mask.

A model's dropout masks then depend on its seed alone, not on which other models share its
group, its process or its device, and the per-model module and the population forward draw the
very same masks. Without a key (e.g. a model from `to_model` trained further by a user) the
module is plain `nn.Dropout`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_M32 = 0xFFFFFFFF


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash on int64 tensors holding values < 2**32. Multipliers stay below
    2**31, so no product overflows int64 and every device computes the same bits."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x1B873593) & _M32
    return x ^ (x >> 16)


def step_keys(base: Tensor, step: int, layer: int) -> Tensor:
    """Keys (int64, < 2**32) of one dropout layer at one step, from per-model epoch keys `base`."""
    return _mix32((base + (step * 64 + layer) * 0x2545F491) & _M32)


def keyed_uniform(keys: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Uniform [0, 1) floats of shape (len(keys), *shape): element i of model k from (keys[k], i)."""
    n = math.prod(shape)
    idx = torch.arange(n, device=keys.device, dtype=torch.int64)
    x = _mix32((keys.view(-1, 1) * 0x27D4EB2D + idx) & _M32)
    return (x >> 8).to(torch.float32).mul_(2.0**-24).view(len(keys), *shape)


def keyed_dropout(x: Tensor, p: Tensor, keys: Tensor) -> Tensor:
    """Dropout of x (K x ...) with per-model probabilities p (K) and keys (K), as nn.Dropout scales."""
    u = keyed_uniform(keys, tuple(x.shape[1:]))
    p = p.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return x * (u >= p).to(x.dtype) / (1 - p)


class SeededDropout(nn.Dropout):
    """nn.Dropout that takes its mask from `self.key` when the trainer has set one."""

    key: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if self.key is None:
            return F.dropout(x, self.p, True)
        return keyed_dropout(x.unsqueeze(0), torch.tensor([self.p], device=x.device), self.key.view(1))[0]
