"""The embedded ViT zoo: pre-training, then fine-tuning from each backbone, with lineage."""

import datasets
import pytest
import safetensors.torch
import torch

import modelzoos
from modelzoos.builder import split_of
from modelzoos.data import load_image_tensors
from modelzoos.errors import ModelzoosError
from modelzoos.hub import build_hub
from modelzoos.spec import load_spec
from modelzoos.training import train_zoo
from modelzoos.zoo_dir import ZooDir


@pytest.fixture(scope="module")
def vit_zoo(tmp_path_factory):
    """digits-vit with 2 backbones and the first 4 of their fine-tunes, 2 epochs a stage."""
    spec = load_spec("digits-vit").replace(max_models=4, epochs=2)
    root = tmp_path_factory.mktemp("vit") / "zoo"
    train_zoo(spec, root, progress=False)
    return spec, ZooDir(root), build_hub(root)


def test_the_published_shape_of_the_embedded_vit_zoo():
    spec = load_spec("digits-vit")
    models = spec.models()
    backbones = [m for m in models if m.stage == "pretrain"]
    tunes = [m for m in models if m.stage == "finetune"]
    assert len(backbones) == 3 and len(tunes) == 3 * 16
    assert {m.parent_id for m in tunes} == {b.model_id for b in backbones}
    assert all(m.parent_epoch == 20 for m in tunes) and {m.factors.head for m in tunes} == {"linear", "mlp"}
    assert len({m.model_id for m in models}) == len(models)
    assert spec.stage_spec("pretrain").image_data.num_classes == 5


def test_fine_tunes_start_from_their_backbone_with_a_new_head(vit_zoo):
    spec, zoo, _ = vit_zoo
    tunes = [m for m in spec.models() if m.stage == "finetune"]
    assert len(tunes) == 4 and {m.factors.head for m in tunes} == {"linear", "mlp"}
    for m in tunes:
        start = safetensors.torch.load_file(zoo.checkpoint(m.model_id, 0))
        parent = safetensors.torch.load_file(zoo.checkpoint(m.parent_id, m.parent_epoch))
        assert m.parent_epoch == 2
        backbone = [n for n in start if not n.startswith("classifier.")]
        assert backbone and all(torch.equal(start[n], parent[n]) for n in backbone)
        assert start[[n for n in start if n.startswith("classifier.")][-1]].shape[0] == 10  # 10 digits, not 5
        config = zoo.read_config(m.model_id)
        assert (config["stage"], config["parent_id"], config["parent_epoch"]) == ("finetune", m.parent_id, 2)


def test_lineage_columns_splits_and_to_model(vit_zoo):
    spec, zoo, hub = vit_zoo
    ds = datasets.load_dataset(str(hub), "weights")
    rows = [r for split in ds.values() for r in split]
    assert len(rows) == len(spec.models()) * 3
    by_id = {m.model_id: m for m in spec.models()}
    for split, table in ds.items():
        for r in table:
            m = by_id[r["model_id"]]
            assert (r["stage"], r["parent_id"], r["parent_epoch"]) == (m.stage, m.parent_id, m.parent_epoch)
            assert split_of(m.parent_id or m.model_id) == split  # a fine-tune sits in its backbone's split
    tune = next(r for r in rows if r["stage"] == "finetune" and r["head"] == "mlp" and r["epoch"] == 2)
    model = modelzoos.to_model(tune)
    assert isinstance(model, __import__("transformers").ViTForImageClassification)
    data = load_image_tensors(spec.stage_spec("finetune").image_data)
    with torch.no_grad():
        acc = (model(data.test_x).logits.argmax(1) == data.test_y).double().mean().item()
    assert acc == pytest.approx(tune["test_acc"], abs=1e-9)
    assert sorted(p.name for p in (hub / "layouts").iterdir()) == ["finetune-linear.json", "finetune-mlp.json", "pretrain.json"]
    with pytest.raises(ModelzoosError, match="is a hub folder"):  # it has layouts/, no layout.json
        train_zoo(spec, hub, progress=False)
    card = (hub / "README.md").read_text()
    assert "## Stages and lineage" in card
    assert card.index("final test accuracy, pretrain") < card.index("final test accuracy, finetune") and f"`{spec.models()[0].model_id}`" in card


def test_soup_report_on_the_fine_tunes_and_in_the_card(vit_zoo):
    import json

    from modelzoos.soups import write_soup_report

    spec, zoo, _ = vit_zoo
    report = json.loads(write_soup_report(zoo.root, k=2).read_text())
    assert report["k"] == 2 and len(report["models"]) == 4
    assert {(f["head"], f["siblings"]) for f in report["families"]} == {("linear", 2), ("mlp", 2)}
    for m in report["models"]:
        assert m["last"] == zoo.read_metrics(m["model_id"])[-1]["test_acc"] and 0 <= m["averaged"] <= 1
    for f in report["families"]:
        assert 1 <= f["greedy_ingredients"] <= 2 and all(0 <= f[k] <= 1 for k in ("best_sibling", "uniform_soup", "greedy_soup"))
    card = (build_hub(zoo.root) / "README.md").read_text()
    assert "## Weight averaging and soups" in card and f"{report['epoch_average_gain_mean']:+.4f}" in card


def test_soups_of_a_zoo_without_fine_tunes_is_refused(tiny_zoo, capsys):
    from modelzoos.cli import main

    _, root = tiny_zoo
    assert main(["soups", str(root)]) == 1
    err = capsys.readouterr().err
    assert "has no fine-tuning stage" in err and not (root / "soups.json").exists()
