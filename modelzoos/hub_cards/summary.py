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
    faulty: list[str]  # ids of the models whose last row's status is not "ok", sorted
    final_test_acc_mean: float | None  # None where no model has a final test accuracy
    final_test_acc_min: float | None
    final_test_acc_max: float | None
    lineage: list[dict]  # backbones and how their fine-tunes score; empty for a single-stage zoo
    # per stage: models, faulty, last epoch, and of the final test accuracies: `defined` (how many
    # are not null: a diverged model's may be), mean, min, q1, median, q3, max (None if none defined)
    stages: dict[str, dict]

    @property
    def faulty_models(self) -> int:
        return len(self.faulty)


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
    children: dict[str, list[float | None]] = {}
    for r in final:
        if r["parent_id"] is not None:
            children.setdefault(r["parent_id"], []).append(r["test_acc"])
    out = []
    for p, c in sorted(children.items()):
        if p not in acc:
            continue
        defined = [a for a in c if a is not None]  # a diverged fine-tune's accuracy may be null
        out.append({
            "model_id": p, "seed": acc[p]["seed"], "stage": acc[p]["stage"], "test_acc": acc[p]["test_acc"],
            "children": len(c), "mean": sum(defined) / len(defined) if defined else None,
            "min": min(defined, default=None), "max": max(defined, default=None),
        })
    return out


def summarize(hub_dir: Path) -> ZooSummary:
    tables = read_metadata(hub_dir)
    table = pa.concat_tables(tables.values())
    last = pc.max(table["epoch"]).as_py()
    final = final_rows(table)
    acc = final["test_acc"]
    faulty = sorted(final.filter(pc.not_equal(final["status"], "ok"))["model_id"].to_pylist())
    return ZooSummary(
        models=pc.count_distinct(table["model_id"]).as_py(),
        epochs=last,
        rows=table.num_rows,
        models_per_split={k: pc.count_distinct(t["model_id"]).as_py() for k, t in tables.items()},
        faulty=faulty,
        final_test_acc_mean=pc.mean(acc).as_py(),
        final_test_acc_min=pc.min(acc).as_py(),
        final_test_acc_max=pc.max(acc).as_py(),
        lineage=lineage(final),
        stages=per_stage(final),
    )


def stage_order(final: pa.Table) -> list[str]:
    """The stages of `final` (as `final_rows` gives it), stages from which others start first (as
    the spec orders them)."""
    rows = final.select(["model_id", "stage", "parent_id"]).to_pylist()
    stage_of = {r["model_id"]: r["stage"] for r in rows}
    parent_stage: dict[str, str | None] = {}
    for r in rows:  # any row whose parent is in the table says where its stage starts (a build may leave a parent out)
        if r["parent_id"] in stage_of or r["stage"] not in parent_stage:
            parent_stage[r["stage"]] = stage_of.get(r["parent_id"])

    def depth(stage: str | None) -> int:
        return -1 if stage is None else depth(parent_stage[stage]) + 1

    return sorted(dict.fromkeys(stage_of.values()), key=depth)


def per_stage(final: pa.Table) -> dict[str, dict]:
    """Per stage, in `stage_order`."""
    out = {}
    for stage in stage_order(final):
        rows = final.filter(pc.equal(final["stage"], stage))
        acc = rows["test_acc"]
        q1, median, q3 = pc.quantile(acc, q=[0.25, 0.5, 0.75]).to_pylist()  # linear interpolation, nulls skipped
        out[stage] = {
            "models": rows.num_rows, "faulty": pc.sum(pc.not_equal(rows["status"], "ok")).as_py() or 0,
            "epochs": pc.max(rows["epoch"]).as_py(), "defined": pc.count(acc).as_py(),
            "mean": pc.mean(acc).as_py(), "min": pc.min(acc).as_py(), "q1": q1, "median": median, "q3": q3,
            "max": pc.max(acc).as_py(),
        }
    return out
