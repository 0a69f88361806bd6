"""Packed checkpoints: every epoch of one model in one safetensors file, for people who want the
raw tensors without the tables.

`checkpoints/<model_id>.safetensors` holds each state_dict entry once, stacked over epochs: the
tensor `conv1.weight` of shape (E + 1, *shape), its row e the weights after epoch e (0 = initial).
Integer buffers (BatchNorm's step count) are stacked too. The file's metadata says which model and
epochs. Any safetensors reader opens it; `epoch_state` reads one epoch without the others:

    from modelzoos.packed import epoch_state
    state = epoch_state("checkpoints/0f3a9c1e2b7d.safetensors", epoch=20)
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import safe_open

from .errors import ModelzoosError

PACKED_DIR = "checkpoints"


def write_packed(files: list[Path], dest: Path, metadata: dict[str, str] | None = None) -> None:
    """Stack the checkpoints `files` (epoch 0 first) into `dest`.

    Written here rather than with `safetensors.torch.save_file`, which takes the whole state in
    memory: stacking 61 epochs of a ResNet-18 would hold 2.7 GB. This writes the header from the
    tensors' shapes, then each tensor epoch by epoch, so memory holds one tensor of one epoch."""
    handles = [safe_open(str(f), "pt") for f in files]
    names = list(handles[0].keys())
    header: dict[str, dict] = {}
    offset = 0
    for name in names:
        view = handles[0].get_slice(name)
        shape, dtype = list(view.get_shape()), view.get_dtype()
        for f, h in zip(files, handles):
            if name not in h.keys() or list(h.get_slice(name).get_shape()) != shape or h.get_slice(name).get_dtype() != dtype:
                raise ModelzoosError(f"{f}: tensor '{name}' differs from {files[0]}'s; these are not one model's epochs")
        if dtype not in _ITEMSIZE:
            raise ModelzoosError(f"{files[0]}: tensor '{name}' has dtype {dtype}, which packed checkpoints do not hold")
        size = torch.Size(shape).numel() * _ITEMSIZE[dtype] * len(files)
        header[name] = {"dtype": dtype, "shape": [len(files), *shape], "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt", "epochs": json.dumps(list(range(len(files)))), **(metadata or {})}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data to 8 bytes
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for name in names:
            for h in handles:
                # reshape first: a 0-dim tensor (BatchNorm's step count) has no byte view
                out.write(h.get_tensor(name).reshape(-1).view(torch.uint8).numpy().tobytes())


def epoch_state(path: str | Path, epoch: int) -> dict[str, torch.Tensor]:
    """The state_dict of one epoch of a packed checkpoint, reading only that epoch's bytes."""
    with safe_open(str(path), "pt") as f:
        epochs = len(json.loads(f.metadata()["epochs"]))
        if not 0 <= epoch < epochs:
            raise ValueError(f"{path} holds epochs 0..{epochs - 1}; there is no epoch {epoch}")
        return {name: f.get_slice(name)[epoch] for name in f.keys()}


_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
