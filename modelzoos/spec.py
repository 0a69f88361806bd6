"""Zoo specs: YAML files loaded into typed, validated dataclasses, and the grid expanded into models.

A spec is data: which image data, which architecture, which training protocol, and the grid of
generating factors. `load_spec` accepts a registered zoo name (a file in `modelzoos/zoos/`) or a
path to a user's own YAML file. Validation errors name the file and the key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelzoosError

ZOOS_DIR = Path(__file__).parent / "zoos"

PUBLICATIONS = ("model-zoos", "vit-zoo")  # the sources whose zoos are regenerated (hub_cards cites them)
ACTIVATIONS = ("tanh", "relu", "leakyrelu", "sigmoid", "silu", "gelu")
# "default": the architecture's own init (e.g. a transformers ViT's truncated normal), seeded
INITS = ("xavier_uniform", "xavier_normal", "uniform", "normal", "kaiming_normal", "kaiming_uniform", "default")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
# the hub folder's configs of every zoo; a staged zoo adds one per stage, named as the stage
RESERVED_CONFIG_NAMES = ("metadata", "weights", "final", "default")


class SpecError(ModelzoosError):
    """A spec that cannot be loaded: the message names the file and the key."""


@dataclass(frozen=True)
class Validation:
    """Validation images: `size` images carved from the source train split with `seed` (the same
    ones in every run), or the source's own validation split named by `split`."""

    size: int = 0
    seed: int = 42
    split: str | None = None


@dataclass(frozen=True)
class ImageData:
    """Where the images come from and how they become tensors.

    Preprocessing runs in a fixed order on tensors: grayscale, resize (shorter edge), center crop,
    normalize. `source` is a Hub dataset id, a local path `datasets.load_dataset` can open, or
    `embedded:digits` for the data shipped in the package.
    """

    source: str
    channels: int
    image_size: int
    num_classes: int
    config: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    train_split: str = "train"
    test_split: str = "test"
    validation: Validation = field(default_factory=Validation)
    grayscale: bool = False
    resize: int | None = None
    center_crop: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    attribution: str | None = None  # who made the images and under which license, for the card
    # keep only images of these source labels, relabelled 0..len-1 in this order (num_classes = len)
    classes: list[int] | None = None


@dataclass(frozen=True)
class Architecture:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Augmentation:
    """Train-time augmentation of each image, drawn per model from its seed, done on the device.

    As torchvision's RandomCrop(size, padding=crop_padding), RandomHorizontalFlip() and
    RandomRotation(rotation) on the un-normalized image: padding and the corners a rotation
    uncovers are black.
    """

    # RandomResizedCrop(image_size, scale=(0.08, 1), ratio=(3/4, 4/3)) first, bilinear (as SimCLR's
    # views, `training/contrastive.py`), on the preprocessed image
    resized_crop: bool = False
    crop_padding: int = 0
    hflip: bool = False
    rotation: float = 0.0  # degrees: an angle uniform in [-rotation, rotation]
    # probability of erasing one rectangle of an image to 0 after normalization (the mean colour),
    # as torchvision's RandomErasing(p) after Normalize
    erasing: float = 0.0
    # mixing an image batch with itself reversed, the targets mixed alike (timm's Mixup, batch mode):
    # Beta(mixup, mixup) weights for mixup, Beta(cutmix, cutmix) box areas for CutMix; with both,
    # each step picks one of the two with probability 0.5
    mixup: float = 0.0
    cutmix: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.resized_crop or self.crop_padding or self.hflip or self.rotation or self.erasing)


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    # "cross_entropy" on the labels, or "info_nce": SimCLR's contrastive loss on two augmented views
    # of each image (labels unused; see training/contrastive.py), with the model's head as the
    # projection head of `projection_dim` outputs
    loss: str = "cross_entropy"
    temperature: float = 0.07  # info_nce only
    projection_dim: int = 128  # info_nce only
    # "bfloat16": every forward pass (training and evaluation) under torch.autocast with that
    # dtype; weights, gradients and optimizer states stay float32. Unset: float32 throughout.
    autocast: str | None = None
    # "onecycle": torch's OneCycleLR with its defaults, max_lr = the model's lr, stepped per batch
    scheduler: str | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)
    label_smoothing: float = 0.0  # as F.cross_entropy's, on the training loss only


@dataclass(frozen=True)
class Factors:
    """The generating factors of one model. Every field is a column of the published dataset."""

    seed: int
    init: str = "kaiming_uniform"
    activation: str = "relu"
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float | None = None  # sgd and rmsprop only; unset: 0.9 for sgd (as in the zoos), 0 for rmsprop
    nesterov: bool | None = None  # sgd only; unset: false
    head: str | None = None  # the classifier head a fine-tune puts on its backbone: linear or mlp

    def resolved(self) -> Factors:
        """Settings an optimizer does not use become None, unset ones get their defaults, so
        every column of a row says what was actually used."""
        if self.optimizer == "sgd":
            momentum = 0.9 if self.momentum is None else self.momentum
            return dataclasses.replace(self, momentum=momentum, nesterov=bool(self.nesterov))
        if self.optimizer == "rmsprop":
            return dataclasses.replace(self, momentum=self.momentum or 0.0, nesterov=None)
        return dataclasses.replace(self, momentum=None, nesterov=None)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo: its position in the grid, its stable id, its factors, and for a
    staged zoo its stage and the model (and epoch) it starts from."""

    index: int
    model_id: str
    factors: Factors
    stage: str = "train"
    parent_id: str | None = None
    parent_epoch: int | None = None


@dataclass(frozen=True)
class Stage:
    """One stage of a staged zoo (e.g. pre-train, then fine-tune). `image_data` and `training`
    override the zoo's keys for this stage; `grid` is the stage's own. A stage with a `parent`
    trains one model per parent model and grid point, starting from the parent's `parent_epoch`
    (its last when unset) with a new head."""

    name: str
    grid: dict[str, Any]
    image_data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # one earlier stage, or several (e.g. supervised and contrastive backbones fine-tuned alike)
    parent: str | list[str] | None = None
    parent_epoch: int | None = None

    @property
    def parents(self) -> list[str]:
        return [self.parent] if isinstance(self.parent, str) else list(self.parent or [])


@dataclass(frozen=True)
class RandomSeeds:
    """`count` seeds per configuration, drawn from the configuration's factors and `base`."""

    count: int
    base: int = 0

    def seeds(self, configuration: dict[str, Any]) -> list[int]:
        canonical = json.dumps(configuration, sort_keys=True)
        digests = (hashlib.sha256(f"{self.base}/{i}/{canonical}".encode()).digest() for i in range(self.count))
        return [int.from_bytes(d[:4], "big") % (2**31 - 1) + 1 for d in digests]


@dataclass(frozen=True)
class ZooSpec:
    name: str
    pretty_name: str
    description: str
    image_data: ImageData
    architecture: Architecture
    training: Training
    grid: dict[str, list[Any]]
    license: str = "cc-by-4.0"
    # the publication whose zoo this regenerates, as in hub_cards' citations ("model-zoos", "vit-zoo")
    publication: str | None = None
    max_models: int | None = None
    notes: list[str] = field(default_factory=list)
    # set by `grid: {seed: {random: N, base: B}}`: N seeds per configuration instead of a seed axis
    random_seeds: RandomSeeds | None = None
    # a staged zoo: stages train in order, each from its own grid (the zoo's `grid` is then empty)
    stages: list[Stage] = field(default_factory=list)

    def stage_spec(self, name: str) -> ZooSpec:
        """The single-stage zoo of one stage: the zoo's settings with the stage's over them."""
        return self._stage_specs[name]

    @functools.cached_property
    def _stage_specs(self) -> dict[str, ZooSpec]:
        """Each stage as a single-stage ZooSpec, built (and validated) once per spec: callers ask
        per model. (Not a field: equality, `asdict` and `replace` ignore it.)"""
        out = {}
        base = self.to_dict()
        for stage in self.stages:
            data = {k: v for k, v in base.items() if k not in ("stages", "random_seeds", "grid")}
            data["image_data"] = {**base["image_data"], **stage.image_data}
            data["training"] = {**base["training"], **stage.training}
            data["grid"] = stage.grid
            out[stage.name] = spec_from_dict(data, where=f"{self.name}: stages '{stage.name}'")
        return out

    def models(self) -> list[ModelEntry]:
        """The ordered models: of the grid, or of every stage in order (then `max_models` caps
        each stage, and a stage with several parent stages per parent stage)."""
        if self.stages:
            return _staged_models(self)
        return self._grid_models()

    def _grid_models(self) -> list[ModelEntry]:
        """The ordered models of the grid (the first `max_models` of them if that is set)."""
        # Seeds vary fastest, so the models of one configuration are neighbours (and share a group).
        keys = [f.name for f in dataclasses.fields(Factors) if f.name in self.grid and f.name != "seed"]
        entries: list[ModelEntry] = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            configuration = dict(zip(keys, values))
            seeds = self.random_seeds.seeds(configuration) if self.random_seeds else self.grid["seed"]
            for seed in seeds:
                if self.max_models is not None and len(entries) >= self.max_models:
                    return entries
                factors = Factors(seed=seed, **configuration).resolved()
                entries.append(ModelEntry(len(entries), model_id_of(factors), factors))
        return entries

    def architecture_args(self, factors: Factors) -> dict[str, Any]:
        """Keyword arguments of `create_model(self.architecture.name, ...)` for one model."""
        contrastive = self.training.loss == "info_nce"  # the head is a projection head then
        return {
            "in_channels": self.image_data.channels,
            "num_classes": self.training.projection_dim if contrastive else self.image_data.num_classes,
            "activation": factors.activation,
            "dropout": factors.dropout,
            **({"head": factors.head} if factors.head else {}),
            **self.architecture.args,
        }

    @property
    def grid_size(self) -> int:
        if self.stages:
            return len(dataclasses.replace(self, max_models=None).models())
        n = self.random_seeds.count if self.random_seeds else 1
        for values in self.grid.values():
            n *= len(values)
        return n

    @property
    def varying_factors(self) -> list[str]:
        seeds = ["seed"] if self.random_seeds and self.random_seeds.count > 1 else []
        return seeds + [k for k, v in self.grid.items() if len(v) > 1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def smoke(self, images: int | None = None) -> ZooSpec:
        """The zoo at smoke scale: 2 models, 1 epoch, `images` synthetic images of the zoo's image
        shape and class count (and a quarter as many test images). Runs anywhere, offline.

        By default 256 images, 32 for networks of over a million parameters (ResNet-18) and 16
        over 20 million (ViT-S/16 at 224), which take seconds per step on a CPU. Forward passes
        run in float32 (no `training.autocast`).
        """
        if images is None:
            from .architectures import create_model  # the registry; nothing is trained here

            model = create_model(self.architecture.name, **self.architecture_args(self.models()[0].factors))
            params = sum(p.numel() for p in model.parameters())
            images = 256 if params <= 1_000_000 else 32 if params <= 20_000_000 else 16
        validation = self.image_data.validation
        size = images // 8 if validation.split else min(validation.size, images // 8)
        data = dataclasses.replace(
            self.image_data,
            source=f"synthetic:{images}",
            config=None,
            validation=dataclasses.replace(validation, size=size, split=None),
        )
        # stages keep their class choices, but read the synthetic images with the zoo's validation
        stages = [
            dataclasses.replace(
                st,
                image_data={k: v for k, v in st.image_data.items() if k not in ("source", "config", "validation")},
                training={k: v for k, v in st.training.items() if k != "autocast"},
            )
            for st in self.stages
        ]
        # float32: most CPUs emulate bfloat16 (ViT-S/16 smoke stages on a 2-core VM: 13x slower under autocast)
        training = dataclasses.replace(self.training, autocast=None)
        return dataclasses.replace(self, image_data=data, training=training, stages=stages).replace(max_models=2, epochs=1)

    def replace(self, *, max_models: int | None = None, epochs: int | None = None) -> ZooSpec:
        """A smaller version of this zoo: the first `max_models` models, `epochs` epochs."""
        spec = self
        if max_models is not None:
            if max_models < 1:
                raise SpecError(f"--max-models must be at least 1, got {max_models}")
            spec = dataclasses.replace(spec, max_models=max_models)
        if epochs is not None:
            if epochs < 1:
                raise SpecError(f"--epochs must be at least 1, got {epochs}")
            spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, epochs=epochs))
            spec = dataclasses.replace(spec, stages=[
                dataclasses.replace(
                    st,
                    training={**st.training, "epochs": epochs},
                    parent_epoch=None if st.parent_epoch is None else min(st.parent_epoch, epochs),
                )
                for st in spec.stages
            ])
        return spec


def _staged_models(spec: ZooSpec) -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    by_stage: dict[str, list[ModelEntry]] = {}
    for stage in spec.stages:
        grid = dataclasses.replace(spec.stage_spec(stage.name), max_models=None)._grid_models()
        mine: list[ModelEntry] = []
        # `max_models` caps the models from each parent stage, so a shrunk zoo still fine-tunes
        # every kind of backbone (e.g. supervised and contrastive)
        for name in stage.parents or [None]:
            parents: list[ModelEntry | None] = by_stage[name] if name else [None]
            epoch = None
            if name:
                epoch = spec.stage_spec(name).training.epochs if stage.parent_epoch is None else stage.parent_epoch
            pairs = [(parent, e) for parent in parents for e in grid][: spec.max_models]
            for parent, e in pairs:
                lineage = {"stage": stage.name, "parent_id": parent.model_id if parent else None, "parent_epoch": epoch}
                mine.append(ModelEntry(len(entries) + len(mine), model_id_of(e.factors, lineage), e.factors, **lineage))
        by_stage[stage.name] = mine
        entries += mine
    return entries


def model_id_of(factors: Factors, lineage: dict[str, Any] | None = None) -> str:
    """A stable id from the factors alone: it does not change when the grid grows or is reordered.

    Unset (None) factors are left out, so a factor added later with a None default keeps every id.
    """
    values = {k: v for k, v in {**dataclasses.asdict(factors), **(lineage or {})}.items() if v is not None}
    canonical = json.dumps(values, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def registered_zoos() -> list[str]:
    return sorted(p.stem for p in ZOOS_DIR.glob("*.yaml"))


def load_spec(name_or_path: str | Path) -> ZooSpec:
    """Load a registered zoo by name, or a spec from a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        if path.suffix in (".yaml", ".yml"):
            raise SpecError(f"{path}: spec file not found")
        path = ZOOS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpecError(
                f"unknown zoo '{name_or_path}'. Registered zoos: {', '.join(registered_zoos())}. "
                "Run `modelzoos list`, or pass a path to your own .yaml spec."
            )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return spec_from_dict(data, where=str(path))


def spec_from_dict(data: Any, where: str = "<spec>") -> ZooSpec:
    data = dict(_expect_mapping(data, where, ""))
    grid = dict(_expect_mapping(data.pop("grid", {} if data.get("stages") else None), where, "grid"))
    seed = grid.get("seed")
    if isinstance(seed, dict) and "random" in seed:
        if set(seed) - {"random", "base"}:
            raise SpecError(f"{where}: 'grid.seed' as random seeds takes the keys 'random' (seeds per configuration) and 'base'")
        data["random_seeds"] = {"count": seed["random"], **({"base": seed["base"]} if "base" in seed else {})}
        del grid["seed"]
    spec = _build(ZooSpec, {**data, "grid": {}}, where, "")
    if spec.random_seeds is not None and spec.random_seeds.count < 1:
        raise SpecError(f"{where}: 'grid.seed.random' must be at least 1")
    if spec.stages and grid:
        raise SpecError(f"{where}: a staged zoo has no top-level 'grid'; give each stage its own 'grid'")
    spec = dataclasses.replace(spec, grid=_build_grid(grid, where, need_seed=spec.random_seeds is None and not spec.stages))
    _check(spec, where)
    return spec


# --- validation -------------------------------------------------------------------------------


def _expect_mapping(data: Any, where: str, key: str) -> dict:
    if not isinstance(data, dict):
        what = f"'{key}'" if key else "the spec"
        raise SpecError(f"{where}: {what} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    data = _expect_mapping(data, where, prefix.rstrip("."))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise SpecError(
                f"{where}: unknown key '{prefix}{key}'. Allowed here: {', '.join(fields)}"
            )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"{where}: missing required key '{prefix}{name}'")
            continue
        kwargs[name] = _coerce(data[name], hints[name], where, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    """Check `value` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for arg in args[:-1]:  # e.g. `str | list[str]`: the first type the value is
            try:
                return _coerce(value, arg, where, key)
            except SpecError:
                pass
        return _coerce(value, args[-1], where, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"{where}: '{key}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        return dict(_expect_mapping(value, where, key))
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"no coercion for {hint}")  # a bug in this module, not in the spec


def _build_grid(grid: Any, where: str, need_seed: bool = True) -> dict[str, list[Any]]:
    """Each factor is one value or a list of values; `seed` may also be {from: A, to: B}."""
    grid = _expect_mapping(grid, where, "grid")
    hints = typing.get_type_hints(Factors)
    names = [f.name for f in dataclasses.fields(Factors)]
    out: dict[str, list[Any]] = {}
    for key, value in grid.items():
        if key not in hints:
            raise SpecError(f"{where}: unknown key 'grid.{key}'. Generating factors: {', '.join(names)}")
        if key == "seed" and isinstance(value, dict):
            if set(value) != {"from", "to"}:
                raise SpecError(f"{where}: 'grid.seed' as a range needs exactly the keys 'from' and 'to'")
            lo, hi = (_coerce(value[k], int, where, f"grid.seed.{k}") for k in ("from", "to"))
            if hi < lo:
                raise SpecError(f"{where}: 'grid.seed': 'to' ({hi}) is smaller than 'from' ({lo})")
            value = list(range(lo, hi + 1))
        values = value if isinstance(value, list) else [value]
        if not values:
            raise SpecError(f"{where}: 'grid.{key}' is an empty list; give at least one value")
        values = [_coerce(v, hints[key], where, f"grid.{key}") for v in values]
        if len(set(values)) != len(values):
            raise SpecError(f"{where}: 'grid.{key}' lists a value twice: {values}")
        out[key] = values
    if need_seed and "seed" not in out:
        raise SpecError(
            f"{where}: missing required key 'grid.seed' (a list, {{from: 1, to: N}} or {{random: N, base: 0}})"
        )
    # Canonical order, so the YAML's key order does not change the model order.
    return {n: out[n] for n in names if n in out}


def _check_stages(spec: ZooSpec, where: str) -> None:
    names = [st.name for st in spec.stages]
    for i, stage in enumerate(spec.stages):
        if stage.name in names[:i]:
            raise SpecError(f"{where}: 'stages[{i}].name': stage '{stage.name}' is declared twice")
        # a stage's name is also the name of its config on the Hub, beside these
        if stage.name in RESERVED_CONFIG_NAMES or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", stage.name):
            raise SpecError(
                f"{where}: 'stages[{i}].name': '{stage.name}' cannot name a dataset config; use lowercase letters, "
                f"digits, '-' and '_', and none of {', '.join(RESERVED_CONFIG_NAMES)}"
            )
        for parent in stage.parents:
            if parent not in names[:i]:
                raise SpecError(
                    f"{where}: 'stages[{i}].parent': '{parent}' is no earlier stage (earlier: {', '.join(names[:i]) or 'none'})"
                )
        if isinstance(stage.parent, list) and not stage.parent:
            raise SpecError(f"{where}: 'stages[{i}].parent' is an empty list; name a stage, or leave it out")
        if len(set(stage.parents)) != len(stage.parents):
            raise SpecError(f"{where}: 'stages[{i}].parent' names a stage twice")
        if not stage.parents and stage.parent_epoch is not None:
            raise SpecError(f"{where}: 'stages[{i}].parent_epoch' needs a 'parent'")
    stages = {st.name: spec.stage_spec(st.name) for st in spec.stages}  # each validated as a zoo of its own
    for i, stage in enumerate(spec.stages):
        for parent in stage.parents:
            last = stages[parent].training.epochs
            if stage.parent_epoch is not None and not 0 <= stage.parent_epoch <= last:
                raise SpecError(f"{where}: 'stages[{i}].parent_epoch' {stage.parent_epoch} is not an epoch of '{parent}' (0..{last})")
        contrastive = stages[stage.name].training.loss == "info_nce"
        if not stage.parents and not contrastive and any(f.head for f in (e.factors for e in stages[stage.name].models())):
            raise SpecError(
                f"{where}: 'stages[{i}].grid.head': only a stage with a parent puts a new head on it "
                "(or a contrastive stage, whose head is its projection head)"
            )


def _check(spec: ZooSpec, where: str) -> None:
    if spec.stages:
        _check_stages(spec, where)
    choices = {"activation": ACTIVATIONS, "init": INITS, "optimizer": OPTIMIZERS, "head": ("linear", "mlp")}
    for key, allowed in choices.items():
        for v in spec.grid.get(key, []):
            if v not in allowed:
                raise SpecError(f"{where}: 'grid.{key}': unknown value '{v}'. Choose from: {', '.join(allowed)}")
    for key in ("lr", "weight_decay", "dropout", "momentum"):
        for v in spec.grid.get(key, []):
            if v is not None and (v < 0 or (key == "dropout" and v >= 1)):
                raise SpecError(f"{where}: 'grid.{key}': {v} is out of range")
    for entry in spec.models():
        f = entry.factors
        if f.nesterov and not f.momentum:
            raise SpecError(f"{where}: 'grid.nesterov': nesterov needs a momentum above 0 (seed {f.seed})")
    from .architectures import list_models  # the registry of names; no model is built here

    if spec.architecture.name not in list_models():
        raise SpecError(
            f"{where}: 'architecture.name': unknown architecture '{spec.architecture.name}'. "
            f"Known: {', '.join(list_models())}"
        )
    if spec.publication is not None and spec.publication not in PUBLICATIONS:
        raise SpecError(f"{where}: 'publication': unknown '{spec.publication}'. Choose from: {', '.join(PUBLICATIONS)}, or leave it out")
    positive = {
        "image_data.channels": spec.image_data.channels,
        "image_data.image_size": spec.image_data.image_size,
        "image_data.num_classes": spec.image_data.num_classes,
        "image_data.resize": spec.image_data.resize,
        "image_data.center_crop": spec.image_data.center_crop,
    }
    for key, v in positive.items():
        if v is not None and v < 1:
            raise SpecError(f"{where}: '{key}' must be at least 1, got {v}")
    if spec.max_models is not None and spec.max_models < 1:
        raise SpecError(f"{where}: 'max_models' must be at least 1, got {spec.max_models}")
    for key in ("epochs", "batch_size"):
        if getattr(spec.training, key) < 1:
            raise SpecError(f"{where}: 'training.{key}' must be at least 1")
    if spec.training.scheduler not in (None, "onecycle"):
        raise SpecError(f"{where}: 'training.scheduler': unknown '{spec.training.scheduler}'; use onecycle or leave it out")
    aug = spec.training.augmentation
    if aug.crop_padding < 0 or not 0 <= aug.rotation <= 180 or not 0 <= aug.erasing <= 1 or min(aug.mixup, aug.cutmix) < 0:
        raise SpecError(
            f"{where}: 'training.augmentation': crop_padding and mixup/cutmix (Beta parameters) must be >= 0, "
            "rotation in 0..180 degrees, erasing a probability"
        )
    if spec.training.autocast not in (None, "bfloat16"):
        raise SpecError(
            f"{where}: 'training.autocast': unknown '{spec.training.autocast}'; use bfloat16 or leave it out "
            "(float16 would need loss scaling)"
        )
    if not 0 <= spec.training.label_smoothing < 1:
        raise SpecError(f"{where}: 'training.label_smoothing' must be in [0, 1)")
    if spec.training.loss not in ("cross_entropy", "info_nce"):
        raise SpecError(f"{where}: 'training.loss': unknown '{spec.training.loss}'; use cross_entropy or info_nce")
    if spec.training.loss == "info_nce":
        if aug or aug.mixup or aug.cutmix or spec.training.label_smoothing:
            raise SpecError(
                f"{where}: 'training': a contrastive (info_nce) zoo draws SimCLR's views itself; "
                "leave out 'augmentation' and 'label_smoothing'"
            )
        if spec.training.temperature <= 0 or spec.training.projection_dim < 1:
            raise SpecError(f"{where}: 'training': info_nce needs a temperature above 0 and a projection_dim of at least 1")
        if spec.image_data.channels not in (1, 3):
            raise SpecError(f"{where}: 'image_data.channels': SimCLR's views are defined for 1 or 3 channels")
    data = spec.image_data
    if data.validation.size < 0:
        raise SpecError(f"{where}: 'image_data.validation.size' must not be negative")
    if data.validation.split is not None and data.validation.size:
        raise SpecError(
            f"{where}: 'image_data.validation' gives both a split ('{data.validation.split}') and a size to "
            "carve from train; give one of them"
        )
    for key in ("mean", "std"):
        stats = getattr(data, key)
        if stats is not None and len(stats) != data.channels:
            raise SpecError(
                f"{where}: 'image_data.{key}' has {len(stats)} values for {data.channels} channel(s)"
            )
    if data.classes is not None and (len(data.classes) != data.num_classes or len(set(data.classes)) != len(data.classes)):
        raise SpecError(f"{where}: 'image_data.classes' must list {data.num_classes} different labels (image_data.num_classes)")
    if (data.mean is None) != (data.std is None):
        raise SpecError(f"{where}: 'image_data.mean' and 'image_data.std' go together; give both or neither")
