"""ResNet-18, CIFAR variant, with torchvision's parameter names (no torchvision dependency).

torchvision's BasicBlock [2, 2, 2, 2]; the stem is a 3x3 stride-1 convolution without bias and
without max-pool, for 32x32 (and 64x64) inputs. 11,173,962 parameters for 10 classes, 11,220,132
for 100, 11,271,432 for 200.

`population_forward` runs K models from stacked parameters as grouped convolutions (what
`torch.func.vmap` lowers a convolution to as well). Each model keeps its own BatchNorm statistics:
in the grouped layout channel k*C+c holds model k's channel c only, so BatchNorm over K*C channels
normalizes every model by its own batch and updates its own running mean and variance.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ACTIVATION_FNS, ACTIVATIONS, grouped_input, register_model, stacked_conv

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # nn.BatchNorm2d's defaults


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = ACTIVATIONS[activation]()
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    HEAD = "fc"  # what a fine-tune replaces

    def __init__(self, in_channels: int = 3, num_classes: int = 10, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        if dropout:
            raise ValueError("the ResNet-18 zoos use no dropout")
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = ACTIVATIONS[activation]()
        widths, c = (64, 128, 256, 512), 64
        for i, width in enumerate(widths, 1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c, width, stride, activation), BasicBlock(width, width, 1, activation)))
            c = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

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
        """Logits (K x B x classes) of K models; `x` as in `ConvNet.population_forward`.

        In training, BatchNorm uses batch statistics and updates the stacked running statistics in
        `buffers` in place, as `nn.BatchNorm2d` does; otherwise it uses them. No dropout here.
        """
        act = ACTIVATION_FNS[activation]
        K = p["conv1.weight"].shape[0]

        def conv(h: Tensor, name: str, stride: int, padding: int) -> Tensor:
            return stacked_conv(h, p, name, K, stride, padding)

        def bn(h: Tensor, name: str) -> Tensor:
            if training:
                buffers[f"{name}.num_batches_tracked"].add_(1)
            # views of the stacked K x C buffers: batch_norm's in-place update reaches them
            mean, var = buffers[f"{name}.running_mean"].view(-1), buffers[f"{name}.running_var"].view(-1)
            weight, bias = p[f"{name}.weight"].reshape(-1), p[f"{name}.bias"].reshape(-1)
            return F.batch_norm(h, mean, var, weight, bias, training, BN_MOMENTUM, BN_EPS)

        B, h = grouped_input(x, K)
        # one batch for all models: the stem is one dense convolution
        h = act(bn(stacked_conv(h, p, "conv1", 1 if x.dim() == 4 else K, 1, 1), "bn1"))
        for i in range(1, 5):
            for j in range(2):
                name, stride = f"layer{i}.{j}", 2 if i > 1 and j == 0 else 1
                identity = h
                if f"{name}.downsample.0.weight" in p:
                    identity = bn(conv(h, f"{name}.downsample.0", stride, 0), f"{name}.downsample.1")
                out = act(bn(conv(h, f"{name}.conv1", stride, 1), f"{name}.bn1"))
                h = act(bn(conv(out, f"{name}.conv2", 1, 1), f"{name}.bn2") + identity)
        h = h.mean((2, 3)).view(B, K, -1).transpose(0, 1)  # K x B x 512
        return torch.baddbmm(p["fc.bias"].unsqueeze(1), h, p["fc.weight"].transpose(1, 2))


@register_model("resnet18")
def resnet18(**kwargs) -> nn.Module:
    return ResNet18(**kwargs)
