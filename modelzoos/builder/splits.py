"""Which split a model belongs to, decided from its model_id alone.

All epochs of a model land in one split, and the assignment never depends on file-system order,
on the number of models or on which other models exist: growing a zoo keeps every split.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.7, 0.15, 0.15)


def split_of(model_id: str) -> str:
    u = int.from_bytes(hashlib.sha256(f"split/{model_id}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, FRACTIONS):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]
