"""The hub folder: Parquet shards per config and split (`metadata`, `weights`, `final`, and one
per stage of a staged zoo), layout.json (or layouts/), zoo.yaml, the dataset card and its plots
(assets/), for a zoo of transformers models each model's final epoch as `transformers/<model_id>/`
(config.json and model.safetensors, for `from_pretrained`), and on request packed checkpoints
(`checkpoints/<model_id>.safetensors`, every epoch of a model).

`build_hub(zoo_dir)` verifies the raw zoo, then writes `zoo_dir/hub`, which loads with
`load_dataset(folder, config)` exactly as it will from the Hub. It is assembled beside the old
one and swapped in at the end, so a failed build leaves a previous hub folder as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import safetensors.torch
from tqdm.auto import tqdm

from .builder import ModelZoo
from .builder.rows import distinct_layouts, model_templates, named_layouts, stage_of
from .errors import ModelzoosError
from .hub_cards import render_card, summarize, write_plots
from .hub_cards.card import CONFIG_DESCRIPTIONS, TRANSFORMERS_DIR
from .packed import PACKED_DIR, write_packed
from .shards import HubConfig, SplitFiles, rows_per_group, write_split
from .spec import ZooSpec
from .verify import verify_zoo
from .zoo_dir import DIR_MODE, ZooDir, atomic_write


def build_hub(
    zoo_dir: str | Path, *, checkpoints: bool = False, skip_bad_models: bool = False, repo_id: str | None = None
) -> Path:
    """Write `zoo_dir/hub`; with `checkpoints`, also `checkpoints/<model_id>.safetensors` holding
    every epoch of a model (see `packed.py`). A zoo that `verify` finds damaged (missing epochs,
    files changed since training, NaNs) is refused, or with `skip_bad_models` built without those
    models, which the card then lists. `repo_id`: the Hub id the card's examples load (default
    modelzoos/<name>); `modelzoos push` warns when it pushes a card naming another."""
    zoo = ZooDir(zoo_dir)
    if zoo.is_hub_folder():
        raise ModelzoosError(f"{zoo.root} is a hub folder already; build the zoo directory (its parent)")
    spec = zoo.load_spec()
    bad = verify_zoo(zoo.root).bad  # before anything is written
    if bad and not skip_bad_models:
        raise ModelzoosError(_refusal(zoo, len(spec.models()), bad))
    if len(bad) == len(spec.models()):
        raise ModelzoosError(f"{zoo.root}: every model has problems; nothing to build (see `modelzoos verify {zoo.root}`)")
    skip = tuple(bad)
    layouts = named_layouts(spec)
    stage = Path(tempfile.mkdtemp(dir=zoo.root, prefix=".hub-"))
    stage.chmod(DIR_MODE)
    try:
        configs = write_tables(zoo, spec, stage, skip)
        if len(layouts) == 1:
            atomic_write(stage / "layout.json", next(iter(layouts.values())).to_json())
        else:  # a staged zoo: one per stage and head, named as the rows' `stage` and `head` say
            (stage / "layouts").mkdir()
            for name, layout in layouts.items():
                atomic_write(stage / "layouts" / f"{name}.json", layout.to_json())
        shutil.copyfile(zoo.spec_path, stage / "zoo.yaml")  # the resolved spec: enough to regenerate
        if (zoo.root / "soups.json").is_file():  # `modelzoos soups` measured weight averaging
            shutil.copyfile(zoo.root / "soups.json", stage / "soups.json")
        write_transformers_checkpoints(zoo, spec, stage / TRANSFORMERS_DIR, skip)
        if checkpoints:
            for entry in tqdm([e for e in spec.models() if e.model_id not in bad], desc="packed checkpoints", unit="model"):
                epochs = range(stage_of(spec, entry).training.epochs + 1)
                write_packed(
                    [zoo.checkpoint(entry.model_id, e) for e in epochs], stage / PACKED_DIR / f"{entry.model_id}.safetensors",
                    metadata={"zoo": spec.name, "model_id": entry.model_id},
                )
        card = render_card(spec, layouts, summarize(stage), stage, configs, plots=write_plots(stage), skipped=bad or None, repo_id=repo_id)
        card.save(stage / "README.md")
        _swap(stage, zoo.hub_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return zoo.hub_dir


def _refusal(zoo: ZooDir, models: int, bad: dict[str, list[str]]) -> str:
    shown = "; ".join(f"{m}: {problems[0]}" for m, problems in list(bad.items())[:3]) + ("; ..." if len(bad) > 3 else "")
    return (
        f"{zoo.root}: {len(bad)} of {models} models have problems ({shown}); nothing was built. "
        f"`modelzoos verify {zoo.root}` lists them all. Models not fully trained: re-run the same "
        "`modelzoos train` command (it resumes). Damaged files: delete the model's directory under "
        f"{zoo.models_dir} and re-run `modelzoos train` (it trains that model again, to the same weights), "
        "or build without them with `--skip-bad-models` (the card lists them)."
    )


def write_tables(zoo: ZooDir, spec: ZooSpec, hub_dir: Path, skip: tuple[str, ...] = ()) -> list[HubConfig]:
    """The Parquet shards of every config, streamed model by model from the builder (`ModelZoo`),
    one row group at a time: memory holds a row group, whatever the number of models. `skip`:
    model_ids left out."""
    runs = [("metadata", "metadata", {}), ("final", "final", {})]
    if spec.stages:  # weights per stage, so that a stage's config downloads only its own files
        runs[1:1] = [("weights", f"weights/{st.name}", {"stage": st.name}) for st in spec.stages]
    else:
        runs[1:1] = [("weights", "weights", {})]
    built = [e for e in spec.models() if e.model_id not in skip]
    rows = sum(stage_of(spec, e).training.epochs + 1 for e in built)
    numel = max(layout.numel for layout in distinct_layouts(spec))
    configs: dict[str, HubConfig] = {}
    # every row once in `metadata` and once in `weights` (a staged zoo's stage runs share it out),
    # and each model once in `final`
    with tempfile.TemporaryDirectory() as cache, tqdm(total=2 * rows + len(built), desc="writing tables", unit="row") as bar:
        for name, folder, kwargs in runs:
            builder = ModelZoo(config_name=name, data_dir=str(zoo.root), cache_dir=cache, skip=skip, **kwargs)
            features = builder.info.features
            row_bytes = 1024 + (4 * numel if "weights" in features else 0)
            glob = "weights/*" if kwargs.get("stage") else folder
            parts = [configs.setdefault(name, HubConfig(name, CONFIG_DESCRIPTIONS[name], features, glob))]
            if kwargs.get("stage"):
                st = kwargs["stage"]
                parts.append(configs.setdefault(st, HubConfig(st, f"the `weights` config of stage `{st}` only", features, folder)))
            for split, ds in builder.as_streaming_dataset().items():
                tables = ds.with_format("arrow").iter(batch_size=rows_per_group(row_bytes))
                written = write_split(_counted(tables, bar), hub_dir / folder, str(split), features.arrow_schema)
                for config in parts:
                    _add(config.splits.setdefault(str(split), SplitFiles()), written)
    # in the card: the default first, then the weights, then each stage's, then `final`
    order = ["metadata", "weights", *(st.name for st in spec.stages), "final"]
    return [configs[name] for name in order if name in configs and configs[name].splits]  # a stage wholly left out has none


def _counted(tables, bar):
    for t in tables:
        bar.update(t.num_rows)
        yield t


def _add(total: SplitFiles, more: SplitFiles) -> None:
    total.files += more.files
    total.num_examples += more.num_examples
    total.num_bytes += more.num_bytes
    total.download_size += more.download_size


def write_transformers_checkpoints(zoo: ZooDir, spec: ZooSpec, dest: Path, skip: tuple[str, ...] = ()) -> None:
    """`dest/<model_id>/` for each model whose architecture is a transformers model (its module has
    `export_pretrained`): its final epoch, which `from_pretrained` opens. The final epoch only: all
    of them would multiply the repository's size by the epoch count (a ViT-S checkpoint is 88 MB);
    the `weights` config holds every epoch. Other architectures get nothing and import nothing."""
    templates = model_templates(spec)
    for entry in spec.models():
        export = getattr(templates[entry.model_id], "export_pretrained", None)
        if export is None or entry.model_id in skip:
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


def _swap(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
