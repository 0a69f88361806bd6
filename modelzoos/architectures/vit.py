"""Vision transformers: Hugging Face `transformers`' ViTForImageClassification, by name.

`create_model("vit", image_size=32, patch_size=4, hidden_size=64, ...)` builds the model from a
`ViTConfig`, so its checkpoints are the ones `ViTForImageClassification.from_pretrained` opens.
The module's forward returns the logits tensor (not a ModelOutput), like every architecture here.

`population_forward` runs K models with `torch.func.vmap` over `functional_call`, with eager
attention: under vmap, PyTorch's CPU SDPA kernels have no batching rule and fall back to a
per-model loop (measured: a UserWarning and no speed-up); eager attention is matmuls and a
softmax, which batch.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from transformers import ViTConfig, ViTForImageClassification

from . import ACTIVATIONS

# our activation names -> transformers' ACT2FN names
HF_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "silu", "tanh": "tanh", "sigmoid": "sigmoid", "leakyrelu": "leaky_relu"}


class ViT(ViTForImageClassification):
    """ViTForImageClassification whose forward takes images and returns logits."""

    HEAD = "classifier"  # what a fine-tune replaces

    def forward(self, pixel_values: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(pixel_values=pixel_values).logits

    def population_forward(
        self,
        p: dict[str, Tensor],
        buffers: dict[str, Tensor],
        x: Tensor,
        activation: str,
        dropout: Callable[[Tensor, int], Tensor] | None = None,
        training: bool = False,
    ) -> Tensor:
        """Logits (K x B x classes) of K models with stacked parameters `p`; `x` is K x B x C x H x W
        (a batch per model) or B x C x H x W (one batch for all). This module is the template."""
        was = self.training
        self.train(training)
        try:
            call = lambda params, bufs, images: functional_call(self, (params, bufs), (images,))  # noqa: E731
            return vmap(call, in_dims=(0, 0, 0 if x.dim() == 5 else None))(p, buffers, x)
        finally:
            self.train(was)


def vit_config(
    in_channels: int = 3,
    num_classes: int = 10,
    activation: str = "gelu",
    image_size: int = 224,
    patch_size: int = 16,
    hidden_size: int = 384,
    num_hidden_layers: int = 12,
    num_attention_heads: int = 6,
    intermediate_size: int = 1536,
) -> ViTConfig:
    """The ViTConfig of our arguments; the defaults are ViT-S/16 at 224."""
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=in_channels,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        hidden_act=HF_ACTIVATIONS[activation],
        num_labels=num_classes,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = "eager"  # batches under vmap (see the module docstring)
    return config


def vit(dropout: float = 0.0, head: str = "linear", **kwargs) -> nn.Module:
    """A ViT with a linear head (transformers' own) or an MLP head (linear, activation, linear at
    the hidden width), as the ViT zoo's fine-tunes use."""
    if dropout:
        raise ValueError("the ViT zoos use no dropout")
    model = ViT(vit_config(**kwargs))
    if head == "mlp":
        hidden, classes = model.config.hidden_size, model.config.num_labels
        act = ACTIVATIONS[kwargs.get("activation", "gelu")]()
        model.classifier = nn.Sequential(nn.Linear(hidden, hidden), act, nn.Linear(hidden, classes))
    elif head != "linear":
        raise ValueError(f"unknown head '{head}'; use linear or mlp")
    return model
