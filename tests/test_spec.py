import pytest
import yaml

from modelzoos.errors import ModelzoosError
from modelzoos.spec import ZOOS_DIR, SpecError, load_spec, model_id_of, registered_zoos

from conftest import write_spec


def test_registered_zoos_load():
    assert "digits-cnn-s" in registered_zoos()
    spec = load_spec("digits-cnn-s")
    models = spec.models()
    assert len(models) == spec.grid_size == 50
    assert [m.factors.seed for m in models] == list(range(1, 51))
    assert len({m.model_id for m in models}) == 50


def test_expansion_is_deterministic_and_independent_of_key_order(tmp_path):
    grid = {"seed": [3, 1], "activation": ["relu", "tanh"], "lr": [0.1, 0.01]}
    a = load_spec(write_spec(tmp_path / "a.yaml", grid=grid))
    reordered = dict(reversed(list(grid.items())))
    data = yaml.safe_load((tmp_path / "a.yaml").read_text())
    data["grid"] = reordered
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    b = load_spec(tmp_path / "b.yaml")
    assert a.models() == b.models() == load_spec(tmp_path / "a.yaml").models()
    assert len(a.models()) == 2 * 2 * 2 * 1  # the rest of the digits grid has one value each
    # seeds innermost: models of one configuration are neighbours
    assert [m.factors.seed for m in a.models()[:2]] == [3, 1]


def test_model_id_depends_on_factors_only(tmp_path):
    small = load_spec(write_spec(tmp_path / "s.yaml", grid={"seed": [1, 2]}))
    big = load_spec(write_spec(tmp_path / "b.yaml", grid={"seed": {"from": 1, "to": 10}}))
    assert [m.model_id for m in small.models()] == [m.model_id for m in big.models()[:2]]
    assert small.models()[0].model_id == model_id_of(small.models()[0].factors)


def test_max_models_and_epochs_shrink(tmp_path):
    spec = load_spec("digits-cnn-s").replace(max_models=4, epochs=2)
    assert len(spec.models()) == 4 and spec.training.epochs == 2
    with pytest.raises(ModelzoosError, match="max-models"):
        spec.replace(max_models=0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"training": {"epoch": 3}}, "unknown key 'training.epoch'"),
        ({"training": {"epochs": "twenty"}}, "'training.epochs' must be an integer"),
        ({"grid": {"lr": "fast"}}, "'grid.lr' must be a number"),
        ({"grid": {"activation": "swish"}}, "unknown value 'swish'"),
        ({"grid": {"colour": ["red"]}}, "unknown key 'grid.colour'"),
        ({"grid": {"seed": {"from": 5, "to": 1}}}, "'to' \\(1\\) is smaller than 'from' \\(5\\)"),
        ({"image_data": {"mean": [0.1, 0.2]}}, "'image_data.mean' has 2 values"),
        ({"architecture": "cnn-s"}, "'architecture' must be a mapping"),
    ],
)
def test_bad_spec_names_file_and_key(tmp_path, changes, message):
    path = write_spec(tmp_path / "bad.yaml", **changes)
    with pytest.raises(ModelzoosError, match=message) as e:
        load_spec(path)
    assert str(path) in str(e.value)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ModelzoosError, match="not valid YAML"):
        load_spec(path)


def test_unknown_zoo_lists_registered_ones():
    with pytest.raises(ModelzoosError, match="unknown zoo 'mnist-cnn-xl'.*digits-cnn-s"):
        load_spec("mnist-cnn-xl")


def test_spec_round_trips_through_yaml():
    spec = load_spec("digits-cnn-s")
    from modelzoos.spec import spec_from_dict

    assert spec_from_dict(yaml.safe_load(spec.to_yaml())) == spec
    assert (ZOOS_DIR / "digits-cnn-s.yaml").is_file()


def test_validation_split_or_carve_not_both(tmp_path):
    path = write_spec(tmp_path / "v.yaml", image_data={"validation": {"size": 10, "split": "validation"}})
    with pytest.raises(SpecError, match="both a split .* and a size"):
        load_spec(path)


def test_unknown_publication_and_bad_augmentation(tmp_path):
    with pytest.raises(SpecError, match="'publication': unknown 'nature'"):
        load_spec(write_spec(tmp_path / "p.yaml", publication="nature"))
    with pytest.raises(SpecError, match="training.augmentation"):
        load_spec(write_spec(tmp_path / "a.yaml", training={"augmentation": {"rotation": 400}}))
    with pytest.raises(SpecError, match="unknown key 'training.augmentation.flip'"):
        load_spec(write_spec(tmp_path / "f.yaml", training={"augmentation": {"flip": True}}))
