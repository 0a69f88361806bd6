"""The dataset card (README.md of the hub folder): YAML metadata for the Hub, and a body to read.

Rendered from a Jinja2 template with huggingface_hub's `DatasetCard.from_template`. Reads only the
spec, the layouts and what the hub folder holds already (the built tables, soups.json, the
transformers checkpoints' configs); the plots it shows are drawn beforehand by `plots.write_plots`.
"""

from __future__ import annotations

import dataclasses
import json
import hashlib
from collections.abc import Sequence
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ..builder.layout import Layout
from ..packed import PACKED_DIR
from ..shards import HubConfig
from ..spec import Factors, ZooSpec
from .plots import Plot
from .summary import ZooSummary

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md.j2"
CONFIG_DESCRIPTIONS = {
    "metadata": "factors and metrics of every model at every epoch; no weights (default)",
    "weights": "the metadata plus `weights`, the flattened float32 state_dict",
    "final": "the `weights` config at each model's last epoch only",
}
TRANSFORMERS_DIR = "transformers"  # of a zoo of transformers models: <model_id>/ for from_pretrained


def _size_category(rows: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return name
    return "1M<n<10M"


def content_digest(files: list[Path]) -> str:
    """sha256 over a config's Parquet shards."""
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.name.encode())
        with open(f, "rb") as data:  # in pieces: a shard is up to 500 MB
            digest.update(hashlib.file_digest(data, "sha256").digest())
    return digest.hexdigest()[:16]


def _transformers_checkpoints(spec: ZooSpec, folder: Path) -> dict | None:
    """What the card's transformers section needs, when the hub folder has those checkpoints: the
    class their config names, a model the plain class opens as an example, and whether any has
    an MLP head (which only modelzoos' subclass opens)."""
    if not folder.is_dir():
        return None
    models = [m for m in spec.models() if (folder / m.model_id).is_dir()]  # a build may leave models out
    example = next((m for m in models if m.factors.head != "mlp"), models[0]).model_id
    config = json.loads((folder / example / "config.json").read_text())
    return {"class": config["architectures"][0], "example": example, "mlp": any(m.factors.head == "mlp" for m in models)}


def _split_dict(config: HubConfig) -> datasets.SplitDict:
    out = datasets.SplitDict()
    for name, files in config.splits.items():
        out.add(datasets.SplitInfo(name=name, num_bytes=files.num_bytes, num_examples=files.num_examples))
    return out


def render_card(
    spec: ZooSpec,
    layouts: dict[str, Layout],
    summary: ZooSummary,
    hub_dir: Path,
    configs: list[HubConfig],
    plots: Sequence[Plot] = (),
    skipped: dict[str, list[str]] | None = None,
    repo_id: str | None = None,
) -> DatasetCard:
    """`layouts` by name, as `builder.rows.named_layouts` gives them ({"layout": ...} for one);
    `configs` as `hub.write_tables` wrote them (the default first); `plots` as `write_plots` drew
    them into `hub_dir`; `skipped`: model_id -> its problems, for models of the spec that the build
    left out (the card says the tables do not hold them); `repo_id`: the Hub id its examples load
    (default modelzoos/<name>)."""
    splits = sorted(summary.models_per_split, key=["train", "validation", "test"].index)
    infos = DatasetInfosDict()
    yaml_configs = []
    for config in configs:
        # `datasets` caches a local folder under its name ("hub") and a hash of its card's configs,
        # not of its files: without the content digest in the config, loading a second zoo's hub
        # folder returns the first one's cached tables.
        yaml_configs.append({
            "config_name": config.name,
            "description": f"{config.description} (content sha256 {content_digest([f for s in config.splits.values() for f in s.files])})",
            "data_files": config.data_files(),
            **({"default": True} if config.name == "metadata" else {}),
        })
        infos[config.name] = datasets.DatasetInfo(
            config_name=config.name,
            features=config.features,
            splits=_split_dict(config),
            download_size=sum(f.download_size for f in config.splits.values()),
            dataset_size=sum(f.num_bytes for f in config.splits.values()),
        )
    card_data = DatasetCardData(
        license=spec.license,
        pretty_name=spec.pretty_name,
        tags=["model-zoo", "weight-space-learning", "safetensors", spec.architecture.name],
        size_categories=_size_category(summary.rows),
        source_datasets=None if spec.image_data.source.startswith("embedded:") else [spec.image_data.source],
        configs=yaml_configs,
    )
    infos.to_dataset_card_data(card_data)
    factors, models = [], spec.models()
    for f in dataclasses.fields(Factors):  # the values the trained models have, not the whole grid
        values = list(dict.fromkeys(getattr(m.factors, f.name) for m in models))
        shown = ", ".join(map(str, values)) if len(values) <= 12 else f"{len(values)} values, {values[0]} .. {values[-1]}"
        factors.append({"name": f.name, "values": shown.replace("None", "(not used)")})
    layer_tables = {name: [dataclasses.asdict(e) for e in layout.entries] for name, layout in layouts.items()}
    stages = [
        {"name": st.name, "parents": st.parents, "parent_epoch": st.parent_epoch, "spec": spec.stage_spec(st.name),
         "models": summary.stages.get(st.name, {}).get("models", 0)}  # as built: a build may leave models out
        for st in spec.stages
    ]
    soups = json.loads((hub_dir / "soups.json").read_text()) if (hub_dir / "soups.json").is_file() else None
    checkpoints = _transformers_checkpoints(spec, hub_dir / TRANSFORMERS_DIR)
    # a stage's `test_acc` is k-NN accuracy where it trained contrastively; the single stage of an
    # unstaged zoo is named "train" in the tables
    knn_stages = [st.name for st in spec.stages if spec.stage_spec(st.name).training.loss == "info_nce"]
    if not spec.stages and spec.training.loss == "info_nce":
        knn_stages = ["train"]
    # one line per problem in a Markdown list item
    skipped = {m: [" ".join(p.split()) for p in skipped[m]] for m in sorted(skipped or {})}
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        spec=spec,
        summary=summary,
        splits=splits,
        configs=configs,
        factors=factors,
        layer_tables=layer_tables,
        layouts=layouts,
        stages=stages,
        soups=soups,
        checkpoints=checkpoints,
        packed=(hub_dir / PACKED_DIR).is_dir(),
        knn_stages=knn_stages,
        plots=plots,
        skipped=skipped,
        repo_id=repo_id or f"modelzoos/{spec.name}",
    )
