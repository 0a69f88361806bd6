"""A dataset row back to a working torch module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from .architectures import create_model
from .builder.layout import Layout, layout_of, unflatten


def to_model(row: Mapping[str, Any], layout: Layout | Mapping[str, Any] | str | Path | None = None) -> nn.Module:
    """Rebuild the module of a `weights`-config row and load the row's weights into it (eval mode).

    The layout is the architecture's own; pass the zoo's layout.json to check it matches.
    """
    if "weights" not in row:
        raise ValueError(
            "this row has no 'weights' column; load the 'weights' config, e.g. "
            "load_dataset(REPO_OR_PATH, 'weights')"
        )
    model = create_model(row["architecture"], **json.loads(row["architecture_args"]))
    own = layout_of(model)
    if layout is not None:
        given = layout if isinstance(layout, Layout) else _read_layout(layout)
        if given != own:
            raise ValueError(f"the given layout does not match architecture '{row['architecture']}'")
    # `weights` holds the floating tensors; integer buffers (e.g. BatchNorm's step count) keep their defaults.
    result = model.load_state_dict(unflatten(row["weights"], own), strict=False)
    floating = {e.name for e in own.entries}
    assert not result.unexpected_keys and not floating & set(result.missing_keys), result
    return model.eval()


def _read_layout(layout: Mapping[str, Any] | str | Path) -> Layout:
    if isinstance(layout, (str, Path)):
        return Layout.from_json(Path(layout).read_text())
    return Layout.from_json(layout)
