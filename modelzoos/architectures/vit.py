"""Vision transformers: Hugging Face `transformers`' ViTForImageClassification, by name.

`create_model("vit", image_size=32, patch_size=4, hidden_size=64, ...)` builds the model from a
`ViTConfig`, and its forward is transformers' own (an `ImageClassifierOutput`; take `.logits`, or
call `architectures.logits_of(model, x)`, which also takes the CNNs' tensors). The head is part of
the config (`config.head`, "linear" or "mlp"), so `ViT.from_pretrained` reopens every checkpoint and
`ViTForImageClassification.from_pretrained` the linear-head ones (`export_pretrained` writes them).

`population_forward` runs K models with `torch.func.vmap` over `functional_call`, with eager
attention: under vmap, PyTorch's CPU SDPA kernels have no batching rule and fall back to a
per-model loop (measured: a UserWarning and no speed-up); eager attention is matmuls and a
softmax, which batch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import safetensors.torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from transformers import ViTConfig, ViTForImageClassification
from transformers.utils import SAFE_WEIGHTS_NAME

from . import ACTIVATIONS

# our activation names -> transformers' ACT2FN names
HF_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "silu", "tanh": "tanh", "sigmoid": "sigmoid", "leakyrelu": "leaky_relu"}
OUR_ACTIVATIONS = {hf: ours for ours, hf in HF_ACTIVATIONS.items()}


class ViT(ViTForImageClassification):
    """ViTForImageClassification whose head is linear (transformers' own) or, with `config.head`
    "mlp", linear, activation, linear at the hidden width, as the ViT zoo's fine-tunes use."""

    HEAD = "classifier"  # what a fine-tune replaces

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        head = getattr(config, "head", "linear")
        if head == "mlp":
            # Replaced after transformers' init, with PyTorch's default init drawn from the global RNG,
            # as the zoo's MLP fine-tunes were built: the same seed gives the same starting weights.
            hidden, classes = config.hidden_size, config.num_labels
            act = ACTIVATIONS[OUR_ACTIVATIONS[config.hidden_act]]()
            self.classifier = nn.Sequential(nn.Linear(hidden, hidden), act, nn.Linear(hidden, classes))
        elif head != "linear":
            raise ValueError(f"unknown head '{head}'; use linear or mlp")

    def export_pretrained(self, state: dict[str, Tensor], directory: str | Path, **info: Any) -> None:
        """Write `state` (a state_dict of this model's shape, e.g. a zoo checkpoint) as a checkpoint
        `from_pretrained` opens: config.json (`info` under the key `modelzoos`) and model.safetensors."""
        own = self.state_dict()
        if state.keys() != own.keys() or any(state[k].shape != t.shape for k, t in own.items()):
            raise ValueError("the state_dict does not fit this ViT: other tensor names or shapes")
        config = copy.deepcopy(self.config)
        # transformers would name our subclass; readers without modelzoos know the class it extends
        config.architectures = [ViTForImageClassification.__name__]
        config.modelzoos = info
        config.save_pretrained(directory)
        # {"format": "pt"} as save_pretrained writes it: older transformers refuse a file without it
        safetensors.torch.save_file(state, Path(directory) / SAFE_WEIGHTS_NAME, metadata={"format": "pt"})

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
            call = lambda params, bufs, images: functional_call(self, (params, bufs), (images,)).logits  # noqa: E731
            return vmap(call, in_dims=(0, 0, 0 if x.dim() == 5 else None))(p, buffers, x)
        finally:
            self.train(was)

    def population_features(self, p: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        """The backbone's representation (K x B x hidden: the final layer-normed CLS token, what
        the head reads) of K models in eval mode; `x` as for `population_forward`."""
        backbone = {n.removeprefix("vit."): t for n, t in {**p, **buffers}.items() if n.startswith("vit.")}
        was = self.training
        self.eval()
        try:
            call = lambda params, images: functional_call(self.vit, params, (images,)).last_hidden_state[:, 0]  # noqa: E731
            return vmap(call, in_dims=(0, 0 if x.dim() == 5 else None))(backbone, x)
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
    head: str = "linear",
) -> ViTConfig:
    """The ViTConfig of our arguments; the defaults are ViT-S/16 at 224. `head` is an extra key
    (transformers keeps and saves unknown ones) that `ViT` reads."""
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
        head=head,
    )
    config._attn_implementation = "eager"  # batches under vmap (see the module docstring)
    return config


def vit(dropout: float = 0.0, **kwargs) -> nn.Module:
    """A ViT of `vit_config`'s arguments (`head="linear"` or `"mlp"`)."""
    if dropout:
        raise ValueError("the ViT zoos use no dropout")
    return ViT(vit_config(**kwargs))
