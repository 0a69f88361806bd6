"""How a state_dict becomes one flat float32 vector, and back.

The vector is the state_dict's floating tensors concatenated in state_dict order, each in PyTorch
(row-major) memory order. The layout records, for each tensor: name, shape, offset, numel and
kind (parameter or buffer); it is published as layout.json beside the tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LayoutEntry:
    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int
    kind: str  # "parameter" or "buffer"


@dataclass(frozen=True)
class Layout:
    entries: tuple[LayoutEntry, ...]

    @property
    def numel(self) -> int:
        return sum(e.numel for e in self.entries)

    @property
    def n_params(self) -> int:
        return sum(e.numel for e in self.entries if e.kind == "parameter")

    def to_json(self) -> str:
        return json.dumps(
            {"numel": self.numel, "dtype": "float32", "tensors": [asdict(e) for e in self.entries]},
            indent=1,
        )

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> Layout:
        d = json.loads(data) if isinstance(data, str) else data
        return cls(tuple(LayoutEntry(**{**t, "shape": tuple(t["shape"])}) for t in d["tensors"]))


def layout_of(model: nn.Module) -> Layout:
    params = {name for name, _ in model.named_parameters()}
    entries, offset = [], 0
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue  # e.g. BatchNorm's num_batches_tracked: not a weight
        entries.append(
            LayoutEntry(name, tuple(t.shape), offset, t.numel(), "parameter" if name in params else "buffer")
        )
        offset += t.numel()
    return Layout(tuple(entries))


def flatten(state_dict: Mapping[str, torch.Tensor], layout: Layout, out: torch.Tensor | None = None) -> torch.Tensor:
    """The flat float32 vector of `state_dict`; into `out` (float32, numel long) when given."""
    return torch.cat([state_dict[e.name].detach().reshape(-1).float().cpu() for e in layout.entries], out=out)


def unflatten(
    vector: torch.Tensor | np.ndarray | Sequence[float], layout: Layout | Mapping[str, Any] | str | Path
) -> dict[str, torch.Tensor]:
    """A flat `weights` vector -> state_dict tensors, per `layout` (a Layout, layout.json's dict or its path)."""
    if isinstance(layout, (str, Path)):
        layout = Layout.from_json(Path(layout).read_text())
    elif not isinstance(layout, Layout):
        layout = Layout.from_json(layout)
    v = torch.as_tensor(np.asarray(vector, dtype=np.float32))
    if v.ndim != 1 or v.numel() != layout.numel:
        raise ValueError(f"weights vector has shape {tuple(v.shape)}; the layout needs ({layout.numel},)")
    return {e.name: v[e.offset : e.offset + e.numel].view(e.shape).clone() for e in layout.entries}
