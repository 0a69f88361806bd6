"""The plain PyTorch loop: one model at a time with `torch.optim`, as the original zoos trained.

It is the reference the population engine is tested against (a model trained in a group equals
the same model trained alone) and the baseline of `benchmarks/population_throughput.py`. It draws
the engine's seeds (initial weights, data order, dropout keys), so the two can agree.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import logits_of
from ..architectures.dropout import SeededDropout, step_keys
from ..data import ImageTensors
from ..spec import Factors, ModelEntry, ZooSpec
from .augment import augment, black, mix, mix_draws
from .engine import (
    augment_keys,
    autocast_dtype,
    autocast_to,
    data_order,
    dropout_base_key,
    initial_model,
    simclr_pair,
    training_losses,
)

EVAL_BATCH = 1000


def make_optimizer(params: Any, f: Factors) -> torch.optim.Optimizer:
    if f.optimizer == "sgd":
        return torch.optim.SGD(params, lr=f.lr, momentum=f.momentum, nesterov=bool(f.nesterov), weight_decay=f.weight_decay)
    if f.optimizer == "adam":
        return torch.optim.Adam(params, lr=f.lr, weight_decay=f.weight_decay)
    if f.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=f.lr, weight_decay=f.weight_decay)
    if f.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=f.lr, momentum=f.momentum or 0.0, weight_decay=f.weight_decay)
    raise ValueError(f"unknown optimizer {f.optimizer}")


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, autocast: torch.dtype | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) on images `x`, labels `y`, its
    forward under torch.autocast to `autocast` if given (as the zoo's spec says, `autocast_dtype`)."""
    if len(y) == 0:
        return math.nan, math.nan
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), EVAL_BATCH):
        with autocast_to(x.device, autocast):
            logits = logits_of(model, x[i : i + EVAL_BATCH]).float()
        loss += F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + EVAL_BATCH]).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


def train_alone(
    spec: ZooSpec, entry: ModelEntry, data: ImageTensors, device: torch.device | str = "cpu"
) -> list[dict[str, Tensor]]:
    """Train one model for the spec's epochs; its state_dict after every epoch (0 = initial)."""
    f = entry.factors
    # channels-last, as the engine's grouped convolutions: the same kernels round alike, so the two
    # trajectories stay close for longer (training amplifies any rounding difference)
    model = initial_model(spec, f).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), f)
    scheduler = None
    if spec.training.scheduler == "onecycle":
        total = spec.training.epochs * math.ceil(len(data.train_y) / spec.training.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=f.lr, total_steps=total)
    drops = [m for m in model.modules() if isinstance(m, SeededDropout)] if f.dropout > 0 else []
    x, y = data.train_x, data.train_y
    bs = spec.training.batch_size
    aug = spec.training.augmentation
    fill = black(spec.image_data.mean, spec.image_data.std, x.shape[1]).to(device)
    half = autocast_dtype(spec)
    states = [_state(model)]
    for epoch in range(1, spec.training.epochs + 1):
        model.train()
        order = data_order(f.seed, epoch, len(y)).to(device)
        base = torch.tensor([dropout_base_key(f.seed, epoch)], device=device)
        for step, start in enumerate(range(0, len(y), bs)):
            for layer, d in enumerate(drops):
                d.key = step_keys(base, step, layer)
            idx = order[start : start + bs]
            xb, target = x[idx], y[idx]
            if aug:
                xb = augment(xb[None], augment_keys([f.seed], epoch, step, device), aug, fill)[0]
            if aug.mixup or aug.cutmix:
                mixed, soft = mix(xb[None], target[None], mix_draws([f.seed], epoch, step, aug), spec.image_data.num_classes)
                xb, target = mixed[0], soft[0]
            if spec.training.loss == "info_nce":
                xb = simclr_pair(xb[None], [f.seed], epoch, step, spec)[0]
            with autocast_to(device, half):
                out = logits_of(model, xb.contiguous(memory_format=torch.channels_last)).float()
            loss = training_losses(spec, out[None], target[None])[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        states.append(_state(model))
    for d in drops:
        d.key = None
    return states


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
