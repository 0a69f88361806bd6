"""Tests never touch the network: the offline switches are set before `datasets` is imported."""

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
# `datasets` caches the embedded data it reads; keep that out of the user's home.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="modelzoos-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)  # ~2 GB a run

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from modelzoos.spec import ZOOS_DIR, load_spec  # noqa: E402


def write_spec(path: Path, **changes) -> Path:
    """The digits-cnn-s spec with top-level sections replaced or updated, written to `path`."""
    data = yaml.safe_load((ZOOS_DIR / "digits-cnn-s.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_spec_file(path: Path) -> Path:
    """3 models x 2 epochs of the digits zoo; seeds 1, 2 and 11 land in train, validation, test."""
    return write_spec(
        path,
        name="tiny-digits",
        training={"epochs": 2},
        grid={"seed": [1, 2, 11]},
    )


@pytest.fixture
def tiny_spec_path(tmp_path):
    return tiny_spec_file(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """The tiny zoo, trained and built once per test session: (spec, zoo dir)."""
    from modelzoos.hub import build_hub
    from modelzoos.training import train_zoo

    root = tmp_path_factory.mktemp("tiny-zoo")
    spec = load_spec(tiny_spec_file(root / "tiny.yaml"))
    train_zoo(spec, root / "zoo", progress=False)
    build_hub(root / "zoo")
    return spec, root / "zoo"


@pytest.fixture
def tiny_spec(tiny_spec_path):
    return load_spec(tiny_spec_path)
