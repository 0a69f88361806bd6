"""`modelzoos train`: the population of a spec, shared out over the processes accelerate launched.

Plain PyTorch under `accelerate.PartialState`: the launcher decides the processes, each process
takes every N-th model of the grid, and models are never DDP-wrapped (they are independent).
Re-running the same command resumes: finished models are skipped, the others continue from their
last saved epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import safetensors.torch
import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from tqdm.auto import tqdm

from ..architectures import logits_of
from ..data import ImageTensors, load_image_tensors
from ..errors import ModelzoosError
from ..spec import ModelEntry, ZooSpec
from ..zoo_dir import ZooDir, atomic_write, model_record
from .engine import GroupTrainer, initial_model, simclr_pair, structure_key, training_losses


def check_zoo_dir(zoo: ZooDir, spec: ZooSpec) -> None:
    """Refuse a directory that holds something else: nothing already there may be overwritten."""
    if zoo.root.exists() and not zoo.root.is_dir():
        raise ModelzoosError(f"--out {zoo.root} is a file; give a directory for the zoo")
    if zoo.is_hub_folder():
        raise ModelzoosError(
            f"--out {zoo.root} is a hub folder written by `modelzoos build`; train into the zoo "
            "directory (its parent) or a new one"
        )
    if zoo.spec_path.is_file():
        frozen = zoo.load_spec()
        old, new = _what_trains(frozen), _what_trains(spec)
        if old != new:
            diff = _first_difference(old, new)
            raise ModelzoosError(
                f"{zoo.root} holds a different zoo ('{frozen.name}'; {diff}). Use another --out, "
                "or run with the same spec and options to resume it."
            )
    elif zoo.root.is_dir() and any(zoo.root.iterdir()):
        raise ModelzoosError(
            f"{zoo.root} is not empty and holds no zoo.yaml; give an empty or new directory as --out"
        )


# What a zoo's card says about it, not how its models train: a re-run may change these (the
# frozen zoo.yaml then takes the new text); anything else must match the frozen spec to resume.
DESCRIPTIVE = ("name", "pretty_name", "description", "license", "publication", "notes")


def _what_trains(spec: ZooSpec) -> dict:
    return {k: v for k, v in spec.to_dict().items() if k not in DESCRIPTIVE}


def _first_difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} is {a!r} there, {b!r} now"
    return ""


def is_finished(zoo: ZooDir, entry: ModelEntry, epochs: int) -> bool:
    return len(zoo.read_metrics(entry.model_id)) == epochs + 1


def group_models(entries: list[ModelEntry], group_size: int) -> list[list[ModelEntry]]:
    """Models of the same structure, in grid order, at most `group_size` per group."""
    by_structure: dict[tuple, list[ModelEntry]] = {}
    for e in entries:
        by_structure.setdefault(structure_key(e.factors), []).append(e)
    return [same[i : i + group_size] for same in by_structure.values() for i in range(0, len(same), group_size)]


def default_group_size(device: torch.device, spec: ZooSpec, per_image: int) -> int:
    """As many models as fit a quarter of the device's memory; on a CPU at most ~1,000 images
    per stacked step (100 models at batch 10, 32 at batch 32: larger groups measured slower, as
    the working set leaves the cache), on a GPU at most 1,000 models.

    Total, not free, memory: the groups of a re-run must be the same for a resume to be exact.
    """
    if device.type == "cuda":
        total, cap = torch.cuda.get_device_properties(device).total_memory, 1000
    else:
        total, cap = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), max(1, 1024 // spec.training.batch_size)
    # Per model: the activations a step keeps for its backward pass (`per_image` floats an image),
    # and weights, gradients, optimizer state and the update's temporaries (~6 copies). Evaluation
    # chunks are bounded separately (engine.EVAL_ELEMENTS).
    params = zoo_params(spec)
    per_model = 4 * (per_image * spec.training.batch_size + 6 * params)
    return max(1, min(cap, int(total / 4 // per_model)))


def zoo_params(spec: ZooSpec) -> int:
    return sum(p.numel() for p in initial_model(spec, spec.models()[0].factors).parameters())


def process_state() -> PartialState:
    """accelerate's view of this process. On a machine without CUDA, or with ACCELERATE_USE_CPU
    set, processes join over gloo: a bare `PartialState()` would leave each process alone."""
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def train_zoo(spec: ZooSpec, out: str | Path, group_size: int | None = None, progress: bool = True) -> ZooDir:
    """Train (or resume) every model of `spec` into the raw zoo directory `out`; a staged zoo
    stage by stage, each starting once the stage it starts from is finished in every process."""
    if group_size is not None and group_size < 1:
        raise ModelzoosError(f"--group-size must be at least 1, got {group_size}")
    state = process_state()
    zoo = ZooDir(out)
    # Every process checks everything before anything is written, so a bad input fails every
    # process alike and leaves the directory as it was. (`datasets` locks its cache, so the
    # processes may load the image data at the same time.)
    check_zoo_dir(zoo, spec)
    stages = [(st.name, spec.stage_spec(st.name)) for st in spec.stages] or [("train", spec)]
    prepared = []
    for name, stage_spec in stages:
        cache = zoo.image_cache(_image_key(stage_spec))
        cached = cache.is_file()
        data = ImageTensors(**safetensors.torch.load_file(cache)) if cached else load_image_tensors(stage_spec.image_data)
        _check_one_step(stage_spec, data, state.device)
        prepared.append((name, stage_spec, data, None if cached else cache))
    if state.device.type == "cuda":  # the same bytes from the same command, on GPUs too
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    state.wait_for_everyone()  # every process has checked before process 0 writes anything
    if state.is_main_process and (not zoo.spec_path.is_file() or zoo.load_spec() != spec):
        atomic_write(zoo.spec_path, spec.to_yaml())  # new, or the same zoo with a new description
    for _, _, data, new_cache in prepared:
        if state.is_main_process and new_cache is not None:
            atomic_write(new_cache, safetensors.torch.save({k: v.contiguous() for k, v in vars(data).items()}))
    state.wait_for_everyone()

    entries = spec.models()
    for name, stage_spec, data, _ in prepared:
        mine = [e for e in entries if e.stage == name][state.process_index :: state.num_processes]
        _train_stage(stage_spec, zoo, mine, data.to(state.device), state, group_size, progress)
        state.wait_for_everyone()  # a later stage starts from this one's checkpoints
    return zoo


def _train_stage(
    spec: ZooSpec, zoo: ZooDir, mine: list[ModelEntry], data: ImageTensors, state: PartialState,
    group_size: int | None, progress: bool,
) -> None:
    """This process's models of one (single-stage) spec, in groups, resuming what was begun."""
    trainer = GroupTrainer(spec, zoo, data, state.device)
    epochs = spec.training.epochs
    # Groups come from the grid alone, so a re-run of the same command rebuilds the same groups.
    groups = group_models(mine, group_size or default_group_size(state.device, spec, trainer.per_image))
    todo = []
    for group in groups:
        for e in group:  # half-written files of a killed run
            for tmp in zoo.model_dir(e.model_id).glob(".*.tmp"):
                tmp.unlink()
        finished = [is_finished(zoo, e, epochs) for e in group]
        if all(finished):
            for e in group:  # left behind by a run killed while cleaning up
                zoo.state_path(e.model_id).unlink(missing_ok=True)
            continue
        # A finished model keeps its state.pt until its whole group has finished, so the same
        # command resumes the same group. A model without one is done for good (a run with
        # other groups finished it) and is not trained again.
        unfinished = [e for e, done in zip(group, finished) if not done or zoo.state_path(e.model_id).is_file()]
        todo.append(trainer.resume_group(unfinished))
    if state.num_processes > 1:
        print(
            f"process {state.process_index} of {state.num_processes}: {len(mine)} models, "
            f"{len(mine) - sum(map(len, todo))} already finished",
            file=sys.stderr,
        )
    stage = f" ({mine[0].stage})" if mine and mine[0].stage != "train" else ""
    bar = tqdm(
        total=sum((epochs + 1 - m.next_epoch) for members in todo for m in members),
        unit="model-epoch",
        desc=f"training {spec.name}{stage}",
        disable=not (progress and state.is_local_main_process),
    )
    with bar:
        for members in todo:
            for m in members:
                _write_config(zoo, spec, m.entry)
            trainer.run(members, on_epoch=lambda: bar.update(1))


def _image_key(spec: ZooSpec) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(spec.image_data), sort_keys=True).encode()).hexdigest()[:16]


def _check_one_step(spec: ZooSpec, data: ImageTensors, device: torch.device) -> None:
    """Build the first model and run it on two images: a spec whose architecture does not fit
    its image data fails here, with the spec named, instead of deep in training."""
    entry = spec.models()[0]
    try:
        model = initial_model(spec, entry.factors).to(device)
        x, y = data.train_x[:2].to(device), data.train_y[:2].to(device)  # two images, not the split
        if spec.training.loss == "info_nce":
            x = simclr_pair(x[None], [entry.factors.seed], 1, 0, spec)[0]
        training_losses(spec, logits_of(model, x)[None], y[None]).sum().backward()
    except Exception as e:  # noqa: BLE001 (any failure here is the spec's)
        raise ModelzoosError(
            f"zoo '{spec.name}': model {entry.model_id} ({spec.architecture.name}) cannot train on its "
            f"image data ({tuple(data.train_x.shape[1:])}): {type(e).__name__}: {e}. "
            "Check architecture.args and image_data (channels, image_size, num_classes)."
        ) from None
    if not hasattr(model, "population_forward"):
        raise ModelzoosError(
            f"zoo '{spec.name}': architecture '{spec.architecture.name}' has no population forward, so the "
            "engine cannot train it; give its class a `population_forward` (see modelzoos/architectures/cnn.py)"
        )


def _write_config(zoo: ZooDir, spec: ZooSpec, entry: ModelEntry) -> None:
    if zoo.config_path(entry.model_id).is_file():
        return
    config = {
        "model_id": entry.model_id,
        "index": entry.index,
        "zoo": spec.name,
        **model_record(spec, entry),  # model_id again: its place stays first
        "torch_version": torch.__version__,
        # CPU kernels reduce in an order that depends on the thread count: record it for regeneration.
        "torch_num_threads": torch.get_num_threads(),
    }
    atomic_write(zoo.config_path(entry.model_id), json.dumps(config, indent=1))
