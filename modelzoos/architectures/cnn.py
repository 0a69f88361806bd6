"""CNN-s, the small CNN of the "Model Zoos" paper (Schürholt et al., 2022), 28x28 inputs.

conv(c->8,k5) pool act | conv(8->6,k5) pool act | conv(6->4,k2) act | fc(36->20) act | fc(20->10):
2,464 parameters for one input channel, 2,864 for three.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import ACTIVATIONS, register_model


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
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(self.act(self.pool(self.conv1(x))))
        x = self.drop(self.act(self.pool(self.conv2(x))))
        x = self.act(self.conv3(x)).flatten(1)
        x = self.drop(self.act(self.fc1(x)))
        return self.fc2(x)


@register_model("cnn-s")
def cnn_s(**kwargs) -> nn.Module:
    return CNNSmall(**kwargs)
