"""A `datasets` builder over a raw zoo directory: one row per model and epoch.

    builder = ModelZoo(config_name="weights", data_dir="path/to/zoo")
    builder.download_and_prepare()
    ds = builder.as_dataset()

Configs: `metadata` (factors and metrics, no weights) and `weights` (adds the flat float32 vector
described by layout.json). Splits are by model, from the model_id (see `splits.py`); in a staged
zoo by lineage: a fine-tune is in its backbone's split.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets.builder import Key

from ..zoo_dir import ZooDir
from .rows import check_complete, distinct_layouts, features, model_layouts, model_table
from .splits import SPLITS, split_of


@dataclass
class ModelZooConfig(datasets.BuilderConfig):
    """`data_dir` is the raw zoo directory; `weights` adds the flattened weights column."""

    weights: bool = False


class ModelZoo(datasets.ArrowBasedBuilder):
    BUILDER_CONFIG_CLASS = ModelZooConfig
    BUILDER_CONFIGS = [
        ModelZooConfig(name="metadata", description="Factors and metrics of every model at every epoch."),
        ModelZooConfig(name="weights", weights=True, description="The metadata plus the flattened weights."),
    ]
    DEFAULT_CONFIG_NAME = "metadata"

    def _info(self) -> datasets.DatasetInfo:
        spec = ZooDir(self.config.data_dir).load_spec()
        layouts = distinct_layouts(spec)
        return datasets.DatasetInfo(
            description=spec.description,
            features=features(layouts[0] if len(layouts) == 1 else None, self.config.weights),
            license=spec.license,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        zoo = ZooDir(self.config.data_dir)
        spec = zoo.load_spec()
        check_complete(zoo, spec)
        by_split: dict[str, list[str]] = {name: [] for name in SPLITS}
        # A fine-tune goes where its backbone goes: siblings share most of their weights, and a
        # test split holding relatives of training models would leak.
        root: dict[str, str] = {}
        for entry in spec.models():
            root[entry.model_id] = root[entry.parent_id] if entry.parent_id else entry.model_id
            by_split[split_of(root[entry.model_id])].append(entry.model_id)
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"model_ids": ids})
            for name, ids in by_split.items()
            if ids  # a tiny zoo may leave a split empty
        ]

    def _generate_tables(self, model_ids: list[str]):
        zoo = ZooDir(self.config.data_dir)
        layouts = model_layouts(zoo.load_spec())
        for i, model_id in enumerate(model_ids):
            yield Key(i, 0), model_table(zoo, model_id, self.info.features, layouts[model_id])
