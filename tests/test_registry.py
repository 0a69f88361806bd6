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


HYP_MODELS = {"mnist-cnn-s": 2560, "fashion-mnist-cnn-s": 2560, "usps-cnn-s": 2560, "svhn-cnn-s": 4320,
              "cifar10-cnn-s": 1280, "cifar10-cnn-l": 1280, "stl10-cnn-s": 2560, "stl10-cnn-l": 2560}


def test_hyperparameter_zoos_match_the_paper():
    total = 0
    for seed_zoo, n in HYP_MODELS.items():
        for variant in ("fixed", "random"):
            spec = load_spec(f"{seed_zoo}-hyp-{variant}")
            models = spec.models()
            assert len(models) == n == spec.grid_size, spec.name
            assert spec.image_data == load_spec(seed_zoo).image_data
            configurations = {}
            for m in models:
                key = tuple(v for k, v in vars(m.factors).items() if k != "seed")
                configurations.setdefault(key, []).append(m.factors.seed)
            assert all(len(seeds) == 10 for seeds in configurations.values())
            if variant == "fixed":
                assert all(seeds == list(range(1, 11)) for seeds in configurations.values())
            else:  # drawn per configuration: configurations do not share their seed lists
                assert len({tuple(s) for s in configurations.values()}) == len(configurations)
            total += len(models)
    assert total == 39_360
    seed_total = sum(len(load_spec(n).models()) for n in SEED_ZOOS)
    assert seed_total + total == 47_360  # + 3 x 1,000 ResNet-18 models (issue 4) = the paper's 50,360


def test_random_seeds_survive_the_frozen_zoo_yaml():
    import yaml

    from modelzoos.spec import spec_from_dict

    spec = load_spec("usps-cnn-s-hyp-random")
    again = spec_from_dict(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.models()[:20] == spec.models()[:20]
