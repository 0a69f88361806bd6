"""Architectures by name, as in timm: `create_model("cnn-s", in_channels=1, ...)`.

Each architecture file is self-contained and registers its constructors with `register_model`.
A model's forward returns logits, except a transformers model's (a ModelOutput, as in
transformers); `logits_of(model, x)` takes either.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return add


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise KeyError(f"unknown architecture '{name}'; known: {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


def logits_of(model: nn.Module, x: Tensor) -> Tensor:
    """The logits of one model on images `x`: our CNNs return them, a transformers model (the ViT)
    returns a ModelOutput that holds them. Named so, not `logits`, because callers keep theirs in
    a variable of that name."""
    out = model(x)
    return out if isinstance(out, Tensor) else out.logits


def init_weights(model: nn.Module, scheme: str, generator: torch.Generator) -> None:
    """The zoos' init: every conv/linear weight drawn by `scheme`, every bias set to 0.01.
    `default` keeps the architecture's own init (drawn at construction; seed the global RNG then).

    Drawing from an explicit generator makes a model's initial weights a function of its seed
    alone, whatever else happened to the global RNG.
    """
    if scheme == "default":
        return
    g = {"generator": generator}
    draw = {
        "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, **g),
        "xavier_normal": lambda w: nn.init.xavier_normal_(w, **g),
        "uniform": lambda w: nn.init.uniform_(w, 0.0, 1.0, **g),
        "normal": lambda w: nn.init.normal_(w, 0.0, 1.0, **g),
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, **g),
        "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, **g),
    }[scheme]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                draw(m.weight)
                if m.bias is not None:
                    m.bias.fill_(0.01)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}

# The same activations as functions of tensors, for the architectures' population forwards.
ACTIVATION_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leakyrelu": F.leaky_relu,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "gelu": F.gelu,
}


def grouped_input(x: Tensor, K: int) -> tuple[int, Tensor]:
    """K stacked models' images as a grouped convolution's input, and the batch size B.

    K x B x C x H x W (a batch per model) becomes B x K*C x H x W, so model k's channels are
    group k; B x C x H x W (one batch for all) stays, for a dense first convolution. Channels-last,
    which measured fastest for grouped convolutions on CPUs (benchmarks/RESULTS.md).
    """
    if x.dim() == 4:
        return x.shape[0], x.contiguous(memory_format=torch.channels_last)
    B, C = x.shape[1], x.shape[2]
    return B, x.transpose(0, 1).reshape(B, K * C, *x.shape[3:]).contiguous(memory_format=torch.channels_last)


def stacked_conv(h: Tensor, p: dict[str, Tensor], name: str, groups: int, stride: int = 1, padding: int = 0) -> Tensor:
    """Convolution `name` of K stacked models (weights K x O x I x kh x kw, bias if any) in one call:
    `groups` = K for grouped inputs, 1 on a shared batch (the K models' filters side by side)."""
    w, b = p[f"{name}.weight"], p.get(f"{name}.bias")
    return F.conv2d(h, w.reshape(-1, *w.shape[2:]), None if b is None else b.reshape(-1), stride, padding, groups=groups)


from . import cnn, resnet  # noqa: E402,F401  (registers the architectures)


@register_model("vit")
def vit(**kwargs) -> nn.Module:
    """A `transformers` ViT (architectures/vit.py). Registered here, and imported only when a ViT
    is built, because importing transformers takes seconds, which every command would pay."""
    from .vit import vit as build

    return build(**kwargs)
