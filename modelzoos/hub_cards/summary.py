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


def read_metadata(hub_dir: Path) -> dict[str, pa.Table]:
    """The `metadata` config of a hub folder, one table per split."""
    tables = {}
    for split in ("train", "validation", "test"):
        files = sorted((hub_dir / "metadata").glob(f"{split}-*.parquet"))
        if files:
            tables[split] = pa.concat_tables(pq.read_table(f) for f in files)
    return tables


def summarize(hub_dir: Path) -> ZooSummary:
    tables = read_metadata(hub_dir)
    table = pa.concat_tables(tables.values())
    last = pc.max(table["epoch"]).as_py()
    final = table.filter(pc.equal(table["epoch"], last))
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
    )
