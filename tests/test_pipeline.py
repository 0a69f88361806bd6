"""The whole path on the tiny zoo: spec -> training -> raw zoo -> builder -> hub folder -> load."""

import hashlib
import json
import shutil
import subprocess
import sys

import datasets
import pytest
import safetensors.torch
import torch
import yaml

import modelzoos
from modelzoos.builder import ModelZoo, split_of
from modelzoos.builder.layout import Layout, flatten
from modelzoos.data import load_image_tensors
from modelzoos.errors import ModelzoosError
from modelzoos.hub import build_hub
from modelzoos.spec import load_spec
from modelzoos.training import evaluate, train_zoo
from modelzoos.zoo_dir import ZooDir

from conftest import write_spec


def _tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("config", ["metadata", "weights"])
def test_hub_folder_loads_in_every_config(tiny_zoo, config):
    spec, root = tiny_zoo
    ds = datasets.load_dataset(str(root / "hub"), config)
    n_rows = sum(len(split) for split in ds.values())
    assert n_rows == 3 * (2 + 1)
    assert ("weights" in ds[next(iter(ds))].column_names) == (config == "weights")
    for split in ds.values():
        assert split.features["seed"].dtype == "int64"
        assert split.features["lr"].dtype == "float64"
        assert split.features["test_acc"].dtype == "float64"
        assert set(split["status"]) == {"ok"}
        assert sorted(set(split["epoch"])) == [0, 1, 2]


def test_default_config_is_metadata(tiny_zoo):
    _, root = tiny_zoo
    ds = datasets.load_dataset(str(root / "hub"))
    assert "weights" not in ds[next(iter(ds))].column_names
    card = (root / "hub" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "cc-by-4.0" and "model-zoo" in meta["tags"] and meta["pretty_name"]
    assert [c["config_name"] for c in meta["configs"]] == ["metadata", "weights", "final"]
    assert meta["configs"][0]["default"] is True
    for heading in ("## Load it", "## Generating factors", "## Layers", "## Training protocol"):
        assert heading in card
    assert "`conv1.weight`" in card
    # the hub folder carries the resolved spec, and it regenerates the same zoo
    assert load_spec(root / "hub" / "zoo.yaml") == load_spec(root / "zoo.yaml")
    assert "modelzoos train zoo.yaml" in card


def test_builder_tables_match_the_raw_zoo(tiny_zoo):
    spec, root = tiny_zoo
    builder = ModelZoo(config_name="weights", data_dir=str(root))
    builder.download_and_prepare()
    ds = datasets.concatenate_datasets(list(builder.as_dataset().values()))
    zoo = ZooDir(root)
    layout = Layout.from_json((root / "hub" / "layout.json").read_text())
    assert layout.numel == layout.n_params == 2_464
    for row in ds:
        metrics = zoo.read_metrics(row["model_id"])[row["epoch"]]
        assert row["test_acc"] == metrics["test_acc"]
        state = safetensors.torch.load_file(zoo.checkpoint(row["model_id"], row["epoch"]))
        assert torch.equal(torch.tensor(row["weights"]), flatten(state, layout))
        assert json.loads(row["architecture_args"])["in_channels"] == 1


def test_to_model_reproduces_test_accuracy(tiny_zoo):
    spec, root = tiny_zoo
    data = load_image_tensors(spec.image_data)
    ds = datasets.load_dataset(str(root / "hub"), "weights")
    rows = [r for split in ds.values() for r in split]
    assert len(rows) == 9
    for row in rows:
        model = modelzoos.to_model(row, root / "hub" / "layout.json")
        _, acc = evaluate(model, data.test_x, data.test_y)
        assert acc == row["test_acc"], (row["model_id"], row["epoch"])
    final = [r["test_acc"] for r in rows if r["epoch"] == 2]
    assert min(final) > 0.5  # trained, not chance (0.1)


def test_unflatten_round_trip(tiny_zoo):
    _, root = tiny_zoo
    row = datasets.load_dataset(str(root / "hub"), "weights")["train"][0]
    state = modelzoos.unflatten(row["weights"], root / "hub" / "layout.json")
    assert state["conv1.weight"].shape == (8, 1, 5, 5)
    assert torch.equal(flatten(state, Layout.from_json((root / "hub" / "layout.json").read_text())), torch.tensor(row["weights"]))
    with pytest.raises(ValueError, match="weights"):
        modelzoos.to_model({k: v for k, v in row.items() if k != "weights"})


def test_splits_disjoint_by_model_and_stable(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    ds = datasets.load_dataset(str(root / "hub"))
    ids = {name: set(split["model_id"]) for name, split in ds.items()}
    assert sorted(ids) == ["test", "train", "validation"]
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not ids[a] & ids[b]
        assert all(split_of(m) == a for m in ids[a])
    # a rebuild gives the same assignment, and the assignment is by model_id alone
    build_hub(root)
    again = datasets.load_dataset(str(root / "hub"), download_mode="force_redownload")
    assert {n: set(s["model_id"]) for n, s in again.items()} == ids
    many = [f"{i:012x}" for i in range(3000)]
    counts = {s: sum(split_of(m) == s for m in many) for s in ("train", "validation", "test")}
    assert 0.65 < counts["train"] / 3000 < 0.75 and min(counts.values()) > 300


def test_same_seed_same_bytes_other_seed_other_bytes(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    train_zoo(spec, tmp_path / "again", progress=False)
    first = {k: v for k, v in _tree_digest(root / "models").items()}
    second = _tree_digest(tmp_path / "again" / "models")
    assert first == second
    a, b = spec.models()[:2]
    zoo = ZooDir(root)
    for epoch in (0, 2):
        assert zoo.checkpoint(a.model_id, epoch).read_bytes() != zoo.checkpoint(b.model_id, epoch).read_bytes()


def test_rerun_skips_finished_models_and_resumes(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    zoo = ZooDir(tmp_path / "z")
    small = spec.replace(max_models=1)
    train_zoo(small, zoo.root, progress=False)
    entry = small.models()[0]
    # Pretend the run died after epoch 1: drop epoch 2 and put back epoch 1's optimizer state.
    full = zoo.read_metrics(entry.model_id)
    final = zoo.checkpoint(entry.model_id, 2).read_bytes()
    zoo.checkpoint(entry.model_id, 2).unlink()
    zoo.write_metrics(entry.model_id, full[:2])
    with pytest.raises(ModelzoosError, match="not fully trained"):
        build_hub(zoo.root)
    assert not zoo.hub_dir.exists()
    train_zoo(small, zoo.root, progress=False)  # its state.pt was deleted at the end: it starts afresh
    assert zoo.checkpoint(entry.model_id, 2).read_bytes() == final
    assert zoo.read_metrics(entry.model_id) == full


def test_out_dir_with_a_different_zoo_is_left_alone(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    before = _tree_digest(root)
    with pytest.raises(ModelzoosError, match="holds a different zoo .*training.epochs is 2 there, 5 now"):
        train_zoo(spec.replace(epochs=5), root, progress=False)
    other = load_spec("digits-cnn-s")
    with pytest.raises(ModelzoosError, match="holds a different zoo"):
        train_zoo(other, root, progress=False)
    assert _tree_digest(root) == before


def test_a_new_description_resumes_and_is_kept(tiny_zoo, tmp_path):
    """Metadata (name, description, notes, ...) may change between runs; training settings may not."""
    import dataclasses

    spec, root = tiny_zoo
    shutil.copytree(root, tmp_path / "z", ignore=shutil.ignore_patterns("hub"))
    zoo = ZooDir(tmp_path / "z")
    model_id = spec.models()[0].model_id
    before = zoo.checkpoint(model_id, 2).read_bytes()
    reworded = dataclasses.replace(spec, description="Reworded.", notes=["A note added later."], publication="model-zoos")
    train_zoo(reworded, zoo.root, progress=False)
    assert zoo.load_spec() == reworded and zoo.checkpoint(model_id, 2).read_bytes() == before
    assert "A note added later." in (build_hub(zoo.root) / "README.md").read_text()


def test_out_dir_that_is_not_a_zoo(tiny_spec, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ModelzoosError, match="not empty and holds no zoo.yaml"):
        train_zoo(tiny_spec, out, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_missing_image_data_writes_nothing(tmp_path):
    spec = load_spec(write_spec(tmp_path / "m.yaml", image_data={"source": str(tmp_path / "nowhere")}))
    with pytest.raises(ModelzoosError, match="cannot load split"):
        train_zoo(spec, tmp_path / "zoo", progress=False)
    assert not (tmp_path / "zoo").exists()


def test_run_killed_while_writing_an_epoch_resumes_to_the_same_bytes(tiny_zoo, tmp_path, monkeypatch):
    """Killed after one model committed epoch 1 and before the next did: the group resumes
    together from epoch 0 state it still has, and ends bit for bit as the uninterrupted run."""
    from modelzoos.zoo_dir import ZooDir as Zd

    spec, root = tiny_zoo
    original, calls = Zd.write_metrics, []

    def dies(self, model_id, rows):
        if len(rows) == 2 and len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(model_id) if len(rows) == 2 else None
        original(self, model_id, rows)

    monkeypatch.setattr(Zd, "write_metrics", dies)
    with pytest.raises(KeyboardInterrupt):
        train_zoo(spec, tmp_path / "z", progress=False)
    monkeypatch.setattr(Zd, "write_metrics", original)
    zoo = ZooDir(tmp_path / "z")
    assert sorted(len(zoo.read_metrics(m.model_id)) for m in spec.models()) == [1, 1, 2]
    kept = {m.model_id: zoo.checkpoint(m.model_id, 0).stat().st_mtime_ns for m in spec.models()}
    train_zoo(spec, zoo.root, progress=False)
    assert _tree_digest(zoo.models_dir) == _tree_digest(root / "models")
    assert kept == {m.model_id: zoo.checkpoint(m.model_id, 0).stat().st_mtime_ns for m in spec.models()}


def test_model_ids_and_splits_are_pinned():
    """Changing how ids or splits are derived would silently reshuffle published zoos."""
    models = load_spec("digits-cnn-s").models()
    assert [m.model_id for m in models[:3]] == ["b684a2d3cbac", "4b8d4ae62cac", "d000000c74c1"]
    assert [split_of(i) for i in ("b684a2d3cbac", "4b8d4ae62cac", "db3fa254d5ff")] == ["train", "validation", "test"]


def test_rerun_of_a_finished_zoo_trains_nothing(tiny_zoo, monkeypatch):
    from modelzoos.training.engine import GroupTrainer

    spec, root = tiny_zoo
    before = _tree_digest(root / "models")
    monkeypatch.setattr(GroupTrainer, "run", lambda *a, **k: pytest.fail("a finished model was trained again"))
    train_zoo(spec, root, progress=False)
    assert _tree_digest(root / "models") == before


def test_files_are_readable_by_others(tiny_zoo):
    import os
    import stat

    _, root = tiny_zoo
    mask = os.umask(0)
    os.umask(mask)
    zoo = ZooDir(root)
    model_id = next(zoo.models_dir.iterdir()).name
    for path in (zoo.spec_path, zoo.checkpoint(model_id, 0), zoo.metrics_path(model_id), root / "hub" / "layout.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    assert stat.S_IMODE((root / "hub").stat().st_mode) == 0o777 & ~mask


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"architecture": {"name": "cnn-xl"}}, "unknown architecture 'cnn-xl'"),
        ({"architecture": {"name": "cnn-s", "args": {"width": 3}}}, "cannot train on its image data"),
        ({"image_data": {"image_size": 32, "resize": 32}}, "cannot train on its image data"),
        ({"grid": {"seed": [1], "optimizer": "sgd", "momentum": 0.0, "nesterov": True}}, "nesterov needs a momentum"),
        ({"image_data": {"resize": 0}}, "'image_data.resize' must be at least 1"),
        ({"architecture": {"name": "plain-cnn"}}, "no population forward"),
    ],
)
def test_specs_that_cannot_train_fail_before_writing(tmp_path, changes, message, monkeypatch):
    from modelzoos.architectures import _REGISTRY

    # a user's architecture registered without a population forward
    monkeypatch.setitem(_REGISTRY, "plain-cnn", lambda **kw: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)))
    with pytest.raises(ModelzoosError, match=message):
        spec = load_spec(write_spec(tmp_path / "s.yaml", **changes))
        train_zoo(spec, tmp_path / "zoo", progress=False)
    assert not (tmp_path / "zoo").exists()


def test_damaged_zoo_gives_a_clear_error(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    shutil.copytree(root, tmp_path / "z", ignore=shutil.ignore_patterns("hub"))
    zoo = ZooDir(tmp_path / "z")
    model_id = spec.models()[0].model_id
    text = zoo.metrics_path(model_id).read_text()
    zoo.metrics_path(model_id).write_text(text[: len(text) // 2])
    with pytest.raises(ModelzoosError, match="1 of 3 models have problems .*metrics.jsonl line 2: .*delete the model's directory .* re-run"):
        build_hub(zoo.root)
    zoo.spec_path.write_text("name: [broken\n")
    with pytest.raises(ModelzoosError, match="zoo.yaml: damaged, not valid YAML"):
        build_hub(zoo.root)
    assert not zoo.hub_dir.exists()


def test_hub_folder_is_not_a_training_target(tiny_zoo):
    spec, root = tiny_zoo
    before = _tree_digest(root / "hub")
    with pytest.raises(ModelzoosError, match="is a hub folder"):
        train_zoo(spec, root / "hub", progress=False)
    with pytest.raises(ModelzoosError, match="is a hub folder"):
        build_hub(root / "hub")
    assert _tree_digest(root / "hub") == before


def test_two_zoos_hub_folders_load_their_own_tables(tiny_zoo, tmp_path):
    """`datasets` caches local folders by name and card: every hub folder is named "hub"."""
    spec, root = tiny_zoo
    other = spec.replace(max_models=1, epochs=1)
    train_zoo(other, tmp_path / "other", progress=False)
    build_hub(tmp_path / "other")
    for _ in range(2):
        for hub, rows in ((root / "hub", 9), (tmp_path / "other" / "hub", 2)):
            for config in ("metadata", "weights"):
                ds = datasets.load_dataset(str(hub), config)
                assert sum(len(s) for s in ds.values()) == rows


def test_a_resume_reads_the_image_tensors_from_the_zoo_cache(tiny_zoo, tmp_path, monkeypatch):
    import modelzoos.training.train as train_module

    spec, root = tiny_zoo
    small = spec.replace(max_models=1, epochs=1)
    train_zoo(small, tmp_path / "z", progress=False)
    assert len(list((tmp_path / "z" / "cache").glob("images-*.safetensors"))) == 1
    monkeypatch.setattr(train_module, "load_image_tensors", lambda *a: pytest.fail("decoded the images again"))
    train_zoo(small.replace(max_models=1), tmp_path / "z", progress=False)


def test_a_cnn_zoo_has_no_transformers_checkpoints_and_builds_without_transformers(tiny_zoo, tmp_path):
    _, root = tiny_zoo
    assert not (root / "hub" / "transformers").exists()
    assert "## Load a model with transformers" not in (root / "hub" / "README.md").read_text()
    # importing transformers costs seconds; a CNN zoo's build must not pay them
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("hub", "cache"))
    code = "import sys; from modelzoos.hub import build_hub; build_hub(sys.argv[1]); print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))"
    run = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]" and (copy / "hub" / "metadata").is_dir()
