"""Image data: a Hub id, a local path or the embedded digits -> preprocessed tensors, split three ways.

Everything after decoding happens on tensors (no torchvision): grayscale, resize, center crop and
normalize run once over the whole split, so training only gathers batches by index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ModelzoosError
from .spec import ImageData

EMBEDDED_DIR = Path(__file__).parent / "embedded"


class ImageDataError(ModelzoosError):
    pass


@dataclass
class ImageTensors:
    """Preprocessed images (float32, N x C x H x W) and labels (int64) of the three splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: torch.device | str) -> ImageTensors:
        return ImageTensors(**{k: v.to(device) for k, v in vars(self).items()})

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")


def resolve_source(source: str) -> str:
    if source.startswith("embedded:"):
        path = EMBEDDED_DIR / source.removeprefix("embedded:")
        if not path.is_dir():
            known = ", ".join(f"embedded:{p.name}" for p in EMBEDDED_DIR.iterdir() if p.is_dir())
            raise ImageDataError(f"unknown embedded image data '{source}'; embedded: {known}")
        return str(path)
    return source


def load_image_tensors(spec: ImageData) -> ImageTensors:
    """Load, decode and preprocess the train and test splits; carve validation from train (or
    load the source's validation split)."""
    if spec.source.startswith("synthetic:"):
        n = _synthetic_count(spec.source)
        (train_x, train_y), (test_x, test_y) = _synthetic(spec, n, seed=0), _synthetic(spec, max(1, n // 4), seed=1)
    else:
        train_x, train_y = _load_split(spec, spec.train_split)
        test_x, test_y = _load_split(spec, spec.test_split)
    if spec.validation.split and not spec.source.startswith("synthetic:"):
        val_x, val_y = _load_split(spec, spec.validation.split)
        return ImageTensors(train_x, train_y, val_x, val_y, test_x, test_y)
    n_val = spec.validation.size
    if n_val >= len(train_y):
        raise ImageDataError(
            f"image_data.validation.size is {n_val} but the train split of '{spec.source}' has only "
            f"{len(train_y)} images; choose a smaller validation size"
        )
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(spec.validation.seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return ImageTensors(
        train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx], test_x, test_y
    )


def _synthetic_count(source: str) -> int:
    count = source.removeprefix("synthetic:")
    if not count.isdigit() or int(count) < 2:
        raise ImageDataError(f"image data '{source}': write synthetic:N with N >= 2 images")
    return int(count)


def _synthetic(spec: ImageData, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images already at the zoo's preprocessed shape, and random labels (smoke runs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, spec.channels, spec.image_size, spec.image_size, generator=g)
    return x, torch.randint(0, spec.num_classes, (n,), generator=g)


def _load_split(spec: ImageData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    import datasets  # imported here: `modelzoos list` and `show` should not pay for it

    source = resolve_source(spec.source)
    try:
        ds = datasets.load_dataset(source, spec.config, split=split)
    except Exception as e:  # noqa: BLE001 (load_dataset raises many types; all mean "cannot load")
        raise ImageDataError(
            f"cannot load split '{split}' of image data '{spec.source}'"
            f"{f' (config {spec.config})' if spec.config else ''}: {type(e).__name__}: {str(e).rstrip('.')}. "
            "Check the Hub id or local path (image_data.source, or --image-dataset), the split "
            "names, and that you are online or have the data cached."
        ) from None
    for column in (spec.image_column, spec.label_column):
        if column not in ds.column_names:
            raise ImageDataError(
                f"image data '{spec.source}' split '{split}' has no column '{column}' "
                f"(columns: {', '.join(ds.column_names)}); set image_data.image_column/label_column"
            )
    _check_fits(spec, split, len(ds))
    if isinstance(ds.features[spec.image_column], datasets.Image):
        # one mode for all images, so they stack (Tiny ImageNet mixes grayscale into RGB)
        mode = "L" if spec.channels == 1 and not spec.grayscale else "RGB"
        ds = ds.cast_column(spec.image_column, datasets.Image(mode=mode))
    if spec.classes is not None:
        keep = set(spec.classes)
        ds = ds.filter(lambda label: label in keep, input_columns=spec.label_column)
    ds = ds.with_format("numpy")
    images = _to_nchw(ds[spec.image_column], spec.source)
    labels = torch.as_tensor(np.asarray(ds[spec.label_column]), dtype=torch.int64)
    if spec.classes is not None:  # source label -> its position in `classes`
        labels = torch.as_tensor([spec.classes.index(int(v)) for v in labels], dtype=torch.int64)
    if labels.numel() and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ImageDataError(
            f"labels of '{spec.source}' split '{split}' lie in [{labels.min()}, {labels.max()}], "
            f"outside 0..{spec.num_classes - 1}; check image_data.num_classes and label_column"
        )
    return preprocess(images, spec), labels


def _check_fits(spec: ImageData, split: str, n: int) -> None:
    """Image data lives in memory as float32 tensors (and on the device while training): refuse a
    split that cannot, before hours of decoding end in an out-of-memory kill."""
    need = n * spec.channels * spec.image_size**2 * 4
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have // 2:
        raise ImageDataError(
            f"split '{split}' of '{spec.source}' is {n:,} images of {spec.channels}x{spec.image_size}x"
            f"{spec.image_size}: {need / 2**30:,.0f} GiB as float32 tensors, more than half of this "
            f"machine's {have / 2**30:,.0f} GiB. modelzoos keeps a zoo's images in memory and on the "
            "device; a dataset this large needs a streaming loader, which modelzoos does not have yet. "
            "Choose a smaller image_data.image_size (with resize/center_crop) or a smaller dataset."
        )


def _to_nchw(images: np.ndarray | list, source: str) -> torch.Tensor:
    """Decoded images (N x H x W or N x H x W x C, uint8) -> float N x C x H x W in [0, 1]."""
    if isinstance(images, list):  # images of different sizes do not stack; datasets returns a list
        raise ImageDataError(f"images of '{source}' differ in size; add image_data.resize and center_crop")
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    x = x.permute(0, 3, 1, 2)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def preprocess(x: torch.Tensor, spec: ImageData) -> torch.Tensor:
    """grayscale -> resize (shorter edge) -> center crop -> normalize, as torchvision's transforms."""
    if spec.grayscale and x.shape[1] == 3:
        weights = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    if spec.resize is not None:
        h, w = x.shape[-2:]
        short = min(h, w)
        size = (spec.resize, spec.resize * w // h) if h == short else (spec.resize * h // w, spec.resize)
        if (h, w) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    if spec.center_crop is not None:
        c = spec.center_crop
        h, w = x.shape[-2:]
        top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        x = x[..., top : top + c, left : left + c]
    if x.shape[1:] != (spec.channels, spec.image_size, spec.image_size):
        raise ImageDataError(
            f"preprocessed images of '{spec.source}' have shape {tuple(x.shape[1:])}, the spec "
            f"expects {(spec.channels, spec.image_size, spec.image_size)}; check image_data.channels, "
            "image_size, grayscale, resize and center_crop"
        )
    if spec.mean is not None:
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        std = torch.tensor(spec.std).view(1, -1, 1, 1)
        x = (x - mean) / std
    # Standard strides, whatever the steps above left (a 1-channel tensor can be "contiguous" with
    # channel stride 1): oneDNN picks its kernels, and so its rounding, from the strides, and the
    # tensors read back from the zoo's cache have standard ones.
    return x.clone(memory_format=torch.contiguous_format)
