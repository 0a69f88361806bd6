"""The embedded ViT zoo: pre-training, then fine-tuning from each backbone, with lineage."""

import json

import datasets
import pytest
import safetensors
import safetensors.torch
import torch
import yaml

import modelzoos
from modelzoos.builder import split_of
from modelzoos.builder.layout import Layout
from modelzoos.data import load_image_tensors
from modelzoos.errors import ModelzoosError
from modelzoos.hub import build_hub
from modelzoos.spec import load_spec
from modelzoos.training import train_zoo
from modelzoos.zoo_dir import ZooDir


@pytest.fixture(scope="module")
def vit_zoo(tmp_path_factory):
    """digits-vit with its 4 backbones (3 supervised, 1 SimCLR) and the first 4 fine-tunes of the
    first backbone of each kind, 2 epochs a stage."""
    spec = load_spec("digits-vit").replace(max_models=4, epochs=2)
    root = tmp_path_factory.mktemp("vit") / "zoo"
    train_zoo(spec, root, progress=False)
    return spec, ZooDir(root), build_hub(root)


def test_the_published_shape_of_the_embedded_vit_zoo():
    spec = load_spec("digits-vit")
    models = spec.models()
    backbones = [m for m in models if m.stage in ("pretrain", "simclr")]
    tunes = [m for m in models if m.stage == "finetune"]
    assert [m.stage for m in backbones] == ["pretrain"] * 3 + ["simclr"] and len(tunes) == 4 * 16
    assert {m.parent_id for m in tunes} == {b.model_id for b in backbones}
    assert all(m.parent_epoch == 20 for m in tunes) and {m.factors.head for m in tunes} == {"linear", "mlp"}
    assert len({m.model_id for m in models}) == len(models)
    assert spec.stage_spec("pretrain").image_data.num_classes == 5
    simclr = spec.stage_spec("simclr")
    assert simclr.training.loss == "info_nce" and simclr.architecture_args(backbones[-1].factors)["num_classes"] == 64


def test_the_published_vit_zoo_as_zoos_md_gives_it():
    from modelzoos.builder.rows import zoo_layout

    spec = load_spec("imagenet-cifar100-vit-s16")
    models = spec.models()
    by_stage = {st.name: [m for m in models if m.stage == st.name] for st in spec.stages}
    assert len(models) == 250 and [len(v) for v in by_stage.values()] == [7, 3, 240]
    backbones = by_stage["supervised"] + by_stage["contrastive"]
    for b in backbones:
        tunes = [m for m in by_stage["finetune"] if m.parent_id == b.model_id]
        assert len(tunes) == 24 and {m.parent_epoch for m in tunes} == {90}
        assert {(m.factors.head, m.factors.optimizer, m.factors.lr, m.factors.weight_decay) for m in tunes} == {
            (h, o, lr, wd) for h in ("linear", "mlp") for o in ("adamw", "sgd") for lr in (3e-3, 1e-3, 1e-4) for wd in (1e-3, 0.0)
        }
    sup, con, tune = (spec.stage_spec(n) for n in ("supervised", "contrastive", "finetune"))
    assert sup.architecture_args(backbones[0].factors) == {"in_channels": 3, "num_classes": 1000, "activation": "gelu", "dropout": 0.0}
    assert zoo_layout(sup).n_params == 22_050_664  # ViT-S/16 at 224 with a 1,000-class head (timm's count)
    assert (sup.training.epochs, sup.training.batch_size, sup.training.label_smoothing) == (90, 256, 0.1)
    aug = sup.training.augmentation
    assert (aug.resized_crop, aug.hflip, aug.mixup, aug.cutmix, aug.erasing) == (True, True, 0.8, 1.0, 0.25)
    assert {(m.factors.optimizer, m.factors.lr, m.factors.weight_decay) for m in by_stage["supervised"]} == {("adamw", 1e-3, 1e-4)}
    assert (con.training.loss, con.training.temperature, con.training.batch_size, con.training.epochs) == ("info_nce", 0.07, 96, 90)
    assert (tune.image_data.source, tune.image_data.image_size, tune.training.epochs, tune.training.batch_size) == ("uoft-cs/cifar100", 224, 50, 256)
    assert tune.training.label_smoothing == 0.1 and sup.image_data.source == "ILSVRC/imagenet-1k"


def _staged(**changes) -> dict:
    import yaml

    data = yaml.safe_load(load_spec("digits-vit").to_yaml())
    for i, stage in changes.items():
        data["stages"][int(i[1:])].update(stage)
    return data


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"s2": {"parent": ["pretrain", "nowhere"]}}, "'stages\\[2\\].parent': 'nowhere' is no earlier stage"),
        ({"s2": {"parent": ["pretrain", "pretrain"]}}, "names a stage twice"),
        ({"s1": {"parent_epoch": 3}}, "'stages\\[1\\].parent_epoch' needs a 'parent'"),
        ({"s2": {"parent_epoch": 21}}, "21 is not an epoch of 'pretrain'"),
        ({"s0": {"grid": {"seed": 1, "head": "mlp"}}}, "only a stage with a parent puts a new head"),
        ({"s1": {"training": {"loss": "info_nce", "label_smoothing": 0.0, "augmentation": {"hflip": True}}}}, "leave out 'augmentation'"),
        ({"s1": {"training": {"loss": "info_nce", "label_smoothing": 0.1}}}, "leave out 'augmentation' and 'label_smoothing'"),
        ({"s1": {"training": {"loss": "triplet"}}}, "unknown 'triplet'; use cross_entropy or info_nce"),
        ({"s1": {"training": {"loss": "info_nce", "label_smoothing": 0.0, "temperature": 0}}}, "temperature above 0"),
        ({"s0": {"name": "weights"}}, "'stages\\[0\\].name': 'weights' cannot name a dataset config"),
        ({"s1": {"name": "SimCLR views"}}, "'stages\\[1\\].name': 'SimCLR views' cannot name a dataset config"),
    ],
)
def test_bad_stages_are_refused_with_their_key(changes, message):
    from modelzoos.spec import SpecError, spec_from_dict

    with pytest.raises(SpecError, match=message):
        spec_from_dict(_staged(**changes), where="vit.yaml")


def test_a_contrastive_stage_may_have_a_projection_head():
    from modelzoos.spec import spec_from_dict

    spec = spec_from_dict(_staged(s1={"grid": {**load_spec("digits-vit").stages[1].grid, "head": "mlp"}}))
    assert {m.factors.head for m in spec.models() if m.stage == "simclr"} == {"mlp"}


def test_fine_tunes_start_from_their_backbone_with_a_new_head(vit_zoo):
    spec, zoo, _ = vit_zoo
    tunes = [m for m in spec.models() if m.stage == "finetune"]
    assert len(tunes) == 8 and {m.factors.head for m in tunes} == {"linear", "mlp"}
    stage_of = {m.model_id: m.stage for m in spec.models()}
    assert sorted(stage_of[m.parent_id] for m in tunes) == ["pretrain"] * 4 + ["simclr"] * 4
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
    assert sorted(p.name for p in (hub / "layouts").iterdir()) == ["finetune-linear.json", "finetune-mlp.json", "pretrain.json", "simclr.json"]
    with pytest.raises(ModelzoosError, match="is a hub folder"):  # it has layouts/, no layout.json
        train_zoo(spec, hub, progress=False)
    card = (hub / "README.md").read_text()
    assert "## Stages and lineage" in card
    # the protocol of each stage, the contrastive one with its loss and its metrics
    assert all(f"### Stage `{st.name}`" in card for st in spec.stages) and card.count("Label smoothing 0.1 on the training loss") == 2
    assert "InfoNCE loss at temperature 0.07" in card and "weighted k-NN vote" in card
    simclr = [r for r in rows if r["stage"] == "simclr"]
    assert len(simclr) == 3 and all(r["test_acc"] is not None and 0 < r["test_acc"] <= 1 for r in simclr)
    summary = card[card.index("## Summary") : card.index("## Generating factors")]
    rows = [summary.index(f"| `{stage}` | {n} | 0 |") for stage, n in (("pretrain", 3), ("simclr", 1), ("finetune", 8))]
    assert rows == sorted(rows)
    assert "(of the contrastive stage `simclr`: the k-NN accuracy of the representation)" in summary
    assert f"`{spec.models()[0].model_id}`" in card


def test_the_accuracy_plot_has_a_panel_per_stage(vit_zoo):
    import pyarrow as pa

    from modelzoos.hub_cards.plots import accuracy_figure
    from modelzoos.hub_cards.summary import final_rows, read_metadata, stage_order

    _, _, hub = vit_zoo
    table = pa.concat_tables(read_metadata(hub).values())
    fig = accuracy_figure(table, stage_order(final_rows(table)))
    titles = ["stage pretrain: 3 models", "stage simclr: 1 model", "stage finetune: 8 models"]
    assert [ax.get_title(loc="left") for ax in fig.axes] == titles
    assert (hub / "assets" / "accuracy_per_epoch.png").read_bytes().startswith(b"\x89PNG")
    card = (hub / "README.md").read_text()
    assert "at each epoch, one panel per stage" in card and "coloured by stage" in card


def test_a_staged_zoo_has_a_config_per_stage_sharing_the_weights_files(vit_zoo):
    spec, _, hub = vit_zoo
    meta = yaml.safe_load((hub / "README.md").read_text().split("---")[1])
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["metadata", "weights", "pretrain", "simclr", "finetune", "final"]
    everything = datasets.load_dataset(str(hub), "weights")
    rows = {(r["model_id"], r["epoch"]): r["weights"] for split in everything.values() for r in split}
    seen = set()
    for st in spec.stages:
        # a stage's config downloads its own folder only, the one the weights config also reads
        assert all(f["path"].startswith(f"weights/{st.name}/") for f in configs[st.name]["data_files"])
        ds = datasets.load_dataset(str(hub), st.name)
        for split in ds.values():
            assert set(split["stage"]) == {st.name}
            for r in split:
                assert rows[(r["model_id"], r["epoch"])] == r["weights"]
                seen.add((r["model_id"], r["epoch"]))
    assert seen == set(rows)  # the stages' configs together are the weights config
    assert all(f["path"].startswith("weights/*/") for f in configs["weights"]["data_files"])
    final = datasets.load_dataset(str(hub), "final")
    last = {m.model_id: spec.stage_spec(m.stage).training.epochs for m in spec.models()}
    assert sorted((r["model_id"], r["epoch"]) for s in final.values() for r in s) == sorted(last.items())
    # one stage's rows share one layout (here: the pre-training head), so they make one matrix
    pretrain = datasets.load_dataset(str(hub), "pretrain", split="train")
    numel = Layout.from_json((hub / "layouts" / "pretrain.json").read_text()).numel
    assert modelzoos.weight_matrix(pretrain).shape == (len(pretrain), numel)
    with pytest.raises(ValueError, match="different lengths"):
        modelzoos.weight_matrix(datasets.load_dataset(str(hub), "final", split="train"))


def test_soup_report_on_the_fine_tunes_and_in_the_card(vit_zoo):
    from modelzoos.soups import write_soup_report

    spec, zoo, _ = vit_zoo
    report = json.loads(write_soup_report(zoo.root, k=2).read_text())
    assert report["k"] == 2 and len(report["models"]) == 8 and len(report["families"]) == 4
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


def test_the_hub_folder_has_a_transformers_checkpoint_of_each_models_final_epoch(vit_zoo):
    spec, zoo, hub = vit_zoo
    models = spec.models()
    assert sorted(p.name for p in (hub / "transformers").iterdir()) == sorted(m.model_id for m in models)
    for m in models:
        folder = hub / "transformers" / m.model_id
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["ViTForImageClassification"] and config["model_type"] == "vit"
        assert config["head"] == ("mlp" if m.factors.head == "mlp" else "linear")
        lineage = {"zoo": spec.name, "model_id": m.model_id, "stage": m.stage, "parent_id": m.parent_id,
                   "parent_epoch": m.parent_epoch, "epoch": 2,
                   "loss": "info_nce" if m.stage == "simclr" else "cross_entropy", "autocast": None}
        assert config["modelzoos"] == lineage
        with safetensors.safe_open(folder / "model.safetensors", "pt") as f:
            assert f.metadata() == {"format": "pt"}
        saved = safetensors.torch.load_file(folder / "model.safetensors")
        final = safetensors.torch.load_file(zoo.checkpoint(m.model_id, 2))
        assert saved.keys() == final.keys() and all(torch.equal(saved[k], final[k]) for k in final)
    card = (hub / "README.md").read_text()
    assert "## Load a model with transformers" in card and "ViT.from_pretrained" in card
    assert f'model_id = "{models[0].model_id}"' in card  # a backbone: a linear head, which the plain class opens


def _test_accuracy(model, data):
    with torch.no_grad():
        logits = model(data.test_x).logits
    return logits, (logits.argmax(1) == data.test_y).double().mean().item()


def test_from_pretrained_opens_the_checkpoints_as_to_model_does(vit_zoo):
    from transformers import ViTForImageClassification

    from modelzoos.architectures.vit import ViT

    spec, _, hub = vit_zoo
    ds = datasets.load_dataset(str(hub), "weights")
    final = {r["model_id"]: r for split in ds.values() for r in split if r["stage"] == "finetune" and r["epoch"] == 2}
    data = load_image_tensors(spec.stage_spec("finetune").image_data)
    by_head = {head: next(r for r in final.values() if r["head"] == head) for head in ("linear", "mlp")}

    row = by_head["linear"]
    path = hub / "transformers" / row["model_id"]
    expected, acc = _test_accuracy(modelzoos.to_model(row), data)
    assert acc == pytest.approx(row["test_acc"], abs=1e-9)
    plain, info = ViTForImageClassification.from_pretrained(path, output_loading_info=True)
    assert type(plain) is ViTForImageClassification and not plain.training
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    logits, acc = _test_accuracy(plain, data)  # transformers' default attention (SDPA): rounds differently
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert acc == pytest.approx(row["test_acc"], abs=1e-9)
    eager = ViTForImageClassification.from_pretrained(path, attn_implementation="eager")
    assert torch.equal(_test_accuracy(eager, data)[0], expected)  # the attention to_model runs: the same bits

    row = by_head["mlp"]
    path = hub / "transformers" / row["model_id"]
    expected, _ = _test_accuracy(modelzoos.to_model(row), data)
    ours, info = ViT.from_pretrained(path, output_loading_info=True, attn_implementation="eager")
    assert isinstance(ours.classifier, torch.nn.Sequential) and not any(info.values()), info
    logits, acc = _test_accuracy(ours, data)
    assert torch.equal(logits, expected) and acc == pytest.approx(row["test_acc"], abs=1e-9)
    # what the card warns of: the plain class drops the MLP head for a new random one
    _, info = ViTForImageClassification.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}
    assert info["unexpected_keys"] == {f"classifier.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}


def test_a_vit_zoo_built_without_a_damaged_backbone(vit_zoo, tmp_path):
    """The card's transformers example, its stage table and the stage order come from what was built."""
    import shutil

    spec, zoo, _ = vit_zoo
    root = tmp_path / "zoo"
    shutil.copytree(zoo.root, root, ignore=shutil.ignore_patterns("hub"))
    first = spec.models()[0]  # the first supervised backbone: the card's transformers example before
    damaged = ZooDir(root).checkpoint(first.model_id, 1)
    damaged.write_bytes(damaged.read_bytes()[:-8])
    hub = build_hub(root, skip_bad_models=True)
    assert not (hub / "transformers" / first.model_id).exists()
    card = (hub / "README.md").read_text()
    assert f'model_id = "{first.model_id}"' not in card and "## Models left out" in card
    built = {r for split in datasets.load_dataset(str(hub)).values() for r in split["model_id"]}
    assert first.model_id not in built and len(built) == len(spec.models()) - 1
    pretrain = sum(m.stage == "pretrain" for m in spec.models()) - 1
    assert f"| `pretrain` | its own initialization | {pretrain} |" in card
