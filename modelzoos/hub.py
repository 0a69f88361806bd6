"""The hub folder: Parquet shards per config and split, layout.json, zoo.yaml and the dataset card,
and for a zoo of transformers models each model's final epoch as `transformers/<model_id>/`
(config.json and model.safetensors, for `from_pretrained`).

`build_hub(zoo_dir)` writes `zoo_dir/hub`, which loads with `load_dataset(folder, config)`
exactly as it will from the Hub. It is assembled beside the old one and swapped in at the end,
so a failed build leaves a previous hub folder as it was.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import safetensors.torch

from .builder import ModelZoo
from .builder.rows import check_complete, model_templates, named_layouts, stage_of
from .errors import ModelzoosError
from .hub_cards import render_card, summarize, write_plots
from .hub_cards.card import CONFIGS, TRANSFORMERS_DIR
from .spec import ZooSpec
from .zoo_dir import DIR_MODE, ZooDir, atomic_write


def build_hub(zoo_dir: str | Path) -> Path:
    zoo = ZooDir(zoo_dir)
    if zoo.is_hub_folder():
        raise ModelzoosError(f"{zoo.root} is a hub folder already; build the zoo directory (its parent)")
    spec = zoo.load_spec()
    check_complete(zoo, spec)  # before anything is written
    layouts = named_layouts(spec)
    stage = Path(tempfile.mkdtemp(dir=zoo.root, prefix=".hub-"))
    stage.chmod(DIR_MODE)
    try:
        for config in CONFIGS:
            builder = ModelZoo(config_name=config, data_dir=str(zoo.root), cache_dir=str(stage / ".cache"))
            prepared = stage / ".prepared" / config
            builder.download_and_prepare(output_dir=str(prepared), file_format="parquet")
            (stage / config).mkdir()
            for f in prepared.glob("*.parquet"):
                f.rename(stage / config / _shard_name(f.name, builder.dataset_name))
        shutil.rmtree(stage / ".prepared")
        shutil.rmtree(stage / ".cache")
        if len(layouts) == 1:
            atomic_write(stage / "layout.json", next(iter(layouts.values())).to_json())
        else:  # a staged zoo: one per stage and head, named as the rows' `stage` and `head` say
            (stage / "layouts").mkdir()
            for name, layout in layouts.items():
                atomic_write(stage / "layouts" / f"{name}.json", layout.to_json())
        shutil.copyfile(zoo.spec_path, stage / "zoo.yaml")  # the resolved spec: enough to regenerate
        if (zoo.root / "soups.json").is_file():  # `modelzoos soups` measured weight averaging
            shutil.copyfile(zoo.root / "soups.json", stage / "soups.json")
        write_transformers_checkpoints(zoo, spec, stage / TRANSFORMERS_DIR)
        render_card(spec, layouts, summarize(stage), stage, plots=write_plots(stage)).save(stage / "README.md")
        _swap(stage, zoo.hub_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return zoo.hub_dir


def write_transformers_checkpoints(zoo: ZooDir, spec: ZooSpec, dest: Path) -> None:
    """`dest/<model_id>/` for each model whose architecture is a transformers model (its module has
    `export_pretrained`): its final epoch, which `from_pretrained` opens. The final epoch only: all
    of them would multiply the repository's size by the epoch count (a ViT-S checkpoint is 88 MB);
    the `weights` config holds every epoch. Other architectures get nothing and import nothing."""
    templates = model_templates(spec)
    for entry in spec.models():
        export = getattr(templates[entry.model_id], "export_pretrained", None)
        if export is None:
            continue
        training = stage_of(spec, entry).training
        epoch = training.epochs
        export(
            safetensors.torch.load_file(zoo.checkpoint(entry.model_id, epoch)),
            dest / entry.model_id,
            zoo=spec.name, model_id=entry.model_id, stage=entry.stage, parent_id=entry.parent_id,
            parent_epoch=entry.parent_epoch, epoch=epoch,
            # how the row was scored: a contrastive model's head is a projection head
            loss=training.loss, autocast=training.autocast,
        )


def _shard_name(name: str, prefix: str) -> str:
    """`zoo-train.parquet` -> `train-00000-of-00001.parquet`; sharded names keep their numbers."""
    name = name.removeprefix(f"{prefix}-")
    return re.sub(r"^([a-z]+)\.parquet$", r"\1-00000-of-00001.parquet", name)


def _swap(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
