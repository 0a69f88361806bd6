"""Every registered zoo, end to end at smoke scale, and the registry's numbers."""

import collections

import datasets
import pytest

from modelzoos.builder.rows import zoo_layout
from modelzoos.hub import build_hub
from modelzoos.spec import load_spec, registered_zoos
from modelzoos.training import train_zoo

# The parameter counts of ../shared/ZOOS.md, by (architecture, input channels, classes).
PARAMS = {("cnn-s", 1, 10): 2_464, ("cnn-s", 3, 10): 2_864, ("cnn-l", 3, 10): 10_853, ("cnn-l", 1, 10): 10_565,
          ("resnet18", 3, 10): 11_173_962, ("resnet18", 3, 100): 11_220_132, ("resnet18", 3, 200): 11_271_432}
SEED_ZOOS = ["mnist-cnn-s", "fashion-mnist-cnn-s", "svhn-cnn-s", "usps-cnn-s",
             "cifar10-cnn-s", "cifar10-cnn-l", "stl10-cnn-s", "stl10-cnn-l"]
RESNET_ZOOS = {"cifar10-resnet18": (10, 50, 256, 0.05), "cifar100-resnet18": (100, 60, 128, 0.1),
               "tiny-imagenet-resnet18": (200, 60, 128, 0.1)}


def params_of(spec):
    return PARAMS[(spec.architecture.name, spec.image_data.channels, spec.image_data.num_classes)]


@pytest.mark.parametrize("name", registered_zoos())
def test_every_zoo_runs_at_smoke_scale(name, tmp_path):
    spec = load_spec(name)
    if spec.architecture.name != "vit":  # the ViT zoos' counts are checked in test_vit_zoo
        assert zoo_layout(spec).n_params == params_of(spec)
    smoke = spec.smoke()
    images = {"resnet18": 32}.get(spec.architecture.name, 16 if name == "imagenet-cifar100-vit-s16" else 256)
    assert smoke.image_data.source == f"synthetic:{images}"
    assert all(smoke.stage_spec(st.name).training.autocast is None for st in smoke.stages) and smoke.training.autocast is None
    train_zoo(smoke, tmp_path / "zoo", progress=False)
    hub = build_hub(tmp_path / "zoo")
    for config in ("metadata", "weights"):
        ds = datasets.load_dataset(str(hub), config)
        assert sum(len(s) for s in ds.values()) == len(smoke.models()) * 2  # 2 models a stage, epochs 0 and 1
    stage_of = {m.model_id: m.stage for m in spec.models()}
    per_stage = collections.Counter((m.stage, stage_of.get(m.parent_id)) for m in spec.models())
    assert len(smoke.models()) == sum(min(2, n) for n in per_stage.values())  # 2 a stage (and parent stage) at most
    row = next(iter(ds.values()))[0]
    card = (hub / "README.md").read_text()
    assert all(note.strip() in card for note in spec.notes)  # deviations on record in the card
    augmented = [spec.training.augmentation] + [spec.stage_spec(st.name).training.augmentation for st in spec.stages]
    assert ("Train-time augmentation" in card) == any(map(bool, augmented))
    layout = zoo_layout(spec)  # weights: the parameters, then (ResNet) BatchNorm running statistics
    if spec.architecture.name != "vit":
        assert len(row["weights"]) == layout.numel == params_of(spec) + sum(e.numel for e in layout.entries if e.kind == "buffer")


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
    resnet_total = sum(len(load_spec(n).models()) for n in RESNET_ZOOS)
    assert seed_total + total + resnet_total == 50_360  # the "Model Zoos" paper's count


def test_resnet18_zoos_follow_the_paper():
    for name, (classes, epochs, batch, lr) in RESNET_ZOOS.items():
        spec = load_spec(name)
        assert spec.image_data.num_classes == classes and spec.training.epochs == epochs
        assert spec.training.batch_size == batch and spec.training.scheduler == "onecycle"
        assert [e.factors.seed for e in spec.models()] == list(range(1, 1001))
        f = spec.models()[0].factors
        assert (f.optimizer, f.momentum, f.lr, f.weight_decay, f.init) == ("sgd", 0.9, lr, 5e-4, "kaiming_uniform")
        assert spec.training.augmentation and spec.notes and spec.publication == "model-zoos"
    tiny = load_spec("tiny-imagenet-resnet18")
    assert tiny.image_data.validation.size == 0 and tiny.image_data.test_split == "valid"
    assert tiny.training.augmentation.rotation == 20 and not tiny.training.augmentation.crop_padding


def test_modelzoos_list_shows_every_zoo_and_the_papers_total(capsys):
    from modelzoos.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line and line.split()[0] in registered_zoos()}
    assert set(lines) == set(registered_zoos())
    assert lines["cifar100-resnet18"][1:4] == ["1,000", "60", "11,220,132"]
    assert lines["svhn-cnn-s-hyp-random"][1:4] == ["4,320", "50", "2,464"]
    assert 'zoos of "Model Zoos" (Schürholt et al., NeurIPS 2022): 27, 50,360 models' in out
    assert 'zoos of "A Model Zoo of Vision Transformers" (Falk et al., 2025): 1, 250 models' in out
    assert lines["imagenet-cifar100-vit-s16"][1:3] == ["250", "90+90+50"]
    assert len(registered_zoos()) == 31  # the 27, the ViT zoo, EuroSAT and the two embedded digits zoos


def test_random_seeds_survive_the_frozen_zoo_yaml():
    import yaml

    from modelzoos.spec import spec_from_dict

    spec = load_spec("usps-cnn-s-hyp-random")
    again = spec_from_dict(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.models()[:20] == spec.models()[:20]


# ../shared/ZOOS.md, per zoo: validation images carved with seed 42 (None: the source's own split
# or none), normalization mean and std, and the train-time augmentation.
PROTOCOLS = {
    "mnist-cnn-s": (10_000, [0.1307], [0.3081], {}),
    "fashion-mnist-cnn-s": (10_000, [0.5], [0.5], {}),
    "svhn-cnn-s": (13_257, [0.5], [0.5], {}),
    "usps-cnn-s": (1_291, [0.1307], [0.3081], {}),
    "cifar10-cnn-s": (8_000, [0.5] * 3, [0.5] * 3, {}),
    "cifar10-cnn-l": (8_000, [0.5] * 3, [0.5] * 3, {}),
    "stl10-cnn-s": (800, None, None, {}),
    "stl10-cnn-l": (800, None, None, {}),
    "cifar10-resnet18": (10_000, [125.3 / 255, 123.0 / 255, 113.9 / 255], [63.0 / 255, 62.1 / 255, 66.7 / 255],
                         {"crop_padding": 4, "hflip": True}),
    "cifar100-resnet18": (10_000, [0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761], {"crop_padding": 4, "hflip": True}),
    "tiny-imagenet-resnet18": (0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], {"hflip": True, "rotation": 20.0}),
}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_validation_normalization_and_augmentation_follow_the_paper(name):
    from modelzoos.spec import Augmentation

    size, mean, std, aug = PROTOCOLS[name]
    data = load_spec(name).image_data
    assert (data.validation.size, data.validation.seed, data.validation.split) == (size, 42, None)
    if mean is None:
        assert data.mean is None and data.std is None
    else:
        assert data.mean == pytest.approx(mean, abs=1e-6) and data.std == pytest.approx(std, abs=1e-6)
    assert load_spec(name).training.augmentation == Augmentation(**aug)
    for variant in ("fixed", "random"):  # the hyperparameter zoos share their seed zoo's protocol
        if f"{name}-hyp-{variant}" in registered_zoos():
            assert load_spec(f"{name}-hyp-{variant}").image_data == data
