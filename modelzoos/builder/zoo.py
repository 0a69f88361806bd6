"""A `datasets` builder over a raw zoo directory: one row per model and epoch.

    builder = ModelZoo(config_name="weights", data_dir="path/to/zoo")
    builder.download_and_prepare()
    ds = builder.as_dataset()

Configs: `metadata` (factors and metrics, no weights) and `weights` (adds the flat float32 vector
described by layout.json). Splits are by model, from the model_id (see `splits.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets.builder import Key

from ..zoo_dir import ZooDir
from .rows import check_complete, features, model_table, zoo_layout
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
        return datasets.DatasetInfo(
            description=spec.description,
            features=features(zoo_layout(spec), self.config.weights),
            license=spec.license,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        zoo = ZooDir(self.config.data_dir)
        spec = zoo.load_spec()
        check_complete(zoo, spec)
        by_split: dict[str, list[str]] = {name: [] for name in SPLITS}
        for entry in spec.models():
            by_split[split_of(entry.model_id)].append(entry.model_id)
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"model_ids": ids})
            for name, ids in by_split.items()
            if ids  # a tiny zoo may leave a split empty
        ]

    def _generate_tables(self, model_ids: list[str]):
        zoo = ZooDir(self.config.data_dir)
        layout = zoo_layout(zoo.load_spec())
        for i, model_id in enumerate(model_ids):
            yield Key(i, 0), model_table(zoo, model_id, self.info.features, layout)
