"""The rows of a zoo table: one per (model, epoch), read from the raw zoo directory."""

from __future__ import annotations

import dataclasses
import json
import typing

import datasets
import numpy as np
import pyarrow as pa
import safetensors.torch
import torch
from torch import nn

from ..architectures import create_model
from ..errors import ModelzoosError
from ..spec import Factors, ModelEntry, ZooSpec
from ..zoo_dir import ZooDir
from .layout import Layout, flatten, layout_of

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ggap")
_FACTOR_TYPES = {int: "int64", float: "float64", str: "string", bool: "bool"}


def stage_of(spec: ZooSpec, entry: ModelEntry) -> ZooSpec:
    """The single-stage spec a model trained under."""
    return spec.stage_spec(entry.stage) if spec.stages else spec


def model_templates(spec: ZooSpec) -> dict[str, nn.Module]:
    """Each model's module, untrained, by model_id; models of one architecture and arguments share
    one (factors such as the seed or optimizer do not change the module)."""
    built: dict[str, nn.Module] = {}
    out = {}
    for entry in spec.models():
        own = stage_of(spec, entry)
        args = own.architecture_args(entry.factors)
        key = json.dumps([own.architecture.name, args], sort_keys=True)
        if key not in built:
            built[key] = create_model(own.architecture.name, **args)
        out[entry.model_id] = built[key]
    return out


def model_layouts(spec: ZooSpec) -> dict[str, Layout]:
    """Each model's layout, by model_id. A single-stage zoo has one; a staged zoo may have several
    (a pre-training head of other width, MLP and linear fine-tuning heads)."""
    templates = model_templates(spec)
    layouts = {key: layout_of(m) for key, m in {id(m): m for m in templates.values()}.items()}  # one per module
    return {model_id: layouts[id(m)] for model_id, m in templates.items()}


def zoo_layout(spec: ZooSpec) -> Layout:
    """The layout every model of the zoo shares (factors such as activation do not change it);
    for a zoo of several layouts, that of its first model (see `model_layouts`)."""
    return next(iter(model_layouts(spec).values()))


def named_layouts(spec: ZooSpec) -> dict[str, Layout]:
    """The zoo's layouts by name: {"layout": ...} for a zoo of one, else one per stage and head
    ("pretrain", "finetune-linear", "finetune-mlp")."""
    layouts = model_layouts(spec)
    if len(_distinct(layouts)) == 1:
        return {"layout": next(iter(layouts.values()))}
    return {f"{e.stage}{'-' + e.factors.head if e.factors.head else ''}": layouts[e.model_id] for e in spec.models()}


def distinct_layouts(spec: ZooSpec) -> list[Layout]:
    return _distinct(model_layouts(spec))


def _distinct(layouts: dict[str, Layout]) -> list[Layout]:
    """`model_layouts` shares one object per layout."""
    return list({id(layout): layout for layout in layouts.values()}.values())


def features(layout: Layout | None, weights: bool) -> datasets.Features:
    """Column types: ids and lineage, the factors as typed columns, metrics, and maybe weights
    (a fixed-length vector for a zoo of one `layout`, a variable-length one for layout None)."""
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
        cols["weights"] = datasets.List(datasets.Value("float32"), length=layout.numel if layout else -1)
    return datasets.Features(cols)


def incomplete_models(zoo: ZooDir, spec: ZooSpec) -> list[str]:
    """Models of the spec that miss an epoch's metrics or checkpoint."""
    bad = []
    for entry in spec.models():
        epochs = range(stage_of(spec, entry).training.epochs + 1)
        rows = zoo.read_metrics(entry.model_id)
        if len(rows) != len(epochs) or not all(zoo.checkpoint(entry.model_id, e).is_file() for e in epochs):
            bad.append(entry.model_id)
    return bad


def check_complete(zoo: ZooDir, spec: ZooSpec, skip: typing.Collection[str] = ()) -> None:
    bad = [m for m in incomplete_models(zoo, spec) if m not in skip]
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ModelzoosError(
            f"{zoo.root}: {len(bad)} of {len(spec.models())} models are not fully trained ({shown}). "
            "Run the same `modelzoos train` command again: it resumes."
        )


def model_table(
    zoo: ZooDir, model_id: str, features: datasets.Features, layout: Layout, epochs: typing.Sequence[int] | None = None
) -> pa.Table:
    """One model's rows at `epochs` (default all); with a `weights` column when `features` has one."""
    config = zoo.read_config(model_id)
    metrics = zoo.read_metrics(model_id)
    if epochs is not None:
        metrics = [metrics[e] for e in epochs]
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
        flat = np.empty((n, layout.numel), dtype=np.float32)  # filled in place: one copy of the weights
        for i, r in enumerate(metrics):
            flatten(safetensors.torch.load_file(zoo.checkpoint(model_id, r["epoch"])), layout, out=torch.from_numpy(flat[i]))
        if features["weights"].length == -1:  # several layouts: offsets instead of a fixed size
            offsets = pa.array(np.arange(n + 1, dtype=np.int32) * layout.numel)
            columns["weights"] = pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1)))
        else:
            columns["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), layout.numel)
    return pa.Table.from_pydict(columns, schema=features.arrow_schema)
