"""The hub folder's files: every config round-trips, the Parquet is written as the module says,
the card's `dataset_info` tells the truth, packed checkpoints, `load_zoo` and `weight_matrix`."""

import shutil

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import safetensors.torch
import torch
import yaml

import modelzoos
from modelzoos import shards
from modelzoos.builder.layout import Layout, flatten
from modelzoos.cli import main
from modelzoos.errors import ModelzoosError
from modelzoos.hub import build_hub
from modelzoos.packed import epoch_state
from modelzoos.zoo_dir import ZooDir


def _card_yaml(hub):
    return yaml.safe_load((hub / "README.md").read_text().split("---")[1])


@pytest.fixture
def zoo_copy(tiny_zoo, tmp_path):
    """A copy of the tiny zoo without its hub folder, to build in other ways."""
    _, root = tiny_zoo
    dest = tmp_path / "zoo"
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("hub"))
    return dest


def test_every_config_round_trips(tiny_zoo):
    spec, root = tiny_zoo
    hub, zoo = root / "hub", ZooDir(root)
    layout = Layout.from_json((hub / "layout.json").read_text())
    last = spec.training.epochs
    for config in ("metadata", "weights", "final"):
        ds = datasets.load_dataset(str(hub), config)
        rows = [r for split in ds.values() for r in split]
        ids = {e.model_id for e in spec.models()}
        assert {r["model_id"] for r in rows} == ids
        if config == "final":
            assert sorted(r["epoch"] for r in rows) == [last] * len(ids)
        else:
            assert len(rows) == len(ids) * (last + 1)
        for r in rows:
            assert r["test_acc"] == zoo.read_metrics(r["model_id"])[r["epoch"]]["test_acc"]
            if config != "metadata":
                state = safetensors.torch.load_file(zoo.checkpoint(r["model_id"], r["epoch"]))
                assert torch.equal(torch.tensor(r["weights"]), flatten(state, layout))
        if config != "metadata":
            assert ds["train"].features["weights"] == datasets.List(datasets.Value("float32"), length=layout.numel)


def test_weights_parquet_is_written_for_floats(tiny_zoo):
    _, root = tiny_zoo
    for config in ("weights", "final"):
        files = sorted((root / "hub" / config).glob("*.parquet"))
        assert files
        for f in files:
            meta = pq.ParquetFile(f).metadata
            names = [meta.schema.column(i).path for i in range(meta.num_columns)]
            for g in range(meta.num_row_groups):
                for i, name in enumerate(names):
                    col = meta.row_group(g).column(i)
                    assert col.compression == "ZSTD" and col.has_offset_index, name
                    if name == "weights.list.element":
                        assert "BYTE_STREAM_SPLIT" in col.encodings and not col.has_dictionary_page
                        assert not col.is_stats_set  # min/max of weights prune nothing
                    elif name == "model_id":
                        assert col.has_dictionary_page
    # the metadata config stays small and weight-free: the viewer browses it
    meta_files = sorted((root / "hub" / "metadata").glob("*.parquet"))
    assert "weights" not in pq.read_schema(meta_files[0]).names


def test_row_groups_and_shards_are_bounded_and_load_unchanged(zoo_copy, tiny_zoo, monkeypatch):
    _, root = tiny_zoo
    row = 4 * 2_464 + 1024
    monkeypatch.setattr(shards, "ROW_GROUP_BYTES", 2 * row)  # two rows a group
    monkeypatch.setattr(shards, "SHARD_BYTES", 1)  # a new shard for every row group
    hub = build_hub(zoo_copy)
    train = sorted((hub / "weights").glob("train-*.parquet"))
    assert [f.name for f in train] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    groups = [pq.ParquetFile(f).metadata.row_group(i).num_rows for f in train for i in range(pq.ParquetFile(f).num_row_groups)]
    assert max(groups) == 2 and sum(groups) == 3  # the tiny zoo's train model has epochs 0..2
    cached = datasets.load_dataset(str(root / "hub"), "weights", split="train")
    split = datasets.load_dataset(str(hub), "weights", split="train")
    assert split["weights"] == cached["weights"] and split["epoch"] == cached["epoch"]
    # a matrix over several row groups is one array, rows in order
    matrix = modelzoos.weight_matrix(split)
    assert matrix.shape == (3, 2_464) and np.array_equal(matrix, np.asarray(cached["weights"], dtype=np.float32))


def test_the_cards_dataset_info_matches_the_files(tiny_zoo):
    _, root = tiny_zoo
    hub = root / "hub"
    meta = _card_yaml(hub)
    assert [c["config_name"] for c in meta["configs"]] == ["metadata", "weights", "final"]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert set(infos) == {"metadata", "weights", "final"}
    for name, info in infos.items():
        ds = datasets.load_dataset(str(hub), name)
        assert {s["name"]: s["num_examples"] for s in info["splits"]} == {k: len(v) for k, v in ds.items()}
        on_disk = sum(f.stat().st_size for f in (hub / name).glob("*.parquet"))
        assert info["download_size"] == on_disk
        assert [f["name"] for f in info["features"]] == list(ds["train"].features)
    weights = next(f for f in infos["weights"]["features"] if f["name"] == "weights")
    assert weights == {"name": "weights", "list": "float32", "length": 2_464}


def test_packed_checkpoints_hold_every_epoch(zoo_copy):
    assert main(["build", str(zoo_copy), "--checkpoints"]) == 0
    zoo, spec = ZooDir(zoo_copy), ZooDir(zoo_copy).load_spec()
    for entry in spec.models():
        path = zoo.hub_dir / "checkpoints" / f"{entry.model_id}.safetensors"
        packed = safetensors.torch.load_file(path)
        for epoch in range(spec.training.epochs + 1):
            state = safetensors.torch.load_file(zoo.checkpoint(entry.model_id, epoch))
            assert packed.keys() == state.keys()
            assert all(torch.equal(packed[k][epoch], v) for k, v in state.items())
            assert all(torch.equal(epoch_state(path, epoch)[k], v) for k, v in state.items())
        assert packed["conv1.weight"].shape[0] == spec.training.epochs + 1
    assert "`checkpoints/<model_id>.safetensors` holds every epoch" in (zoo.hub_dir / "README.md").read_text()
    with pytest.raises(ValueError, match="epochs 0..2"):
        epoch_state(path, 3)
    # not asked for, not written: they roughly double the repository
    build_hub(zoo_copy)
    assert not (zoo.hub_dir / "checkpoints").exists() and "checkpoints/<model_id>" not in (zoo.hub_dir / "README.md").read_text()


def test_load_zoo_and_a_zero_copy_weight_matrix(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    final = modelzoos.load_zoo(root, "final", split="train")  # a raw zoo directory: its hub folder
    assert len(final) == len(modelzoos.load_zoo(root / "hub", "final", split="train"))
    matrix = modelzoos.weight_matrix(final)
    assert matrix.shape == (len(final), 2_464) and matrix.dtype == np.float32
    assert np.array_equal(matrix, np.asarray(final["weights"], dtype=np.float32))
    # a view of the memory-mapped Arrow table, not a copy
    buffer = final.data.column("weights").chunk(0).flatten().buffers()[1]
    assert not matrix.flags.writeable and matrix.ctypes.data == buffer.address
    picked = modelzoos.weight_matrix(final.select([0]))
    assert np.array_equal(picked, matrix[:1])
    with pytest.raises(ValueError, match="no 'weights' column"):
        modelzoos.weight_matrix(modelzoos.load_zoo(root, split="train"))
    raw = tmp_path / "raw"
    shutil.copytree(root, raw, ignore=shutil.ignore_patterns("hub"))
    with pytest.raises(ModelzoosError, match="modelzoos build"):
        modelzoos.load_zoo(raw)


def test_packed_checkpoints_of_batchnorm_and_bfloat16_tensors(tmp_path):
    from modelzoos.packed import write_packed

    files = []
    for epoch in range(3):
        state = {
            "bn.num_batches_tracked": torch.tensor(epoch * 10, dtype=torch.int64),  # 0-dim, as BatchNorm's
            "w": torch.full((2, 3), epoch, dtype=torch.bfloat16),
            "b": torch.arange(4, dtype=torch.float32) + epoch,
        }
        files.append(tmp_path / f"epoch_{epoch:03d}.safetensors")
        safetensors.torch.save_file(state, files[-1])
    write_packed(files, tmp_path / "packed.safetensors", metadata={"model_id": "m"})
    packed = safetensors.torch.load_file(tmp_path / "packed.safetensors")
    assert torch.equal(packed["bn.num_batches_tracked"], torch.tensor([0, 10, 20]))
    assert packed["w"].dtype == torch.bfloat16 and packed["w"].shape == (3, 2, 3) and packed["w"][2].eq(2).all()
    assert torch.equal(epoch_state(tmp_path / "packed.safetensors", 1)["b"], torch.arange(4.0) + 1)
    safetensors.torch.save_file({**state, "w": state["w"].float()}, files[-1])  # a dtype that changed
    with pytest.raises(ModelzoosError, match="tensor 'w' differs"):
        write_packed(files, tmp_path / "bad.safetensors")
