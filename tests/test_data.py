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
