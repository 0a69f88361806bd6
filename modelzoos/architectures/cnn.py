"""CNN-s and CNN-l, the small CNNs of the "Model Zoos" paper (Schürholt et al., 2022).

CNN-s (28x28): conv(c->8,k5) pool act drop | conv(8->6,k5) pool act drop | conv(6->4,k2) act |
    fc(36->20) act drop | fc(20->10). 2,464 parameters for one input channel, 2,864 for three.
CNN-l (32x32): conv(c->16,k3) pool act drop | conv(16->32,k3) pool act drop |
    conv(32->15,k3) pool act drop | fc(60->20) act drop | fc(20->10). 10,853 for three channels.

`population_forward` runs K such models at once from stacked parameters: the convolutions as one
grouped convolution in channels-last layout, which measured fastest on CPUs (see
benchmarks/RESULTS.md); the linear layers as batched matmuls.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ACTIVATION_FNS, ACTIVATIONS, grouped_input, register_model, stacked_conv
from .dropout import SeededDropout

# One conv stage: (out_channels, kernel, max-pool 2 after the conv, dropout after the activation)
Stage = tuple[int, int, bool, bool]


class ConvNet(nn.Module):
    """Conv stages (conv -> [pool] -> act -> [dropout]), then fc1 -> act -> dropout -> fc2."""

    HEAD = "fc2"  # what a fine-tune replaces
    STAGES: ClassVar[list[Stage]]
    FLAT: ClassVar[int]  # features after the last stage
    HIDDEN: ClassVar[int] = 20

    def __init__(self, in_channels: int = 1, num_classes: int = 10, activation: str = "tanh", dropout: float = 0.0) -> None:
        super().__init__()
        c = in_channels
        for i, (out, kernel, _, _) in enumerate(self.STAGES, 1):
            setattr(self, f"conv{i}", nn.Conv2d(c, out, kernel))
            c = out
        self.fc1 = nn.Linear(self.FLAT, self.HIDDEN)
        self.fc2 = nn.Linear(self.HIDDEN, num_classes)
        self.act = ACTIVATIONS[activation]()
        self.pool = nn.MaxPool2d(2)
        # one module per place, in the order they apply: dropout keys are numbered so
        for j in range(1, sum(drop for *_, drop in self.STAGES) + 2):
            setattr(self, f"drop{j}", SeededDropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        drops = iter([m for m in self.children() if isinstance(m, SeededDropout)])
        for i, (_, _, pool, drop) in enumerate(self.STAGES, 1):
            x = getattr(self, f"conv{i}")(x)
            x = self.act(self.pool(x) if pool else x)
            x = next(drops)(x) if drop else x
        x = next(drops)(self.act(self.fc1(x.flatten(1))))
        return self.fc2(x)

    @classmethod
    def population_forward(
        cls,
        p: dict[str, Tensor],
        buffers: dict[str, Tensor],
        x: Tensor,
        activation: str,
        dropout: Callable[[Tensor, int], Tensor] | None = None,
        training: bool = False,
    ) -> Tensor:
        """Logits (K x B x classes) of K models with stacked parameters `p` (K x ...).

        `x` is K x B x C x H x W (a batch per model) or B x C x H x W (one batch for all, as in
        evaluation: the first convolution is then one dense convolution). `dropout(h, layer)`
        takes and returns h as K x B x ... (in the per-model module's element order); it is
        applied only when `training`. These CNNs have no buffers.
        """
        act = ACTIVATION_FNS[activation]
        K = p["conv1.weight"].shape[0]

        def drop(h: Tensor, layer: int) -> Tensor:  # h: B x K*C x H x W
            B, KC, H, W = h.shape
            per_model = h.view(B, K, KC // K, H, W).transpose(0, 1)
            return dropout(per_model, layer).transpose(0, 1).reshape(B, KC, H, W)

        B, h = grouped_input(x, K)
        layer = 0
        for i, (_, _, pool, has_drop) in enumerate(cls.STAGES, 1):
            # on a shared batch the first convolution is dense: every model sees the same images
            h = stacked_conv(h, p, f"conv{i}", groups=1 if i == 1 and x.dim() == 4 else K)
            h = act(F.max_pool2d(h, 2) if pool else h)
            if has_drop:
                h = drop(h, layer) if training and dropout is not None else h
                layer += 1
        h = h.reshape(B, K, -1).transpose(0, 1)  # K x B x FLAT, in (C, H, W) order per model
        h = act(torch.baddbmm(p["fc1.bias"].unsqueeze(1), h, p["fc1.weight"].transpose(1, 2)))
        if training and dropout is not None:
            h = dropout(h, layer)
        return torch.baddbmm(p["fc2.bias"].unsqueeze(1), h, p["fc2.weight"].transpose(1, 2))


class CNNSmall(ConvNet):
    STAGES = [(8, 5, True, True), (6, 5, True, True), (4, 2, False, False)]
    FLAT = 36


class CNNLarge(ConvNet):
    STAGES = [(16, 3, True, True), (32, 3, True, True), (15, 3, True, True)]
    FLAT = 60


@register_model("cnn-s")
def cnn_s(**kwargs) -> nn.Module:
    return CNNSmall(**kwargs)


@register_model("cnn-l")
def cnn_l(**kwargs) -> nn.Module:
    return CNNLarge(**kwargs)
