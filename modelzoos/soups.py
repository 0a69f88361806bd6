"""Weight averaging over a zoo: a model's last k epochs, and uniform and greedy soups of siblings.

Works on state_dicts (`modelzoos.unflatten(row["weights"], layout)` gives one per row). Soups are
meaningful for models that share their start (fine-tunes of one backbone, or epochs of one
model); averaging independently initialized models gives a poor model, and a greedy soup then
keeps only its best ingredient.

    states = [unflatten(r["weights"], layout) for r in rows_of_one_model]   # epochs in order
    averaged = epoch_average(states, k=5)
    soup, used = greedy_soup(sibling_states, score=lambda s: evaluate(model_of(s), val_x, val_y)[1])

(`evaluate` is `modelzoos.training.evaluate`: mean cross-entropy and accuracy in eval mode.)

Greedy soups follow Wortsman et al. (2022): ingredients in order of their own score, each kept
only if the soup's score does not drop. Score on held-out (validation) images and report the
test accuracy of the result, so the test split never chooses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .errors import ModelzoosError
from .spec import Stage, ZooSpec

State = Mapping[str, Tensor]


def average(states: Sequence[State]) -> dict[str, Tensor]:
    """The elementwise mean of state_dicts with the same keys and shapes (in float64, then back to
    each tensor's dtype). Integer buffers (BatchNorm's num_batches_tracked) take the first state's."""
    if not states:
        raise ValueError("average() needs at least one state_dict")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise ValueError(f"state_dict {i} has other tensors than state_dict 0; only models of one architecture average")
    out = {}
    for k in keys:
        first = states[0][k]
        if not first.is_floating_point():
            out[k] = first.clone()
            continue
        out[k] = torch.stack([s[k].double() for s in states]).mean(0).to(first.dtype)
    return out


def epoch_average(states: Sequence[State], k: int) -> dict[str, Tensor]:
    """The mean of a model's last `k` states (`states` in epoch order)."""
    if not 1 <= k <= len(states):
        raise ValueError(f"k must be between 1 and the {len(states)} epochs given, got {k}")
    return average(states[-k:])


def uniform_soup(states: Sequence[State]) -> dict[str, Tensor]:
    """All ingredients averaged with equal weight."""
    return average(states)


def greedy_soup(states: Sequence[State], score: Callable[[State], float]) -> tuple[dict[str, Tensor], list[int]]:
    """Ingredients by their own score, best first; each joins if the soup's score does not drop.
    Returns the soup and the indices (into `states`) of its ingredients."""
    if not states:
        raise ValueError("greedy_soup() needs at least one state_dict")
    own = [score(s) for s in states]
    order = sorted(range(len(states)), key=lambda i: -own[i])
    used = [order[0]]
    best = own[order[0]]
    soup = average([states[order[0]]])
    for i in order[1:]:
        candidate = average([states[j] for j in used + [i]])
        s = score(candidate)
        if s >= best:
            used, best, soup = used + [i], s, candidate
    return soup, used


def fine_tuning_stage(spec: ZooSpec) -> Stage | None:
    """The stage whose models soups compare: a staged zoo's last stage with a parent."""
    return next((st for st in reversed(spec.stages) if st.parents), None)


def soup_report(zoo_dir: str | Path, k: int = 3) -> dict[str, Any]:
    """What weight averaging gives in a staged zoo, on the fine-tuning stage's test images.

    Per fine-tune: the test accuracy of its last epoch and of the average of its last `k` epochs.
    Per backbone and head (siblings of one layout): the best sibling by validation accuracy, the
    uniform soup and the greedy soup (ingredients chosen on validation accuracy), all on test.
    Written by `write_soup_report` to the raw zoo as soups.json; the card shows it.
    """
    import safetensors.torch

    from .builder.rows import check_complete
    from .data import load_image_tensors
    from .training import evaluate
    from .training.engine import autocast_dtype, initial_model
    from .zoo_dir import ZooDir

    zoo = ZooDir(zoo_dir)
    spec = zoo.load_spec()
    tuned = fine_tuning_stage(spec)
    if tuned is None:
        raise ModelzoosError(f"{zoo.root}: '{spec.name}' has no fine-tuning stage; soups need a staged zoo such as digits-vit")
    check_complete(zoo, spec)
    stage = spec.stage_spec(tuned.name)
    data = load_image_tensors(stage.image_data)
    epochs = stage.training.epochs
    if not 1 <= k <= epochs:
        raise ModelzoosError(f"--k must be between 1 and the {epochs} fine-tuning epochs, got {k}")

    def score(entry, state, split):
        model = initial_model(stage, entry.factors)
        model.load_state_dict(state)
        return evaluate(model, *data.split(split), autocast=autocast_dtype(stage))[1]

    models = [e for e in spec.models() if e.stage == tuned.name]
    per_model, finals = [], {}
    for e in tqdm(models, desc="epoch averages", unit="model"):
        states = [safetensors.torch.load_file(zoo.checkpoint(e.model_id, ep)) for ep in range(epochs - k + 1, epochs + 1)]
        finals[e.model_id] = states[-1]
        last = zoo.read_metrics(e.model_id)[-1]["test_acc"]
        per_model.append({"model_id": e.model_id, "last": last, "averaged": score(e, epoch_average(states, k), "test")})
    families: dict[tuple, list] = {}
    for e in models:
        families.setdefault((e.parent_id, e.factors.head), []).append(e)
    per_family = []
    for (parent, head), members in tqdm(families.items(), desc="soups", unit="family"):
        states = [finals[e.model_id] for e in members]
        greedy, used = greedy_soup(states, lambda s: score(members[0], s, "val"))
        best = used[0]  # the greedy soup starts from the best sibling by validation accuracy
        per_family.append({
            "parent_id": parent, "head": head, "siblings": len(members),
            "best_sibling": score(members[best], states[best], "test"),
            "uniform_soup": score(members[0], uniform_soup(states), "test"),
            "greedy_soup": score(members[0], greedy, "test"), "greedy_ingredients": len(used),
        })
    gains = [m["averaged"] - m["last"] for m in per_model]
    return {
        "k": k,
        "models": per_model,
        "families": per_family,
        "epoch_average_gain_mean": sum(gains) / len(gains),
        "epoch_average_improved": sum(g > 0 for g in gains),
        "epoch_average_worse": sum(g < 0 for g in gains),
    }


def write_soup_report(zoo_dir: str | Path, k: int = 3) -> Path:
    """soups.json in the raw zoo directory (the card of the next `modelzoos build` shows it)."""
    from .zoo_dir import ZooDir, atomic_write

    zoo = ZooDir(zoo_dir)
    path = zoo.root / "soups.json"
    atomic_write(path, json.dumps(soup_report(zoo_dir, k), indent=1))
    return path
