"""Numbers about a built zoo, read from its metadata tables (never from training)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass(frozen=True)
class ZooSummary:
    models: int
    epochs: int  # the last epoch; every model also has epoch 0
    rows: int
    models_per_split: dict[str, int]
    faulty_models: int
    final_test_acc_mean: float
    final_test_acc_min: float
    final_test_acc_max: float
    lineage: list[dict]  # backbones and how their fine-tunes score; empty for a single-stage zoo
    stages: dict[str, dict]  # per stage: models, last epoch, final test accuracy mean, min, max


def read_metadata(hub_dir: Path) -> dict[str, pa.Table]:
    """The `metadata` config of a hub folder, one table per split."""
    tables = {}
    for split in ("train", "validation", "test"):
        files = sorted((hub_dir / "metadata").glob(f"{split}-*.parquet"))
        if files:
            tables[split] = pa.concat_tables(pq.read_table(f) for f in files)
    return tables


def final_rows(table: pa.Table) -> pa.Table:
    """Each model's row at its last epoch (the stages of a staged zoo may train for other counts)."""
    last = table.group_by("model_id").aggregate([("epoch", "max")]).rename_columns(["model_id", "last_epoch"])
    joined = table.join(last, "model_id")
    return joined.filter(pc.equal(joined["epoch"], joined["last_epoch"])).drop_columns(["last_epoch"])


def lineage(final: pa.Table) -> list[dict]:
    """Per model with children (a backbone): its final test accuracy and its children's (count,
    mean, min, max), in the order of the backbones' ids. `final` as `final_rows` gives it."""
    final = final.to_pylist()
    acc = {r["model_id"]: r for r in final}
    children: dict[str, list[float]] = {}
    for r in final:
        if r["parent_id"] is not None:
            children.setdefault(r["parent_id"], []).append(r["test_acc"])
    return [
        {
            "model_id": p, "seed": acc[p]["seed"], "stage": acc[p]["stage"], "test_acc": acc[p]["test_acc"],
            "children": len(c), "mean": sum(c) / len(c), "min": min(c), "max": max(c),
        }
        for p, c in sorted(children.items())
        if p in acc
    ]


def summarize(hub_dir: Path) -> ZooSummary:
    tables = read_metadata(hub_dir)
    table = pa.concat_tables(tables.values())
    last = pc.max(table["epoch"]).as_py()
    final = final_rows(table)
    acc = final["test_acc"]
    faulty = final.filter(pc.not_equal(final["status"], "ok")).num_rows
    return ZooSummary(
        models=pc.count_distinct(table["model_id"]).as_py(),
        epochs=last,
        rows=table.num_rows,
        models_per_split={k: pc.count_distinct(t["model_id"]).as_py() for k, t in tables.items()},
        faulty_models=faulty,
        final_test_acc_mean=pc.mean(acc).as_py(),
        final_test_acc_min=pc.min(acc).as_py(),
        final_test_acc_max=pc.max(acc).as_py(),
        lineage=lineage(final),
        stages=per_stage(final),
    )


def per_stage(final: pa.Table) -> dict[str, dict]:
    """Per stage, stages from which others start first (as the spec orders them)."""
    rows = final.select(["model_id", "stage", "parent_id"]).to_pylist()
    stage_of = {r["model_id"]: r["stage"] for r in rows}
    parent_stage = {r["stage"]: stage_of.get(r["parent_id"]) for r in rows}

    def depth(stage: str | None) -> int:
        return -1 if stage is None else depth(parent_stage[stage]) + 1

    out = {}
    for stage in sorted(dict.fromkeys(stage_of.values()), key=depth):
        rows = final.filter(pc.equal(final["stage"], stage))
        acc = rows["test_acc"]
        out[stage] = {
            "models": rows.num_rows, "epochs": pc.max(rows["epoch"]).as_py(),
            "mean": pc.mean(acc).as_py(), "min": pc.min(acc).as_py(), "max": pc.max(acc).as_py(),
        }
    return out
