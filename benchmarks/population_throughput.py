"""Model-steps per second: the plain one-model-at-a-time loop against the population engine.

The workload is the original zoos' CNN-s protocol: 28x28 single-channel inputs, batch size 10,
Adam. (a) is the plain PyTorch loop (`training.reference.train_alone`: torch.optim, one model
after the other, as the original zoos trained); (b) is the engine's training step
(`GroupTrainer.train_epoch` on one stacked population). Both run here, in one process, on the same
synthetic data, and (b)'s models are checked against (a)'s. Printed: model-steps/s of both, the
ratio, and achieved GFLOP/s against this machine's measured fp32 matmul peak.

    python benchmarks/population_throughput.py                 # CPU: 100 models
    python benchmarks/population_throughput.py --device cuda --models 1000
    python benchmarks/population_throughput.py --arch vit --models 16 --batch 32   # a tiny ViT, vmap

`--arch vit` is the embedded ViT shape (28x28, patch 7, hidden 32, 2 layers, 4 heads), AdamW,
its own init: the engine runs it with `torch.func.vmap` over `functional_call`.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from modelzoos.architectures import logits_of
from modelzoos.data import ImageTensors
from modelzoos.spec import spec_from_dict
from modelzoos.training.engine import GroupTrainer, Member, Population, initial_model
from modelzoos.training.reference import train_alone
from modelzoos.zoo_dir import ZooDir

ARCHITECTURES = {
    "cnn-s": ({"name": "cnn-s"}, {"activation": "tanh", "init": "kaiming_uniform", "optimizer": "adam", "lr": 3e-4}),
    "vit": (
        {"name": "vit", "args": {"image_size": 28, "patch_size": 7, "hidden_size": 32, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "intermediate_size": 64}},
        {"activation": "gelu", "init": "default", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01},
    ),
}


def workload(arch: str, models: int, steps: int, batch: int):
    architecture, factors = ARCHITECTURES[arch]
    spec = spec_from_dict(
        {
            "name": f"bench-{arch}",
            "pretty_name": "benchmark",
            "description": f"synthetic {arch} workload",
            "image_data": {"source": "synthetic", "channels": 1, "image_size": 28, "num_classes": 10},
            "architecture": architecture,
            "training": {"epochs": 1, "batch_size": batch},
            "grid": {"seed": {"from": 1, "to": models}, **factors},
        }
    )
    g = torch.Generator().manual_seed(0)
    n = steps * batch
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    empty = torch.empty(0, 1, 28, 28)
    return spec, ImageTensors(x, y, empty, torch.empty(0, dtype=torch.int64), empty, torch.empty(0, dtype=torch.int64))


def matmul_peak(device: torch.device) -> float:
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    reps, t = 10, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * 2048**3 * reps / (time.perf_counter() - t) / 1e9


def flops_per_model_step(spec, data) -> float:
    model = initial_model(spec, spec.models()[0].factors)
    batch = spec.training.batch_size
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(logits_of(model, data.train_x[:batch]), data.train_y[:batch]).backward()
    return counter.get_total_flops()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100, help="models in the engine's population")
    ap.add_argument("--plain-models", type=int, default=5, help="models the plain loop trains (it is slow)")
    ap.add_argument("--steps", type=int, default=120, help="steps per model")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--arch", choices=sorted(ARCHITECTURES), default="cnn-s")
    ap.add_argument("--batch", type=int, default=10, help="images per step and model (the zoos': 10)")
    args = ap.parse_args()
    device = torch.device(args.device)
    spec, data = workload(args.arch, args.models, args.steps, args.batch)
    BATCH = args.batch
    data = data.to(device)

    # (a) the plain loop, one model after the other (after a warm-up: oneDNN builds its kernels
    # on first use)
    few = ImageTensors(*(t[: 5 * BATCH] for t in (data.train_x, data.train_y)), *list(vars(data).values())[2:])
    train_alone(spec, spec.models()[0], few, device)
    sync(device)
    t = time.perf_counter()
    plain = [train_alone(spec, entry, data, device) for entry in spec.models()[: args.plain_models]]
    sync(device)
    plain_rate = args.plain_models * args.steps / (time.perf_counter() - t)

    # (b) the engine: one population, one stacked step per batch (a short warm-up first)
    trainer = GroupTrainer(spec, ZooDir("/nonexistent"), data, device)
    warm = Population(spec, [Member(e) for e in spec.models()[:2]], device)
    trainer.train_epoch(warm, 1)
    pop = Population(spec, [Member(e) for e in spec.models()], device)
    sync(device)
    t = time.perf_counter()
    trainer.train_epoch(pop, 1)
    sync(device)
    engine_rate = args.models * args.steps / (time.perf_counter() - t)

    # equal results: the engine's models against the plain loop's
    worst = 0.0
    for k in range(args.plain_models):
        a = torch.cat([p[k].detach().flatten().cpu() for p in pop.params.values()])
        b = torch.cat([plain[k][-1][n].flatten() for n in pop.params])
        worst = max(worst, float((a - b).norm() / b.norm()))

    flops = flops_per_model_step(spec, data.to("cpu"))
    peak = matmul_peak(device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    f = spec.models()[0].factors
    print(f"device {device} ({threads} threads), {args.arch}, batch {BATCH}, {f.optimizer}, {args.steps} steps per model")
    print(f"FLOPs per model-step (forward + backward): {flops / 1e6:.2f} M; fp32 matmul peak {peak:.0f} GFLOP/s")
    for name, rate, k in (("plain loop", plain_rate, args.plain_models), ("engine", engine_rate, args.models)):
        gflops = rate * flops / 1e9
        print(
            f"{name:>10}: {k:>5} models  {rate:10.0f} model-steps/s  {1e3 / rate:7.3f} ms/model-step  "
            f"{gflops:6.1f} GFLOP/s ({100 * gflops / peak:.1f}% of peak)"
        )
    print(f"ratio engine / plain: {engine_rate / plain_rate:.1f}x")
    print(f"engine vs plain weights after {args.steps} steps: max relative error {worst:.1e}")


if __name__ == "__main__":
    main()
