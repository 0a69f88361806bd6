"""The rows of a zoo table: one per (model, epoch), read from the raw zoo directory."""

from __future__ import annotations

import dataclasses
import json
import typing

import datasets
import numpy as np
import pyarrow as pa
import safetensors.torch

from ..architectures import create_model
from ..errors import ModelzoosError
from ..spec import Factors, ZooSpec
from ..zoo_dir import ZooDir
from .layout import Layout, flatten, layout_of

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ggap")
_FACTOR_TYPES = {int: "int64", float: "float64", str: "string", bool: "bool"}


def zoo_layout(spec: ZooSpec) -> Layout:
    """Every model of a zoo shares one layout (factors such as activation do not change it)."""
    f = spec.models()[0].factors
    return layout_of(create_model(spec.architecture.name, **spec.architecture_args(f)))


def features(layout: Layout, weights: bool) -> datasets.Features:
    """Column types: ids and lineage, the factors as typed columns, metrics, and maybe weights."""
    hints = typing.get_type_hints(Factors)
    cols: dict[str, typing.Any] = {
        "model_id": datasets.Value("string"),
        "epoch": datasets.Value("int32"),
        "stage": datasets.Value("string"),
        "parent_id": datasets.Value("string"),
        "parent_epoch": datasets.Value("int32"),
    }
    for f in dataclasses.fields(Factors):
        (kind,) = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        cols[f.name] = datasets.Value(_FACTOR_TYPES[kind])
    cols["architecture"] = datasets.Value("string")
    cols["architecture_args"] = datasets.Value("string")
    cols["n_params"] = datasets.Value("int64")
    for m in METRICS:
        cols[m] = datasets.Value("float64")
    cols["status"] = datasets.Value("string")
    if weights:
        cols["weights"] = datasets.List(datasets.Value("float32"), length=layout.numel)
    return datasets.Features(cols)


def incomplete_models(zoo: ZooDir, spec: ZooSpec) -> list[str]:
    """Models of the spec that miss an epoch's metrics or checkpoint."""
    epochs = range(spec.training.epochs + 1)
    bad = []
    for entry in spec.models():
        rows = zoo.read_metrics(entry.model_id)
        if len(rows) != len(epochs) or not all(zoo.checkpoint(entry.model_id, e).is_file() for e in epochs):
            bad.append(entry.model_id)
    return bad


def check_complete(zoo: ZooDir, spec: ZooSpec) -> None:
    bad = incomplete_models(zoo, spec)
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ModelzoosError(
            f"{zoo.root}: {len(bad)} of {len(spec.models())} models are not fully trained ({shown}). "
            "Run the same `modelzoos train` command again: it resumes."
        )


def model_table(zoo: ZooDir, model_id: str, features: datasets.Features, layout: Layout) -> pa.Table:
    """All epochs of one model; with a `weights` column when `features` has one."""
    config = zoo.read_config(model_id)
    metrics = zoo.read_metrics(model_id)
    n = len(metrics)
    columns: dict[str, typing.Any] = {
        "model_id": [model_id] * n,
        "epoch": [r["epoch"] for r in metrics],
        "stage": [config["stage"]] * n,
        "parent_id": [config["parent_id"]] * n,
        "parent_epoch": [config["parent_epoch"]] * n,
        **{f.name: [config["factors"][f.name]] * n for f in dataclasses.fields(Factors)},
        "architecture": [config["architecture"]] * n,
        "architecture_args": [json.dumps(config["architecture_args"], sort_keys=True)] * n,
        "n_params": [layout.n_params] * n,
        **{m: [r[m] for r in metrics] for m in METRICS},
        "status": [r["status"] for r in metrics],
    }
    if "weights" in features:
        flat = np.stack(
            [flatten(safetensors.torch.load_file(zoo.checkpoint(model_id, r["epoch"])), layout).numpy() for r in metrics]
        )
        columns["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), layout.numel)
    return pa.Table.from_pydict(columns, schema=features.arrow_schema)
