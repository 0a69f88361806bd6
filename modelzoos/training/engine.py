"""The population engine: a group of K models of one structure trains in one batched step.

Parameters are stacked (K x ...), each model gathers its own batch by index from image tensors
that live on the device, and one backward pass gives every model its own gradients (the summed
loss separates). The forward is the architecture's `population_forward` (CNNs: one grouped convolution in
channels-last layout, measured 2x faster on CPU than `torch.func.vmap` over `functional_call`;
see benchmarks/RESULTS.md).

A model's seed alone fixes its initial weights, its data order and its dropout masks, each from
`derived_seed(seed, purpose, epoch)`, so a model trains the same in any group, any process and
after any resume, which needs only the optimizer state of its last finished epoch. A model whose
loss or update turns NaN or inf is marked diverged and frozen at its last finite weights; the
rest of its group go on.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import create_model, init_weights
from ..architectures.dropout import keyed_dropout, step_keys
from ..data import ImageTensors
from ..spec import Factors, ModelEntry, ZooSpec
from ..zoo_dir import ZooDir, atomic_write
from .augment import augment, black, mix, mix_draws
from .contrastive import info_nce, knn_accuracy, simclr_view
from .optim import StackedOptimizer, onecycle

# Activations of one evaluation chunk, in floats (as `activation_floats` counts them): cache-sized
# on a CPU (measured fastest there, see benchmarks/RESULTS.md); on a GPU large, so 1,000 CNN-s
# models still see ~100 images per call and a ResNet-18 ~580 images.
EVAL_ELEMENTS = {"cpu": 3 * 2**21, "cuda": 2**30}
# The seed of the fixed views a contrastive model's loss is evaluated on (the same for every model)
EVAL_VIEWS_SEED = 0


def derived_seed(seed: int, purpose: str, epoch: int = 0) -> int:
    """Independent streams per (seed, purpose, epoch), e.g. ("init"), ("order", 3), ("dropout", 3)."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def initial_model(spec: ZooSpec, f: Factors) -> nn.Module:
    """The model of factors `f` at epoch 0, on the CPU (so its weights are the same everywhere)."""
    seed = derived_seed(f.seed, "init")
    # An architecture's own init (init: default) draws from the global RNG as the module is built:
    # seed it there, and leave the caller's RNG as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(spec.architecture.name, **spec.architecture_args(f))
    init_weights(model, f.init, torch.Generator().manual_seed(seed))
    return model


def activation_floats(spec: ZooSpec) -> int:
    """Floats one training image leaves for the backward pass in one model: the architecture's
    memory per image (two views of it for info_nce), counted on the CPU (so every device sizes its
    groups alike)."""
    model = initial_model(spec, spec.models()[0].factors)
    weights = {p.data_ptr() for p in model.parameters()}
    counts = []
    # Two batch sizes: the difference is two images' worth, without the weights a layer saves.
    # (Not 1 and 2: BatchNorm in training needs more than one value per channel.)
    for n in (2, 4):
        total = 0

        def count(t: Tensor) -> Tensor:
            nonlocal total
            total += t.numel() if t.data_ptr() not in weights else 0
            return t

        with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
            data = spec.image_data
            model(torch.zeros(n, data.channels, data.image_size, data.image_size))
        counts.append(total)
    views = 2 if spec.training.loss == "info_nce" else 1
    return max(1, views * (counts[1] - counts[0]) // 2)


def start_weights(spec: ZooSpec, entry: ModelEntry, zoo: ZooDir) -> dict[str, Tensor] | None:
    """A fine-tune's epoch 0: its parent's weights at `parent_epoch` under a new head (the
    architecture's `HEAD` module, drawn from the fine-tune's own seed). None for a model without
    a parent: it starts from `initial_model`."""
    if entry.parent_id is None:
        return None
    model = initial_model(spec, entry.factors)
    head = f"{model.HEAD}."
    parent = safetensors.torch.load_file(zoo.checkpoint(entry.parent_id, entry.parent_epoch))
    state = model.state_dict()
    for name, t in state.items():
        if not name.startswith(head):
            if name not in parent or parent[name].shape != t.shape:
                raise ValueError(f"model {entry.model_id}: its parent {entry.parent_id} has no tensor '{name}' of shape {tuple(t.shape)}")
            state[name] = parent[name]
    return state


def autocast_dtype(spec: ZooSpec) -> torch.dtype | None:
    """The dtype of the spec's `training.autocast`, or None (float32 throughout)."""
    return getattr(torch, spec.training.autocast) if spec.training.autocast else None


def autocast_to(device: torch.device | str, dtype: torch.dtype | None) -> torch.autocast:
    """torch.autocast to `dtype` on `device`'s kind, off for None: every forward pass of a zoo
    (engine, plain loop, evaluation) runs under this."""
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def data_order(seed: int, epoch: int, n: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, "order", epoch)))


def dropout_base_key(seed: int, epoch: int) -> int:
    return derived_seed(seed, "dropout", epoch) & 0xFFFFFFFF


def augment_keys(
    seeds: list[int], epoch: int, step: int, device: torch.device | str, purpose: str = "augment"
) -> Tensor:
    """Per-model keys of one step's augmentation draws (`purpose`: "augment", or "view1" and
    "view2" for the two SimCLR views)."""
    base = torch.tensor([derived_seed(s, purpose, epoch) & 0xFFFFFFFF for s in seeds], device=device)
    return step_keys(base, step, 0)


def simclr_pair(x: Tensor, seeds: list[int], epoch: int, step: int, spec: ZooSpec) -> Tensor:
    """Both SimCLR views of each model's batch x (K x B x ...), side by side: K x 2B x ..."""
    data = spec.image_data
    mean = torch.tensor(data.mean if data.mean is not None else [0.0] * data.channels)
    std = torch.tensor(data.std if data.std is not None else [1.0] * data.channels)
    views = [simclr_view(x, augment_keys(seeds, epoch, step, x.device, f"view{v}"), mean, std) for v in (1, 2)]
    return torch.cat(views, 1)


def training_losses(spec: ZooSpec, out: Tensor, target: Tensor) -> Tensor:
    """Each model's loss (K) on its batch: `out` holds the logits (K x B x classes), or for
    info_nce the projections of both views (K x 2B x dim, as `simclr_pair` lays them out)."""
    if spec.training.loss == "info_nce":
        half = out.shape[1] // 2
        return info_nce(out[:, :half], out[:, half:], spec.training.temperature)
    return F.cross_entropy(
        out.flatten(0, 1), target.flatten(0, 1), reduction="none", label_smoothing=spec.training.label_smoothing
    ).view(len(out), -1).mean(1)


def structure_key(f: Factors) -> tuple:
    """Models that can share a stacked step: same module structure and same update rule."""
    return (f.activation, f.optimizer, f.head)


@dataclass
class Member:
    """One model's place in a run: its entry, the epochs it finished, where it resumes from."""

    entry: ModelEntry
    history: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, Tensor] | None = None  # the last finished epoch's state_dict
    optimizer: dict[str, Tensor] | None = None
    # SHA256SUMS as last written; None until the first epoch is written, then read from the file,
    # so a resumed (or freshly restarted) model keeps the lines of the checkpoints already there
    checksums: dict[str, str] | None = None

    @property
    def next_epoch(self) -> int:
        return len(self.history)


class Population:
    """K models as stacked parameters and buffers, their optimizer, and their forward."""

    def __init__(self, spec: ZooSpec, members: list[Member], device: torch.device) -> None:
        self.spec, self.members, self.device = spec, members, device
        factors = [m.entry.factors for m in members]
        self.template = initial_model(spec, factors[0])
        states = [m.weights if m.weights is not None else initial_model(spec, m.entry.factors).state_dict() for m in members]
        names = [n for n, _ in self.template.named_parameters()]
        self.params = {n: torch.stack([s[n] for s in states]).to(device).requires_grad_() for n in names}
        self.buffers = {n: torch.stack([s[n] for s in states]).to(device) for n, _ in self.template.named_buffers()}
        self.state_names = list(self.template.state_dict())  # the per-model module's order
        self.optimizer = StackedOptimizer(self.params, factors)
        for k, m in enumerate(members):
            if m.optimizer is not None:
                self.optimizer.load_model_state(k, {n: t.to(device) for n, t in m.optimizer.items()})
        self.dropout = torch.tensor([f.dropout for f in factors], device=device)
        self.autocast = autocast_dtype(spec)
        self.ok = torch.tensor([not m.history or m.history[-1]["status"] == "ok" for m in members], device=device)
        self._population_forward = getattr(self.template, "population_forward", None)
        if self._population_forward is None:
            raise NotImplementedError(f"architecture '{spec.architecture.name}' has no population_forward")

    def __len__(self) -> int:
        return len(self.members)

    def forward(
        self, x: Tensor, dropout: Callable[[Tensor, int], Tensor] | None = None, training: bool = False
    ) -> Tensor:
        """Logits K x B x classes; x is K x B x C x H x W (own batches) or B x C x H x W (shared).
        In training, dropout applies and BatchNorm updates the running statistics in `buffers`."""
        activation = self.members[0].entry.factors.activation
        with autocast_to(self.device, self.autocast):
            out = self._population_forward(self.params, self.buffers, x, activation, dropout, training)
        return out.float()

    def features(self, x: Tensor) -> Tensor:
        """The representation the head reads (K x B x dim), in eval mode, where the architecture
        exposes it (`population_features`); else the forward's output."""
        features = getattr(self.template, "population_features", None)
        if features is None:
            return self.forward(x)
        with autocast_to(self.device, self.autocast):
            out = features(self.params, self.buffers, x)
        return out.float()

    def model_state(self, k: int) -> dict[str, Tensor]:
        """Model k's state_dict, in the per-model module's order (clones: safetensors refuses views)."""
        stacked = {**self.params, **self.buffers}
        return {n: stacked[n][k].detach().cpu().clone() for n in self.state_names}


class GroupTrainer:
    def __init__(self, spec: ZooSpec, zoo: ZooDir, data: ImageTensors, device: torch.device) -> None:
        self.spec, self.zoo, self.data, self.device = spec, zoo, data, device
        self.per_image = activation_floats(spec)

    def resume_group(self, entries: list[ModelEntry]) -> list[Member]:
        """The group's members at the last epoch all of them can restart from.

        Each state.pt holds the optimizer state of a model's last two finished epochs, so a run
        killed while writing an epoch still leaves one epoch common to the whole group. The group
        then resumes together, as the same population: the result is the uninterrupted run's, bit
        for bit. Where no common epoch exists (state files deleted by hand), it starts afresh.
        """
        histories = [self.zoo.read_metrics(e.model_id) for e in entries]
        states = []
        for e, history in zip(entries, histories):
            path = self.zoo.state_path(e.model_id)
            saved = torch.load(path, map_location="cpu", weights_only=True)["epochs"] if path.is_file() else {}
            states.append({ep: opt for ep, opt in saved.items() if ep < len(history)})
        epoch = min(max(s, default=-1) for s in states)
        if epoch < 0 or not all(epoch in s for s in states):
            return [Member(e, weights=start_weights(self.spec, e, self.zoo)) for e in entries]
        return [
            Member(e, h[: epoch + 1], safetensors.torch.load_file(self.zoo.checkpoint(e.model_id, epoch)), s[epoch])
            for e, h, s in zip(entries, histories, states)
        ]

    # --- the loop ------------------------------------------------------------------------------

    def run(self, members: list[Member], on_epoch: Callable[[], None] = lambda: None) -> None:
        """Train a group (all at one epoch) to the last epoch, writing every epoch."""
        pop = Population(self.spec, members, self.device)
        epochs = self.spec.training.epochs
        for epoch in range(members[0].next_epoch, epochs + 1):
            if epoch > 0:
                self.train_epoch(pop, epoch)
            self.finish_epoch(pop, epoch, last=epoch == epochs)
            for _ in range(len(pop)):
                on_epoch()

    def train_epoch(self, pop: Population, epoch: int) -> None:
        x, y = self.data.train_x, self.data.train_y
        bs = self.spec.training.batch_size
        seeds = [m.entry.factors.seed for m in pop.members]
        orders = torch.stack([data_order(s, epoch, len(y)) for s in seeds]).to(self.device)
        use_dropout = bool((pop.dropout > 0).any())
        base = torch.tensor([dropout_base_key(s, epoch) for s in seeds], device=self.device)
        aug = self.spec.training.augmentation
        fill = black(self.spec.image_data.mean, self.spec.image_data.std, x.shape[1]).to(self.device)
        params = list(pop.params.values())
        steps_per_epoch = math.ceil(len(y) / bs)
        for step, start in enumerate(range(0, len(y), bs)):
            if self.spec.training.scheduler == "onecycle":  # a function of the global step: nothing to resume
                total = self.spec.training.epochs * steps_per_epoch
                pop.optimizer.schedule(*onecycle((epoch - 1) * steps_per_epoch + step, total, pop.optimizer.max_lr))
            idx = orders[:, start : start + bs]
            dropout = None
            if use_dropout:
                dropout = lambda h, layer, _s=step: keyed_dropout(h, pop.dropout, step_keys(base, _s, layer))  # noqa: E731
            xb, target = x[idx], y[idx]
            if aug:
                xb = augment(xb, augment_keys(seeds, epoch, step, self.device), aug, fill)
            if aug.mixup or aug.cutmix:
                xb, target = mix(xb, target, mix_draws(seeds, epoch, step, aug), self.spec.image_data.num_classes)
            if self.spec.training.loss == "info_nce":
                xb = simclr_pair(xb, seeds, epoch, step, self.spec)
            # a diverged model keeps its last finite buffers (BatchNorm statistics) as its weights
            before = {n: b.clone() for n, b in pop.buffers.items()}
            losses = training_losses(self.spec, pop.forward(xb, dropout, training=True), target)
            pop.ok &= torch.isfinite(losses)
            # Models are independent, so the gradient of the sum is each model's own gradient.
            grads = torch.autograd.grad(torch.where(pop.ok, losses, 0.0).sum(), params)
            pop.ok &= pop.optimizer.step(dict(zip(pop.params, grads)), pop.ok)
            for n, b in pop.buffers.items():
                b.copy_(torch.where(pop.ok.view(-1, *[1] * (b.dim() - 1)), b, before[n]))

    def metrics(self, pop: Population) -> dict[str, Tensor]:
        """Every model's losses and accuracies (K-vectors) on the train, val and test images."""
        metrics = {}
        if self.spec.training.loss == "info_nce":
            metrics = self.evaluate_contrastive(pop)
        else:
            for split in ("train", "val", "test"):
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = self.evaluate(pop, *self.data.split(split))
        metrics["ggap"] = metrics["train_acc"] - metrics["test_acc"]
        return metrics

    def _chunk(self, pop: Population, per_item: int | None = None) -> int:
        """Items (images, by default of `per_image` floats each) per evaluation call."""
        return max(1, EVAL_ELEMENTS.get(self.device.type, EVAL_ELEMENTS["cpu"]) // (len(pop) * (per_item or self.per_image)))

    @torch.no_grad()
    def evaluate(self, pop: Population, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy and accuracy (K-vectors) of every model on images x, labels y."""
        K = len(pop)
        if len(y) == 0:
            return torch.full((K,), math.nan), torch.full((K,), math.nan)
        chunk = self._chunk(pop)
        loss = torch.zeros(K, dtype=torch.float64, device=self.device)
        correct = torch.zeros(K, dtype=torch.int64, device=self.device)
        for i in range(0, len(y), chunk):
            logits = pop.forward(x[i : i + chunk])
            target = y[i : i + chunk].expand(K, -1)
            loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1, dtype=torch.float64)
            correct += (logits.argmax(-1) == target).sum(1)
        return (loss / len(y)).cpu(), (correct.double() / len(y)).cpu()

    @torch.no_grad()
    def evaluate_contrastive(self, pop: Population) -> dict[str, Tensor]:
        """A contrastive model's metrics: per split, InfoNCE on two fixed views of its images (the
        same views for every model and epoch, in training-sized batches) and the k-NN accuracy of
        its representation (`Population.features`: the backbone's, before the projection head, as
        SimCLR evaluates) against the training images' (`contrastive.knn_accuracy`; on the
        training images leave-one-out)."""
        K, chunk, bs = len(pop), self._chunk(pop), self.spec.training.batch_size

        def embed(x: Tensor) -> Tensor:
            return torch.cat([pop.features(x[i : i + chunk]) for i in range(0, len(x), chunk)], 1)

        bank_x, bank_y = self.data.split("train")
        bank = embed(bank_x)
        # k-NN similarities are K x queries x bank: as many as an evaluation chunk's activations
        queries = self._chunk(pop, per_item=max(1, len(bank_y)))
        out = {}
        for split in ("train", "val", "test"):
            x, y = self.data.split(split)
            if len(y) == 0:
                out[f"{split}_loss"], out[f"{split}_acc"] = torch.full((K,), math.nan), torch.full((K,), math.nan)
                continue
            loss = torch.zeros(K, dtype=torch.float64, device=self.device)
            for step, i in enumerate(range(0, len(y), bs)):
                pair = simclr_pair(x[None, i : i + bs], [EVAL_VIEWS_SEED], 0, step, self.spec)[0]
                loss += training_losses(self.spec, pop.forward(pair), y).double() * len(y[i : i + bs])
            emb = bank if split == "train" else embed(x)
            correct = torch.zeros(K, dtype=torch.int64, device=self.device)
            for i in range(0, len(y), queries):
                own = torch.arange(i, min(i + queries, len(y)), device=self.device) if split == "train" else None
                correct += knn_accuracy(bank, bank_y, emb[:, i : i + queries], y[i : i + queries], self_index=own)
            out[f"{split}_loss"], out[f"{split}_acc"] = (loss / len(y)).cpu(), (correct.double() / len(y)).cpu()
        return out

    def finish_epoch(self, pop: Population, epoch: int, last: bool) -> None:
        """Evaluate; per model write checkpoint, SHA256SUMS and metrics (the commit point); then
        the resume states, only once every model of the group has committed the epoch."""
        metrics = self.metrics(pop)
        for k, member in enumerate(pop.members):
            state = pop.model_state(k)
            finite = math.isfinite(metrics["train_loss"][k]) and all(
                torch.isfinite(t).all() for t in state.values() if t.is_floating_point()
            )
            if not finite:
                pop.ok[k] = False
            row = {"epoch": epoch, **{n: _num(float(v[k])) for n, v in metrics.items()}}
            row["status"] = "ok" if bool(pop.ok[k]) else "diverged"
            model_id = member.entry.model_id
            data = safetensors.torch.save(state)
            path = self.zoo.checkpoint(model_id, epoch)
            atomic_write(path, data)
            # Hashed from memory, not re-read: the sum is of what training wrote. Before the
            # metrics line, so every committed epoch has its line; an epoch trained again after a
            # kill writes the same bytes, so its line is rewritten unchanged.
            if member.checksums is None:
                member.checksums = self.zoo.read_manifest(model_id)
            member.checksums[path.name] = hashlib.sha256(data).hexdigest()
            self.zoo.write_manifest(model_id, member.checksums)
            member.history.append(row)
            self.zoo.write_metrics(model_id, member.history)
        for k, member in enumerate(pop.members):
            path = self.zoo.state_path(member.entry.model_id)
            if last:
                path.unlink(missing_ok=True)
                continue
            current = pop.optimizer.model_state(k)
            kept = {epoch: current, **({epoch - 1: member.optimizer} if member.optimizer is not None else {})}
            member.optimizer = current
            buf = io.BytesIO()
            torch.save({"epochs": kept}, buf)
            atomic_write(path, buf.getvalue())


def _num(v: float) -> float | None:
    """JSON has no NaN or inf: an undefined metric (no validation images, a diverged loss) is null."""
    return v if math.isfinite(v) else None
