"""CNN-s, the small CNN of the "Model Zoos" paper (Schürholt et al., 2022), 28x28 inputs.

conv(c->8,k5) pool act | conv(8->6,k5) pool act | conv(6->4,k2) act | fc(36->20) act | fc(20->10):
2,464 parameters for one input channel, 2,864 for three.

`population_forward` runs K such models at once from stacked parameters: the convolutions as one
grouped convolution in channels-last layout, which measured fastest on CPUs (see
benchmarks/RESULTS.md); the linear layers as batched matmuls.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ACTIVATIONS, register_model
from .dropout import SeededDropout


class CNNSmall(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        activation: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 5)
        self.conv2 = nn.Conv2d(8, 6, 5)
        self.conv3 = nn.Conv2d(6, 4, 2)
        self.fc1 = nn.Linear(36, 20)
        self.fc2 = nn.Linear(20, num_classes)
        self.act = ACTIVATIONS[activation]()
        self.pool = nn.MaxPool2d(2)
        self.drop1, self.drop2, self.drop3 = SeededDropout(dropout), SeededDropout(dropout), SeededDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop1(self.act(self.pool(self.conv1(x))))
        x = self.drop2(self.act(self.pool(self.conv2(x))))
        x = self.act(self.conv3(x)).flatten(1)
        x = self.drop3(self.act(self.fc1(x)))
        return self.fc2(x)

    @staticmethod
    def population_forward(
        p: dict[str, Tensor],
        x: Tensor,
        activation: str,
        dropout: Callable[[Tensor, int], Tensor] | None = None,
    ) -> Tensor:
        """Logits (K x B x classes) of K models with stacked parameters `p` (K x ...).

        `x` is K x B x C x H x W (a batch per model) or B x C x H x W (one batch for all, as in
        evaluation: the first convolution is then one dense convolution). `dropout(h, layer)`
        takes and returns h as K x B x ... (in the per-model module's element order).
        """
        act = getattr(torch, activation) if activation in ("tanh", "sigmoid", "relu") else _act_fn(activation)
        K = p["conv1.weight"].shape[0]

        def conv(h: Tensor, name: str, groups: int) -> Tensor:
            w = p[f"{name}.weight"]
            return F.conv2d(h, w.reshape(-1, *w.shape[2:]), p[f"{name}.bias"].reshape(-1), groups=groups)

        def drop(h: Tensor, layer: int) -> Tensor:  # h: B x K*C x H x W
            if dropout is None:
                return h
            B, KC, H, W = h.shape
            per_model = h.view(B, K, KC // K, H, W).transpose(0, 1)
            return dropout(per_model, layer).transpose(0, 1).reshape(B, KC, H, W)

        if x.dim() == 4:  # shared batch: all models see the same images
            B = x.shape[0]
            h = x.contiguous(memory_format=torch.channels_last)
            h = conv(h, "conv1", groups=1)
        else:
            B, C = x.shape[1], x.shape[2]
            h = x.transpose(0, 1).reshape(B, K * C, *x.shape[3:]).contiguous(memory_format=torch.channels_last)
            h = conv(h, "conv1", groups=K)
        h = drop(act(F.max_pool2d(h, 2)), 0)
        h = drop(act(F.max_pool2d(conv(h, "conv2", groups=K), 2)), 1)
        h = act(conv(h, "conv3", groups=K))  # B x K*4 x 3 x 3
        h = h.reshape(B, K, -1).transpose(0, 1)  # K x B x 36, in (C, H, W) order per model
        h = act(torch.baddbmm(p["fc1.bias"].unsqueeze(1), h, p["fc1.weight"].transpose(1, 2)))
        if dropout is not None:
            h = dropout(h, 2)
        return torch.baddbmm(p["fc2.bias"].unsqueeze(1), h, p["fc2.weight"].transpose(1, 2))


def _act_fn(name: str) -> Callable[[Tensor], Tensor]:
    return {"leakyrelu": F.leaky_relu, "silu": F.silu, "gelu": F.gelu}[name]


@register_model("cnn-s")
def cnn_s(**kwargs) -> nn.Module:
    return CNNSmall(**kwargs)
