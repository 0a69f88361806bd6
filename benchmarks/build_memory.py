"""Peak memory of `modelzoos build` against the number of models: it must not grow with them.

Fabricates raw zoo directories of N models of a ~1M-parameter ViT (image 28, patch 7, hidden
128, 5 layers: 1,000,394 parameters, 4 MB a checkpoint), 1 epoch each (checkpoints for epochs 0
and 1, the second the first plus seeded noise, so that nothing compresses away), with metrics and
manifests as training writes them; then builds each in a fresh process and prints that process's
peak resident memory and time. Training is not run: the build reads only what training wrote.

    python benchmarks/build_memory.py                       # 50 and 400 models
    python benchmarks/build_memory.py --models 20 80 --dir /tmp/bm
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import safetensors.torch
import torch
import yaml

from modelzoos.spec import ZOOS_DIR, spec_from_dict
from modelzoos.training.engine import initial_model
from modelzoos.training.train import _write_config
from modelzoos.zoo_dir import ZooDir

ARCHITECTURE = {
    "name": "vit",
    "args": {"image_size": 28, "patch_size": 7, "hidden_size": 128, "num_hidden_layers": 5,
             "num_attention_heads": 4, "intermediate_size": 512},
}


def fabricate(root: Path, models: int) -> None:
    data = yaml.safe_load((ZOOS_DIR / "digits-cnn-s.yaml").read_text())
    data.update(name=f"build-memory-{models}", architecture=ARCHITECTURE, grid={"seed": {"from": 1, "to": models}})
    data["training"] = {**data["training"], "epochs": 1}
    data["grid"].update(activation="gelu", init="default", optimizer="adamw", lr=1e-3)
    spec = spec_from_dict(data, where="build_memory.py")
    zoo = ZooDir(root)
    root.mkdir(parents=True)
    zoo.spec_path.write_text(spec.to_yaml())
    for entry in spec.models():
        _write_config(zoo, spec, entry)
        state = initial_model(spec, entry.factors).state_dict()
        noise = torch.Generator().manual_seed(entry.factors.seed)
        sums, rows = [], []
        for epoch in (0, 1):
            if epoch:
                state = {k: v + 1e-3 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v for k, v in state.items()}
            blob = safetensors.torch.save({k: v.contiguous() for k, v in state.items()})
            zoo.checkpoint(entry.model_id, epoch).write_bytes(blob)
            sums.append(f"{hashlib.sha256(blob).hexdigest()}  {zoo.checkpoint(entry.model_id, epoch).name}\n")
            acc = 0.1 + 0.8 * epoch * (entry.factors.seed % 7) / 7
            rows.append({"epoch": epoch, "train_loss": 2.0 - epoch, "train_acc": acc, "val_loss": 2.0, "val_acc": acc,
                         "test_loss": 2.0, "test_acc": acc, "ggap": 0.0, "status": "ok"})
        (zoo.model_dir(entry.model_id) / "SHA256SUMS").write_text("".join(sums))
        zoo.write_metrics(entry.model_id, rows)


BUILD = """
import resource, sys, time
from modelzoos.hub import build_hub
start = time.monotonic()
build_hub(sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.monotonic() - start)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, nargs="+", default=[50, 400])
    ap.add_argument("--dir", type=Path, default=Path("build-memory"), help="where the zoos are made (removed after)")
    args = ap.parse_args()
    results = []
    for n in args.models:
        root = args.dir / f"zoo-{n}"
        shutil.rmtree(root, ignore_errors=True)
        start = time.monotonic()
        fabricate(root, n)
        made = time.monotonic() - start
        out = subprocess.run([sys.executable, "-c", BUILD, str(root)], check=True, capture_output=True, text=True,
                             env={**__import__("os").environ, "TQDM_DISABLE": "1"})
        peak, seconds = out.stdout.split()[-2:]
        hub_bytes = sum(f.stat().st_size for f in (root / "hub").rglob("*") if f.is_file())
        raw_bytes = sum(f.stat().st_size for f in (root / "models").rglob("*.safetensors"))
        results.append((n, int(peak), float(seconds)))
        print(f"{n:5d} models: raw checkpoints {raw_bytes / 2**30:.2f} GiB, hub folder {hub_bytes / 2**30:.2f} GiB, "
              f"build peak RSS {int(peak) / 2**20:,.0f} MiB, {float(seconds):.1f} s (fabricated in {made:.0f} s)")
        shutil.rmtree(root)
    (n0, p0, s0), (n1, p1, s1) = results[0], results[-1]
    print(f"peak memory {n1} / {n0} models: {p1 / p0:.2f}x   (time: {s1 / s0:.2f}x)")


if __name__ == "__main__":
    main()
