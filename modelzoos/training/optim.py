"""Optimizers over stacked parameters: K models, each with its own hyperparameters.

The update rules are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, `RMSprop` with their default
betas, eps and alpha), written once over K x ... tensors with per-model lr, weight decay and
momentum as K-vectors. `torch.optim` cannot do this: its hyperparameters are scalars per param
group, and a group of models shares each stacked tensor.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from ..spec import Factors

BETAS = (0.9, 0.999)
EPS_ADAM = 1e-8
ALPHA_RMSPROP = 0.99
EPS_RMSPROP = 1e-8
# torch.optim.lr_scheduler.OneCycleLR's defaults
PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR = 0.3, 25.0, 1e4
BASE_MOMENTUM, MAX_MOMENTUM = 0.85, 0.95


def _cos_anneal(start: float | Tensor, end: float | Tensor, pct: float) -> float | Tensor:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def onecycle(step: int, total_steps: int, max_lr: Tensor) -> tuple[Tensor, float]:
    """Learning rates (per model) and momentum at `step`, as OneCycleLR computes them (two
    phases, cosine annealing, momentum cycled inversely between 0.85 and 0.95)."""
    initial = max_lr / DIV_FACTOR
    phases = [
        (float(PCT_START * total_steps) - 1, initial, max_lr, MAX_MOMENTUM, BASE_MOMENTUM),
        (total_steps - 1, max_lr, initial / FINAL_DIV_FACTOR, BASE_MOMENTUM, MAX_MOMENTUM),
    ]
    start = 0.0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - start) / (end - start)
            return _cos_anneal(lr0, lr1, pct), _cos_anneal(m0, m1, pct)
        start = end
    raise AssertionError("unreachable")


class StackedOptimizer:
    def __init__(self, params: dict[str, Tensor], factors: list[Factors]) -> None:
        kinds = {f.optimizer for f in factors}
        if len(kinds) != 1:
            raise ValueError(f"one optimizer per group, got {kinds}")
        self.kind = kinds.pop()
        self.params = params
        device = next(iter(params.values())).device

        def vec(values: Iterable[float | None]) -> Tensor:
            return torch.tensor([v or 0.0 for v in values], dtype=torch.float32, device=device)

        self.lr = vec(f.lr for f in factors)
        self.weight_decay = vec(f.weight_decay for f in factors)
        self.momentum = vec(f.momentum for f in factors)
        self.nesterov = torch.tensor([bool(f.nesterov) for f in factors], device=device)
        self.steps = torch.zeros(len(factors), dtype=torch.float32, device=device)
        self.max_lr = self.lr.clone()
        self.beta1, self.beta2 = BETAS
        buffers = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
                   "rmsprop": ("square_avg", "momentum_buffer")}[self.kind]
        self.state = {name: {b: torch.zeros_like(p) for b in buffers} for name, p in params.items()}

    # --- per-model state, for checkpoints of single models -------------------------------------

    def model_state(self, k: int) -> dict[str, Tensor]:
        out = {"step": self.steps[k].clone().cpu()}
        for name, bufs in self.state.items():
            for b, t in bufs.items():
                out[f"{b}/{name}"] = t[k].detach().clone().cpu()
        return out

    def load_model_state(self, k: int, state: dict[str, Tensor]) -> None:
        self.steps[k] = state["step"]
        for name, bufs in self.state.items():
            for b, t in bufs.items():
                t[k] = state[f"{b}/{name}"]

    def schedule(self, lr: Tensor, momentum: float) -> None:
        """Set this step's learning rates and momentum (beta1 for Adam/AdamW), as OneCycleLR does."""
        self.lr = lr
        if self.kind in ("adam", "adamw"):
            self.beta1 = momentum
        else:
            self.momentum = torch.full_like(self.momentum, momentum)

    # --- the update ------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor], active: Tensor) -> Tensor:
        """One update of every active model (bool K-vector); the others keep weights and state.

        An update that would make any weight of a model non-finite is not applied to that model:
        it keeps its last finite weights. Returns the models whose update stayed finite.
        """
        steps = self.steps + active.float()
        proposed: dict[str, tuple[Tensor, dict[str, Tensor]]] = {}
        finite = torch.ones_like(active)
        for name, p in self.params.items():
            new, state = self._update(p, grads[name], self.state[name], steps)
            finite &= torch.isfinite(new).flatten(1).all(1)
            proposed[name] = new, state
        apply = active & finite
        self.steps = torch.where(apply, steps, self.steps)
        for name, p in self.params.items():
            new, state = proposed[name]
            on = apply.view((-1,) + (1,) * (p.dim() - 1))
            p.copy_(torch.where(on, new, p))
            self.state[name] = {b: torch.where(on, t, self.state[name][b]) for b, t in state.items()}
        return finite

    def _update(self, p: Tensor, g: Tensor, s: dict[str, Tensor], steps: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The proposed new weights and optimizer state of every model, as torch.optim computes them."""
        shape = (-1,) + (1,) * (p.dim() - 1)
        lr, wd, mom = (v.view(shape) for v in (self.lr, self.weight_decay, self.momentum))
        if self.kind == "adamw":
            p_decayed = p * (1 - lr * wd)
        else:
            p_decayed = p
            g = g + wd * p
        if self.kind == "sgd":
            buf = mom * s["momentum_buffer"] + g
            direction = torch.where(self.nesterov.view(shape), g + mom * buf, buf)
            return p - lr * direction, {"momentum_buffer": buf}
        if self.kind in ("adam", "adamw"):
            b1, b2 = self.beta1, self.beta2
            m = s["exp_avg"].lerp(g, 1 - b1)
            v = s["exp_avg_sq"] * b2 + (1 - b2) * g * g
            t = steps.clamp(min=1).view(shape)
            denom = v.sqrt() / (1 - b2**t).sqrt() + EPS_ADAM
            return p_decayed - lr / (1 - b1**t) * m / denom, {"exp_avg": m, "exp_avg_sq": v}
        sq = s["square_avg"] * ALPHA_RMSPROP + (1 - ALPHA_RMSPROP) * g * g  # rmsprop
        buf = mom * s["momentum_buffer"] + g / (sq.sqrt() + EPS_RMSPROP)
        return p - lr * buf, {"square_avg": sq, "momentum_buffer": buf}
