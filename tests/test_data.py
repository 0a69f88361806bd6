import pytest
import torch

from modelzoos.data import load_image_tensors
from modelzoos.errors import ModelzoosError
from modelzoos.spec import load_spec


def test_embedded_digits_split_and_preprocessing():
    spec = load_spec("digits-cnn-s").image_data
    data = load_image_tensors(spec)
    assert data.train_x.shape == (1_437 - 180, 1, 28, 28)
    assert data.val_x.shape == (180, 1, 28, 28)
    assert data.test_x.shape == (360, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert set(data.test_y.tolist()) == set(range(10))
    # normalized with the train statistics given in the spec
    assert abs(data.train_x.mean().item()) < 0.05 and abs(data.train_x.std().item() - 1) < 0.05
    again = load_image_tensors(spec)
    assert torch.equal(data.val_x, again.val_x) and torch.equal(data.train_y, again.train_y)


def test_local_dataset_path_with_other_columns(tmp_path):
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    features = datasets.Features({"img": datasets.Image(), "digit": datasets.Value("int64")})
    for split, n in (("train", 40), ("test", 10)):
        images = list(rng.integers(0, 255, size=(n, 32, 32, 3), dtype=np.uint8))
        ds = datasets.Dataset.from_dict({"img": images, "digit": rng.integers(0, 10, n).tolist()}, features=features)
        ds.to_parquet(str(tmp_path / f"{split}-00000-of-00001.parquet"))
    spec = load_spec("digits-cnn-s").image_data
    import dataclasses

    spec = dataclasses.replace(
        spec, source=str(tmp_path), image_column="img", label_column="digit", grayscale=True,
        resize=None, center_crop=28, validation=dataclasses.replace(spec.validation, size=5),
    )
    data = load_image_tensors(spec)
    assert data.train_x.shape == (35, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)


def test_missing_image_dataset(tmp_path):
    import dataclasses

    spec = load_spec("digits-cnn-s").image_data
    spec = dataclasses.replace(spec, source=str(tmp_path / "no-such-data"))
    with pytest.raises(ModelzoosError, match="cannot load split 'train' of image data .*no-such-data"):
        load_image_tensors(spec)


def _write_parquet_repo(root, splits, features, make_rows):
    """A local dataset laid out like a Hub repo: data/<split>-*.parquet and a card naming the splits."""
    import datasets

    (root / "data").mkdir(parents=True)
    for split, n in splits.items():
        datasets.Dataset.from_dict(make_rows(n), features=features).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    files = "\n".join(f"  - split: {s}\n    path: data/{s}-*" for s in splits)
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}\n---\n")


def test_tiny_imagenet_layout_mixed_modes_and_a_valid_split_as_test(tmp_path):
    """Tiny ImageNet mixes grayscale images into RGB ones and names its labelled held-out split
    'valid': the zoo reads every image as RGB and uses 'valid' as the test split."""
    import dataclasses

    import datasets
    import numpy as np

    rng = np.random.default_rng(0)

    def rows(n):
        images = [rng.integers(0, 255, size=(16, 16, 3) if i % 3 else (16, 16), dtype=np.uint8) for i in range(n)]
        return {"image": images, "label": rng.integers(0, 200, n).tolist()}

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=200)})
    _write_parquet_repo(tmp_path / "tiny", {"train": 30, "valid": 12}, features, rows)
    spec = dataclasses.replace(
        load_spec("tiny-imagenet-resnet18").image_data, source=str(tmp_path / "tiny"), image_size=16
    )
    data = load_image_tensors(spec)
    assert data.train_x.shape == (30, 3, 16, 16) and data.test_x.shape == (12, 3, 16, 16)
    assert data.val_x.shape[0] == 0
    mean, std = torch.tensor(spec.mean).view(3, 1, 1), torch.tensor(spec.std).view(3, 1, 1)
    gray, color = data.train_x[0] * std + mean, data.train_x[1] * std + mean  # images 0 and 1 as read
    assert torch.allclose(gray[0], gray[1], atol=1e-6) and torch.allclose(gray[0], gray[2], atol=1e-6)
    assert not torch.allclose(color[0], color[1], atol=1e-2)


def test_the_sources_own_validation_split(tmp_path):
    import dataclasses

    import datasets
    import numpy as np

    rng = np.random.default_rng(1)

    def rows(n):
        return {"image": list(rng.integers(0, 255, size=(n, 64, 64, 3), dtype=np.uint8)), "label": rng.integers(0, 10, n).tolist()}

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    _write_parquet_repo(tmp_path / "eurosat", {"train": 20, "validation": 7, "test": 5}, features, rows)
    spec = dataclasses.replace(load_spec("eurosat-cnn-s").image_data, source=str(tmp_path / "eurosat"))
    data = load_image_tensors(spec)
    assert data.train_x.shape == (20, 3, 28, 28)  # resized from 64, nothing carved out
    assert data.val_x.shape == (7, 3, 28, 28) and data.test_x.shape == (5, 3, 28, 28)


def test_image_data_too_large_for_memory_is_refused_before_decoding():
    import dataclasses

    spec = dataclasses.replace(load_spec("digits-cnn-s").image_data, image_size=50_000, resize=50_000)
    with pytest.raises(ModelzoosError, match=r"split 'train' of 'embedded:digits' is 1,437 images of 1x50000x50000: .* GiB .*streaming loader"):
        load_image_tensors(spec)
