"""Regenerate the embedded digits data in modelzoos/embedded/digits/.

Input: the 1,797 8x8 digits as CSV (64 pixel values 0..16, then the label), e.g.
`sklearn/datasets/data/digits.csv.gz` from a scikit-learn wheel, which is the test part of UCI
"Optical Recognition of Handwritten Digits" (CC BY 4.0).

    python scripts/embed_digits.py path/to/digits.csv.gz

Pixels are scaled 0..16 -> 0..255 (rounded) and stored as PNG in a `datasets` Image column, so the
embedded data goes through exactly the loader that Hub image datasets go through. The fixed test
split (360 images) is drawn once with seed 42.
"""

import gzip
import sys
from pathlib import Path

import datasets
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "modelzoos" / "embedded" / "digits"
N_TEST = 360


def main(csv_path: str) -> None:
    with gzip.open(csv_path, "rt") if csv_path.endswith(".gz") else open(csv_path) as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    pixels, labels = rows[:, :64], rows[:, 64]
    images = np.round(pixels * 255 / 16).astype(np.uint8).reshape(-1, 8, 8)
    order = np.random.default_rng(42).permutation(len(labels))
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    for split, idx in (("test", np.sort(order[:N_TEST])), ("train", np.sort(order[N_TEST:]))):
        ds = datasets.Dataset.from_dict(
            {"image": list(images[idx]), "label": labels[idx].tolist()}, features=features
        )
        ds.to_parquet(str(OUT / f"{split}-00000-of-00001.parquet"))
        print(split, len(ds))


if __name__ == "__main__":
    main(sys.argv[1])
