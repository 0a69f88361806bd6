"""Train a group of models epoch by epoch, in lockstep, writing every epoch as it finishes.

A model's seed alone fixes its initial weights, its data order and its dropout masks: each comes
from a generator seeded by `derived_seed(seed, purpose, epoch)`, never from the global RNG's
history. So a model trains the same alone or in any group, in any process, and a resumed run
needs only the optimizer state of the last finished epoch.

This version steps the members of a group one after the other; the group is the unit that a
batched (vmap) step will replace, with this loop as its reference.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..architectures import create_model, init_weights
from ..data import ImageTensors
from ..spec import Factors, ModelEntry, ZooSpec
from ..zoo_dir import ZooDir, atomic_write

EVAL_BATCH = 1000


def derived_seed(seed: int, purpose: str, epoch: int = 0) -> int:
    """Independent streams per (seed, purpose, epoch), e.g. ("init"), ("order", 3), ("dropout", 3)."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def make_optimizer(params: Any, f: Factors) -> torch.optim.Optimizer:
    if f.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=f.lr, momentum=f.momentum, nesterov=bool(f.nesterov), weight_decay=f.weight_decay
        )
    if f.optimizer == "adam":
        return torch.optim.Adam(params, lr=f.lr, weight_decay=f.weight_decay)
    if f.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=f.lr, weight_decay=f.weight_decay)
    if f.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=f.lr, momentum=f.momentum or 0.0, weight_decay=f.weight_decay)
    raise ValueError(f"unknown optimizer {f.optimizer}")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) on images `x`, labels `y`."""
    if len(y) == 0:
        return math.nan, math.nan
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), EVAL_BATCH):
        logits = model(x[i : i + EVAL_BATCH])
        loss += F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + EVAL_BATCH]).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


@dataclass
class Member:
    entry: ModelEntry
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics of finished epochs
    rng_state: list[torch.Tensor] | None = None  # dropout RNG between steps of an epoch

    @property
    def next_epoch(self) -> int:
        return len(self.history)

    @property
    def status(self) -> str:
        return self.history[-1]["status"] if self.history else "ok"


class GroupTrainer:
    def __init__(self, spec: ZooSpec, zoo: ZooDir, data: ImageTensors, device: torch.device) -> None:
        self.spec, self.zoo, self.data, self.device = spec, zoo, data, device

    # --- members -------------------------------------------------------------------------------

    def new_member(self, entry: ModelEntry) -> Member:
        f = entry.factors
        model = create_model(self.spec.architecture.name, **self.spec.architecture_args(f))
        # Init on the CPU so the initial weights are the same on every device.
        init_weights(model, f.init, torch.Generator().manual_seed(derived_seed(f.seed, "init")))
        model.to(self.device)
        return Member(entry, model, make_optimizer(model.parameters(), f))

    def resume_member(self, entry: ModelEntry) -> Member:
        """Continue from the last epoch whose optimizer state was saved; start afresh otherwise."""
        member = self.new_member(entry)
        history = self.zoo.read_metrics(entry.model_id)
        path = self.zoo.state_path(entry.model_id)
        if not history or not path.is_file():
            return member
        state = torch.load(path, map_location=self.device, weights_only=True)
        epoch = state["epoch"]
        if epoch >= len(history):
            return member
        weights = safetensors.torch.load_file(self.zoo.checkpoint(entry.model_id, epoch), device=str(self.device))
        member.model.load_state_dict(weights)
        member.optimizer.load_state_dict(state["optimizer"])
        member.history = history[: epoch + 1]
        return member

    # --- the loop ------------------------------------------------------------------------------

    def run(self, members: list[Member], on_epoch: Callable[[], None] = lambda: None) -> None:
        """Bring every member to the last epoch; members may start at different epochs."""
        epochs = self.spec.training.epochs
        for epoch in range(min(m.next_epoch for m in members), epochs + 1):
            active = [m for m in members if m.next_epoch == epoch]
            if epoch > 0:
                self.train_epoch(active, epoch)
            for m in active:
                self.finish_epoch(m, epoch, last=epoch == epochs)
                on_epoch()

    def train_epoch(self, members: list[Member], epoch: int) -> None:
        x, y = self.data.train_x, self.data.train_y
        bs = self.spec.training.batch_size
        orders = []
        for m in members:
            g = torch.Generator().manual_seed(derived_seed(m.entry.factors.seed, "order", epoch))
            orders.append(torch.randperm(len(y), generator=g).to(self.device))
            m.rng_state = None
            m.model.train()
        for start in range(0, len(y), bs):
            for m, order in zip(members, orders):
                if m.status != "ok":
                    continue  # a diverged model stops updating; the others go on
                idx = order[start : start + bs]
                with self._dropout_rng(m, epoch):
                    loss = F.cross_entropy(m.model(x[idx]), y[idx])
                m.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                m.optimizer.step()

    @contextlib.contextmanager
    def _dropout_rng(self, m: Member, epoch: int) -> Iterator[None]:
        """Run with the member's own RNG stream, so dropout masks do not depend on the group."""
        if m.entry.factors.dropout == 0:
            yield
            return
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            if m.rng_state is None:
                torch.manual_seed(derived_seed(m.entry.factors.seed, "dropout", epoch))
            else:
                torch.set_rng_state(m.rng_state[0])
                if cuda:
                    torch.cuda.set_rng_state(m.rng_state[1], self.device)
            yield
            m.rng_state = [torch.get_rng_state()] + ([torch.cuda.get_rng_state(self.device)] if cuda else [])

    def finish_epoch(self, m: Member, epoch: int, last: bool) -> None:
        """Evaluate, then write checkpoint, metrics (the commit point) and resume state."""
        metrics: dict[str, float] = {}
        for split in ("train", "val", "test"):
            metrics[f"{split}_loss"], metrics[f"{split}_acc"] = evaluate(m.model, *self.data.split(split))
        metrics["ggap"] = metrics["train_acc"] - metrics["test_acc"]
        weights = [t for t in m.model.state_dict().values() if t.is_floating_point()]
        finite = math.isfinite(metrics["train_loss"]) and all(torch.isfinite(t).all() for t in weights)
        status = "ok" if m.status == "ok" and finite else "diverged"
        row = {"epoch": epoch, **{k: _num(v) for k, v in metrics.items()}, "status": status}

        model_id = m.entry.model_id
        tensors = {k: v.detach().cpu().contiguous() for k, v in m.model.state_dict().items()}
        atomic_write(self.zoo.checkpoint(model_id, epoch), safetensors.torch.save(tensors))
        m.history.append(row)
        self.zoo.write_metrics(model_id, m.history)
        if last:
            self.zoo.state_path(model_id).unlink(missing_ok=True)
        else:
            buf = io.BytesIO()
            torch.save({"epoch": epoch, "optimizer": m.optimizer.state_dict()}, buf)
            atomic_write(self.zoo.state_path(model_id), buf.getvalue())


def _num(v: float) -> float | None:
    """JSON has no NaN or inf: an undefined metric (no validation images, a diverged loss) is null."""
    return v if math.isfinite(v) else None
