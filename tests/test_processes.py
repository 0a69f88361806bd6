"""`accelerate launch` with two CPU processes shares out the population: every model once, same weights."""

import os
import re
import subprocess
import sys

import safetensors.torch
import torch


def test_two_processes_train_the_same_zoo_as_one(tiny_spec_path, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    args = ["train", str(tiny_spec_path), "--epochs", "1"]
    two = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "modelzoos", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    # two processes, each with its own share (seeds 1 and 3 on process 0, seed 2 on process 1)
    assert "process 0 of 2: 2 models" in two.stderr and "process 1 of 2: 1 models" in two.stderr
    one = subprocess.run(
        [sys.executable, "-m", "modelzoos", *args, "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    models = sorted(p.name for p in (tmp_path / "two" / "models").iterdir())
    assert len(models) == 3
    # Groups differ (two processes hold 2 + 1 models, one holds 3), so equal within float tolerance.
    for model_id in models:
        for epoch in (0, 1):
            a = safetensors.torch.load_file(tmp_path / "two" / "models" / model_id / f"epoch_{epoch:03d}.safetensors")
            b = safetensors.torch.load_file(tmp_path / "one" / "models" / model_id / f"epoch_{epoch:03d}.safetensors")
            for name in a:
                torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_two_processes_train_a_staged_zoo_stage_after_stage(tmp_path):
    """Fine-tunes start only once every process has finished the backbones they start from."""
    from modelzoos.spec import load_spec
    from modelzoos.zoo_dir import ZooDir

    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    out = tmp_path / "vit"
    run = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "modelzoos", "train", "digits-vit",
         "--max-models", "3", "--epochs", "1", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    spec, zoo = load_spec("digits-vit").replace(max_models=3, epochs=1), ZooDir(out)
    shares = re.findall(r"process (\d) of 2: (\d+) models", run.stderr)  # each process's share of each stage
    assert sorted(p for p, _ in shares) == ["0"] * 3 + ["1"] * 3 and sum(int(n) for _, n in shares) == len(spec.models())
    tunes = [m for m in spec.models() if m.stage == "finetune"]
    assert len(tunes) == 6 and all(len(zoo.read_metrics(m.model_id)) == 2 for m in spec.models())
    for m in tunes:  # every fine-tune started from its backbone's finished last epoch
        start = safetensors.torch.load_file(zoo.checkpoint(m.model_id, 0))
        parent = safetensors.torch.load_file(zoo.checkpoint(m.parent_id, 1))
        assert torch.equal(start["vit.embeddings.cls_token"], parent["vit.embeddings.cls_token"])
