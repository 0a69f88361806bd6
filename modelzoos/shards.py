"""Parquet shards of one config and split of the hub folder, written with pyarrow directly.

`datasets`' own writer dictionary-encodes every column: trained float weights are nearly all
distinct, so the dictionary only grows until pyarrow falls back to plain pages, and Snappy gains
little on them. Here the weights go BYTE_STREAM_SPLIT (the bytes of each float grouped by
significance, which zstd compresses), without statistics (min/max of weights prune nothing); the
string columns keep dictionaries (a model's id repeats on each of its rows). A page index lets
readers seek. Row groups hold about ROW_GROUP_BYTES, so the Hub's viewer and readers never decode
much more than that at once. The files carry the `datasets` features in their schema, so
`load_dataset` reads them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 100 * 2**20
SHARD_BYTES = 500 * 2**20  # uncompressed; `datasets`' push_to_hub shards at the same size


@dataclass
class SplitFiles:
    """What was written for one split: its shards and the sizes a dataset card records."""

    files: list[Path] = field(default_factory=list)
    num_examples: int = 0
    num_bytes: int = 0  # in memory, as Arrow
    download_size: int = 0  # on disk, as Parquet


@dataclass
class HubConfig:
    """One config of the hub folder: its name, what it holds, the folder (a glob) of its files,
    relative to the hub folder, and what it has per split. Configs may share files: a staged zoo's
    `weights` config reads `weights/*`, the per-stage folders its stage configs read one each."""

    name: str
    description: str
    features: datasets.Features
    folder: str
    splits: dict[str, SplitFiles] = field(default_factory=dict)

    def data_files(self) -> list[dict[str, str]]:
        """The card's `data_files`: readers download only the files these match."""
        return [{"split": split, "path": f"{self.folder}/{split}-*.parquet"} for split in self.splits]


def rows_per_group(row_bytes: int) -> int:
    return max(1, ROW_GROUP_BYTES // max(1, row_bytes))


def writer_options(schema: pa.Schema) -> dict:
    """pyarrow.parquet.ParquetWriter's options for a hub table of this schema."""
    weights = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)]
    return {
        "compression": "zstd",
        "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)],
        "column_encoding": {f"{name}.list.element": "BYTE_STREAM_SPLIT" for name in weights},
        "write_statistics": [f.name for f in schema if f.name not in weights],
        "write_page_index": True,
    }


def write_split(tables: Iterable[pa.Table], folder: Path, split: str, schema: pa.Schema) -> SplitFiles:
    """Write `tables` (each one row group, in order) as `folder/<split>-NNNNN-of-NNNNN.parquet`,
    starting a new shard past SHARD_BYTES. Returns the files and sizes; no file when no rows."""
    folder.mkdir(parents=True, exist_ok=True)
    out, options = SplitFiles(), writer_options(schema)
    writer, shard_bytes, parts = None, 0, []
    try:
        for table in tables:
            if writer is None or shard_bytes >= SHARD_BYTES:
                if writer is not None:
                    writer.close()
                parts.append(folder / f".{split}-{len(parts):05d}.parquet.part")
                writer, shard_bytes = pq.ParquetWriter(parts[-1], schema, **options), 0
            writer.write_table(table, row_group_size=table.num_rows)
            shard_bytes += table.nbytes
            out.num_examples += table.num_rows
            out.num_bytes += table.nbytes
    finally:
        if writer is not None:
            writer.close()
    for i, part in enumerate(parts):  # the count is known only now
        final = folder / f"{split}-{i:05d}-of-{len(parts):05d}.parquet"
        part.rename(final)
        out.files.append(final)
        out.download_size += final.stat().st_size
    return out
