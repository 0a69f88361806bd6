"""Loading a published zoo: its tables, and its weights as one matrix.

    zoo = modelzoos.load_zoo("modelzoos/mnist-cnn-s", "final", split="train")
    W = modelzoos.weight_matrix(zoo)          # (rows, params) float32, read-only
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ModelzoosError
from .zoo_dir import ZooDir


def load_zoo(
    repo_or_path: str | Path, config: str = "metadata", split: str | None = None, **kwargs
) -> datasets.Dataset | datasets.DatasetDict:
    """`datasets.load_dataset` on a zoo: a Hub id, a hub folder, or a raw zoo directory (its
    `hub` folder is loaded). `config` is "metadata" (the default: no weights), "weights", "final"
    or a stage's name; `kwargs` go to `load_dataset` (e.g. `revision`, `streaming`)."""
    path = Path(repo_or_path)
    if path.is_dir() and not ZooDir(path).is_hub_folder():
        if ZooDir(path / "hub").is_hub_folder():
            repo_or_path = path / "hub"
        elif ZooDir(path).spec_path.is_file():
            raise ModelzoosError(f"{path} is a zoo directory without a hub folder; run `modelzoos build {path}` first")
        else:
            raise ModelzoosError(f"{path} is neither a hub folder (no metadata/) nor a zoo directory (no zoo.yaml)")
    return datasets.load_dataset(str(repo_or_path), config, split=split, **kwargs)


def weight_matrix(split: datasets.Dataset) -> np.ndarray:
    """The `weights` column of a loaded split as a (rows, params) float32 array.

    Zero-copy where Arrow holds the column in one piece: the array is a read-only view of the
    memory-mapped table (`.copy()` it to write). `load_dataset` keeps a split in pieces of at most
    one Parquet row group (about 100 MB here) and 1,000 rows, so a `final` split of up to 1,000
    models of up to ~25,000 weights is one piece; larger splits are copied once into one array.
    After `select`, `filter` or `shuffle`, the rows are gathered (a copy)."""
    if isinstance(split, datasets.DatasetDict):
        raise ValueError(f"pass one split (e.g. zoo[{next(iter(split), 'train')!r}]), or load_zoo(..., split=...); got all of them")
    if "weights" not in split.column_names:
        raise ValueError("this split has no 'weights' column; load the 'weights' or 'final' config, or a stage's")
    column = split.with_format("arrow", columns=["weights"])[:]["weights"]
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    blocks = [_block(c) for c in chunks if len(c)]
    if not blocks:
        return np.empty((0, 0), dtype=np.float32)
    if len({b.shape[1] for b in blocks}) > 1:
        raise ValueError(_SEVERAL_LAYOUTS)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


_SEVERAL_LAYOUTS = (
    "the rows have weights of different lengths (a staged zoo's stages and heads have their own layouts); "
    "load one stage's config, or filter the rows to one `stage` and `head` first"
)


def _block(chunk: pa.Array) -> np.ndarray:
    if pa.types.is_fixed_size_list(chunk.type):
        width = chunk.type.list_size
    else:  # a staged zoo's variable-length column: one matrix only if every row has one length
        lengths = pc.unique(pc.list_value_length(chunk))
        if len(lengths) != 1:
            raise ValueError(_SEVERAL_LAYOUTS)
        width = lengths[0].as_py()
    return chunk.flatten().to_numpy(zero_copy_only=True).reshape(len(chunk), width)
