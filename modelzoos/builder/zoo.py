"""A `datasets` builder over a raw zoo directory: one row per model and epoch.

    builder = ModelZoo(config_name="weights", data_dir="path/to/zoo")
    builder.download_and_prepare()
    ds = builder.as_dataset()

Configs: `metadata` (factors and metrics, no weights), `weights` (adds the flat float32 vector
described by layout.json) and `final` (the weights of each model's last epoch only); `stage` keeps
one stage of a staged zoo, `skip` leaves models out. Splits are by model, from the model_id (see
`splits.py`); in a staged zoo by lineage: a fine-tune is in its backbone's split.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets.builder import Key

from ..zoo_dir import ZooDir
from .rows import check_complete, distinct_layouts, features, model_layouts, model_table, stage_of
from .splits import SPLITS, split_of

# Tables of about this size: one model's epochs of a ResNet-18 (61 x 45 MB) would not fit in memory
# at once, and `build` must not grow with the model.
TABLE_BYTES = 64 * 2**20


@dataclass
class ModelZooConfig(datasets.BuilderConfig):
    """`data_dir` is the raw zoo directory; `weights` adds the flattened weights column, `final`
    keeps each model's last epoch, `stage` one stage's models, `skip` leaves these model_ids out."""

    weights: bool = False
    final: bool = False
    stage: str | None = None
    skip: tuple[str, ...] = ()


class ModelZoo(datasets.ArrowBasedBuilder):
    BUILDER_CONFIG_CLASS = ModelZooConfig
    BUILDER_CONFIGS = [
        ModelZooConfig(name="metadata", description="Factors and metrics of every model at every epoch."),
        ModelZooConfig(name="weights", weights=True, description="The metadata plus the flattened weights."),
        ModelZooConfig(name="final", weights=True, final=True, description="The weights config at each model's last epoch."),
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
        check_complete(zoo, spec, skip=self.config.skip)
        by_split: dict[str, list[str]] = {name: [] for name in SPLITS}
        # A fine-tune goes where its backbone goes: siblings share most of their weights, and a
        # test split holding relatives of training models would leak.
        root: dict[str, str] = {}
        for entry in spec.models():
            root[entry.model_id] = root[entry.parent_id] if entry.parent_id else entry.model_id
            if entry.model_id not in self.config.skip and self.config.stage in (None, entry.stage):
                by_split[split_of(root[entry.model_id])].append(entry.model_id)
        # `datasets` may call _generate_tables once per model (it shards list arguments): the
        # layouts and epoch counts go along, computed once, not re-derived from the spec per model.
        layouts = model_layouts(spec)
        last = {e.model_id: stage_of(spec, e).training.epochs for e in spec.models()}
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"model_ids": ids, "layouts": layouts, "last": last})
            for name, ids in by_split.items()
            if ids  # a tiny zoo may leave a split empty
        ]

    def _generate_tables(self, model_ids: list[str], layouts: dict, last: dict[str, int]):
        zoo = ZooDir(self.config.data_dir)
        for i, model_id in enumerate(model_ids):
            epochs = [last[model_id]] if self.config.final else list(range(last[model_id] + 1))
            per_table = max(1, TABLE_BYTES // (4 * layouts[model_id].numel)) if self.config.weights else len(epochs)
            for j in range(0, len(epochs), per_table):
                yield Key(i, j), model_table(zoo, model_id, self.info.features, layouts[model_id], epochs[j : j + per_table])
