"""Time per ViT-S/16 pre-training epoch, on synthetic ImageNet-shaped data.

The published ViT zoo's `supervised` stage as the spec gives it (ViT-S/16 at 224, batch 256,
AdamW, label smoothing, mixup/CutMix, random erasing, resized crop and flip, bfloat16 autocast on a
GPU), trained by the engine for a few steps on random 3x224x224 images: printed are images per
second per model, and the time one model's ImageNet-1k epoch (1,271,167 training images: the
train split less the 10,000 validation images) would take, with K models in one group on this
device. Evaluation is not timed.

    python benchmarks/vit_epoch.py --device cuda --models 1 --steps 20   # one process per GPU
    python benchmarks/vit_epoch.py --device cuda --models 2 --steps 20   # two models a group
    python benchmarks/vit_epoch.py --models 1 --batch 4 --steps 2 --autocast none   # CPU check
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from modelzoos.data import ImageTensors
from modelzoos.spec import load_spec
from modelzoos.training.engine import GroupTrainer, Member, Population
from modelzoos.zoo_dir import ZooDir

IMAGENET_TRAIN = 1_281_167 - 10_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", type=int, default=1, help="models in one group (one stacked step)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after one warm-up step)")
    ap.add_argument("--batch", type=int, default=256, help="images per step and model (the zoo's: 256)")
    ap.add_argument("--autocast", choices=["bfloat16", "none"], default="bfloat16")
    args = ap.parse_args()
    device = torch.device(args.device)

    zoo = load_spec("imagenet-cifar100-vit-s16")
    spec = zoo.stage_spec("supervised").replace(max_models=args.models)
    training = dataclasses.replace(
        spec.training, batch_size=args.batch, autocast=None if args.autocast == "none" else args.autocast
    )
    spec = dataclasses.replace(spec, training=training, image_data=dataclasses.replace(spec.image_data, source="synthetic"))
    g = torch.Generator().manual_seed(0)
    n = (args.steps + 1) * args.batch
    x = torch.randn(n, 3, 224, 224, generator=g).to(device)
    y = torch.randint(0, 1000, (n,), generator=g).to(device)
    empty, none = x[:0], y[:0]

    def train_images(lo: int, hi: int) -> ImageTensors:
        return ImageTensors(x[lo:hi], y[lo:hi], empty, none, empty, none)

    # one step to warm up (kernel selection, the allocator), then an engine epoch of `steps` batches
    trainer = GroupTrainer(spec, ZooDir("/nonexistent"), train_images(0, args.batch), device)
    pop = Population(spec, [Member(e) for e in spec.models()], device)
    trainer.train_epoch(pop, 1)
    trainer.data = train_images(args.batch, n)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    trainer.train_epoch(pop, 2)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t
    rate = args.steps * args.batch / seconds  # images per second and model
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}, ViT-S/16 at 224, batch {args.batch}, {args.models} model(s) a group, autocast {args.autocast}")
    print(f"{args.steps} steps in {seconds:.2f} s: {rate:.1f} images/s per model, {rate * args.models:.1f} images/s in all")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    epoch = IMAGENET_TRAIN / rate
    print(f"one ImageNet-1k epoch ({IMAGENET_TRAIN:,} images) per model: {epoch / 3600:.2f} h "
          f"({args.models} model(s) in parallel)")


if __name__ == "__main__":
    main()
