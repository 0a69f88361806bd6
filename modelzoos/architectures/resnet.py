"""ResNet-18, CIFAR variant, with torchvision's parameter names (no torchvision dependency).

torchvision's BasicBlock [2, 2, 2, 2]; the stem is a 3x3 stride-1 convolution without bias and
without max-pool, for 32x32 (and 64x64) inputs. 11,173,962 parameters for 10 classes, 11,220,132
for 100, 11,271,432 for 200. No `population_forward` yet: the engine cannot train it (issue 4).
"""

from __future__ import annotations

from torch import Tensor, nn

from . import ACTIVATIONS, register_model


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


@register_model("resnet18")
def resnet18(**kwargs) -> nn.Module:
    return ResNet18(**kwargs)
