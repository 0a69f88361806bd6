"""Size of a zoo's `weights` config: `datasets`' own Parquet writer against modelzoos' (`shards.py`).

Both write the same tables, streamed from the builder over a trained raw zoo directory: (a) as
`download_and_prepare(file_format="parquet")` writes them (what `build` did before: dictionary
encoding, Snappy), (b) as `modelzoos build` writes them now (no dictionary on the weights,
BYTE_STREAM_SPLIT, zstd, page index). Printed: the bytes of each, against the raw float32 bytes of
the weights, and the time to read each back with pyarrow.

    modelzoos train digits-cnn-s --out digits-zoo && python benchmarks/parquet_size.py digits-zoo
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from modelzoos.builder import ModelZoo
from modelzoos.builder.rows import distinct_layouts
from modelzoos.shards import rows_per_group, write_split
from modelzoos.zoo_dir import ZooDir


def _read_seconds(files: list[Path]) -> float:
    start = time.monotonic()
    for f in files:
        pq.read_table(f)
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path, help="a trained raw zoo directory")
    args = ap.parse_args()
    spec = ZooDir(args.zoo).load_spec()
    numel = max(layout.numel for layout in distinct_layouts(spec))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        builder = ModelZoo(config_name="weights", data_dir=str(args.zoo), cache_dir=str(tmp / "cache"))
        start = time.monotonic()
        builder.download_and_prepare(output_dir=str(tmp / "datasets"), file_format="parquet")
        datasets_s = time.monotonic() - start
        theirs = sorted((tmp / "datasets").glob("*.parquet"))
        start, rows = time.monotonic(), 0
        for split, ds in builder.as_streaming_dataset().items():
            tables = ds.with_format("arrow").iter(batch_size=rows_per_group(1024 + 4 * numel))
            rows += write_split(tables, tmp / "modelzoos", str(split), builder.info.features.arrow_schema).num_examples
        ours_s = time.monotonic() - start
        ours = sorted((tmp / "modelzoos").glob("*.parquet"))
        raw = numel * 4 * rows if len(distinct_layouts(spec)) == 1 else None  # a staged zoo: several lengths
        size_theirs, size_ours = (sum(f.stat().st_size for f in fs) for fs in (theirs, ours))
        print(f"{spec.name}: {rows:,} rows of up to {numel:,} float32 weights"
              + (f" ({raw / 2**20:,.1f} MiB of raw weights)" if raw else ""))
        for name, size, secs, files in (("datasets' writer", size_theirs, datasets_s, theirs), ("modelzoos' writer", size_ours, ours_s, ours)):
            shown = f"{size / raw:.3f} of raw, " if raw else ""
            print(f"  {name:18s} {size / 2**20:9,.2f} MiB ({shown}written in {secs:.1f} s, read back in {_read_seconds(files):.2f} s)")
        print(f"  modelzoos / datasets: {size_ours / size_theirs:.3f}")


if __name__ == "__main__":
    main()
