"""Every registered zoo, end to end at smoke scale, and the registry's numbers."""

import datasets
import pytest

from modelzoos.builder.rows import zoo_layout
from modelzoos.hub import build_hub
from modelzoos.spec import load_spec, registered_zoos
from modelzoos.training import train_zoo

PARAMS = {("cnn-s", 1): 2_464, ("cnn-s", 3): 2_864, ("cnn-l", 3): 10_853, ("cnn-l", 1): 10_565}
SEED_ZOOS = ["mnist-cnn-s", "fashion-mnist-cnn-s", "svhn-cnn-s", "usps-cnn-s",
             "cifar10-cnn-s", "cifar10-cnn-l", "stl10-cnn-s", "stl10-cnn-l"]


@pytest.mark.parametrize("name", registered_zoos())
def test_every_zoo_runs_at_smoke_scale(name, tmp_path):
    spec = load_spec(name)
    assert zoo_layout(spec).n_params == PARAMS[(spec.architecture.name, spec.image_data.channels)]
    smoke = spec.smoke()
    train_zoo(smoke, tmp_path / "zoo", progress=False)
    hub = build_hub(tmp_path / "zoo")
    for config in ("metadata", "weights"):
        ds = datasets.load_dataset(str(hub), config)
        assert sum(len(s) for s in ds.values()) == 2 * 2
    row = next(iter(ds.values()))[0]
    assert len(row["weights"]) == PARAMS[(spec.architecture.name, spec.image_data.channels)]


def test_seed_zoos_are_registered_with_the_papers_sizes():
    assert set(SEED_ZOOS) <= set(registered_zoos())
    for name in SEED_ZOOS:
        spec = load_spec(name)
        assert len(spec.models()) == 1_000 and spec.training.epochs == 50 and spec.training.batch_size == 10
        assert name == f"{name.rsplit('-cnn-', 1)[0]}-{spec.architecture.name}"
    assert sum(len(load_spec(n).models()) for n in SEED_ZOOS) == 8_000
