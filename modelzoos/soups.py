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

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

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
