"""The population engine against the plain per-model loop, faults, and a real SIGKILL resume."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import safetensors.torch
import torch

from modelzoos.data import load_image_tensors
from modelzoos.spec import Augmentation, load_spec
from modelzoos.training import evaluate, train_alone, train_zoo
from modelzoos.training.engine import initial_model
from modelzoos.zoo_dir import ZooDir

from conftest import write_spec

def assert_same_model(a: dict, b: dict, what: str, tol: float = 5e-4) -> None:
    """Within float tolerance, as whole weight vectors. A grouped and a single convolution round
    differently (~1e-7); training then grows the difference step by step, and normalized
    optimizers (Adam, RMSprop) turn the sign of a near-zero gradient into a full +-lr step. Measured
    after 80 steps: up to ~1.5e-4 of the weight norm (RMSprop); a wrong update rule, data order or
    init is off by 1e-2 and more."""
    va, vb = (torch.cat([s[n].flatten() for n in sorted(s)]) for s in (a, b))
    err = (va - vb).norm() / vb.norm()
    assert err < tol, f"{what}: relative error {err:.2e}"


@pytest.fixture(scope="module")
def digits():
    return load_image_tensors(load_spec("digits-cnn-s").image_data)


def _weights(zoo: ZooDir, model_id: str, epoch: int) -> dict:
    return safetensors.torch.load_file(zoo.checkpoint(model_id, epoch))


# Learning rates as the zoos use them. (Far larger ones make training chaotic: float rounding,
# which differs between a grouped and a single convolution, then grows step by step.)
OPTIMIZERS = [
    {"optimizer": "sgd", "lr": [0.01, 0.003], "momentum": [0.9, 0.0], "weight_decay": [0.0, 1e-3]},
    {"optimizer": "sgd", "nesterov": True, "lr": [0.01, 0.003], "weight_decay": [0.0, 1e-2]},
    {"optimizer": "adam", "lr": [1e-3, 3e-4], "weight_decay": [0.0, 1e-3]},
    {"optimizer": "adamw", "lr": [1e-3, 3e-4], "weight_decay": [0.0, 1e-2]},
    {"optimizer": "rmsprop", "lr": [3e-4, 1e-4], "momentum": [0.0, 0.5], "weight_decay": [0.0, 1e-3]},
]


@pytest.mark.parametrize("grid", OPTIMIZERS, ids=lambda g: g["optimizer"] + ("-nesterov" if g.get("nesterov") else ""))
def test_a_model_in_a_group_equals_the_model_trained_alone(tmp_path, digits, grid):
    """Per-model lr, weight decay and momentum in one stacked step, against torch.optim one model
    at a time: same initial weights exactly, then weights and metrics within float tolerance."""
    spec = load_spec(write_spec(tmp_path / "s.yaml", training={"epochs": 2}, grid={"seed": [1, 2], **grid}))
    assert len(spec.models()) >= 8
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    for entry in spec.models():
        alone = train_alone(spec, entry, digits)
        assert all(torch.equal(alone[0][n], t) for n, t in _weights(zoo, entry.model_id, 0).items())
        for epoch in (1, 2):
            assert_same_model(_weights(zoo, entry.model_id, epoch), alone[epoch], f"{entry.factors} epoch {epoch}")
            row = zoo.read_metrics(entry.model_id)[epoch]
            model = initial_model(spec, entry.factors)
            model.load_state_dict(alone[epoch])
            loss, acc = evaluate(model, digits.test_x, digits.test_y)
            assert abs(row["test_acc"] - acc) <= 2 / len(digits.test_y) and row["test_loss"] == pytest.approx(loss, rel=1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_onecycle_schedule_per_model_equals_torch(tmp_path, digits, optimizer):
    """OneCycleLR with each model's lr as its max_lr, momentum (beta1 for Adam) cycled, against
    torch's scheduler on the lone model; the schedule spans both epochs, so also across a resume."""
    lrs = {"sgd": [0.05, 0.01], "adam": [3e-3, 1e-3], "adamw": [3e-3, 1e-3], "rmsprop": [3e-4, 1e-4]}[optimizer]
    grid = {"seed": [1, 2], "optimizer": optimizer, "lr": lrs}
    spec = load_spec(write_spec(tmp_path / "c.yaml", training={"epochs": 2, "scheduler": "onecycle"}, grid=grid))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    for entry in spec.models():
        alone = train_alone(spec, entry, digits)
        for epoch in (1, 2):
            assert_same_model(_weights(zoo, entry.model_id, epoch), alone[epoch], f"{entry.factors} epoch {epoch}")


def test_onecycle_values_match_torch():
    from modelzoos.training.optim import onecycle

    p = torch.nn.Parameter(torch.zeros(1))
    sgd, adam = torch.optim.SGD([p], lr=0.1, momentum=0.9), torch.optim.Adam([p], lr=0.1)
    schedules = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=37) for o in (sgd, adam)]
    for step in range(37):
        lr, momentum = onecycle(step, 37, torch.tensor([0.1, 0.2]))
        assert lr[0].item() == pytest.approx(sgd.param_groups[0]["lr"], rel=1e-6)
        assert lr[1].item() == pytest.approx(2 * sgd.param_groups[0]["lr"], rel=1e-6)
        assert momentum == pytest.approx(sgd.param_groups[0]["momentum"], rel=1e-9)
        assert momentum == pytest.approx(adam.param_groups[0]["betas"][0], rel=1e-9)
        for o, sched in zip((sgd, adam), schedules):
            o.step()
            sched.step()


def test_dropout_masks_come_from_the_seed(tmp_path, digits):
    """Keyed dropout: the group and the lone model draw the same masks, so they agree too."""
    grid = {"seed": [1, 2, 3], "dropout": [0.0, 0.5], "lr": 1e-3}
    spec = load_spec(write_spec(tmp_path / "d.yaml", training={"epochs": 1}, grid=grid))
    grouped = train_zoo(spec, tmp_path / "grouped", progress=False)
    single = train_zoo(spec, tmp_path / "single", group_size=1, progress=False)
    for entry in spec.models():
        alone = train_alone(spec, entry, digits)
        # Dropout makes training more sensitive still; other masks would be off by ~1e-1.
        assert_same_model(_weights(grouped, entry.model_id, 1), alone[1], f"{entry.factors} vs alone", tol=2e-3)
        assert_same_model(_weights(grouped, entry.model_id, 1), _weights(single, entry.model_id, 1), "vs K=1", tol=2e-3)
    a, b = (e for e in spec.models() if e.factors.dropout == 0.5 and e.factors.seed in (1, 2))
    assert not torch.equal(_weights(grouped, a.model_id, 1)["fc1.weight"], _weights(grouped, b.model_id, 1)["fc1.weight"])


def test_a_diverging_model_is_flagged_and_does_not_poison_its_group(tmp_path):
    healthy = {"seed": [1, 2], "activation": "relu", "optimizer": "sgd", "lr": [0.01]}
    spec = load_spec(write_spec(tmp_path / "h.yaml", training={"epochs": 2}, grid=healthy))
    with_bad = load_spec(write_spec(tmp_path / "b.yaml", training={"epochs": 2}, grid={**healthy, "lr": [0.01, 1e30]}))
    ref = train_zoo(spec, tmp_path / "ref", progress=False)
    zoo = train_zoo(with_bad, tmp_path / "bad", progress=False)
    bad = [e for e in with_bad.models() if e.factors.lr > 1]
    assert len(with_bad.models()) == 4 and len(bad) == 2
    for e in bad:
        rows = zoo.read_metrics(e.model_id)
        assert rows[0]["status"] == "ok" and rows[-1]["status"] == "diverged"
        last = _weights(zoo, e.model_id, 2)
        assert all(torch.isfinite(t).all() for t in last.values())  # frozen at its last finite weights
        assert all(torch.equal(t, _weights(zoo, e.model_id, 1)[n]) for n, t in last.items())  # and stays there
    for e in spec.models():
        assert all(r["status"] == "ok" for r in zoo.read_metrics(e.model_id))
        assert_same_model(_weights(zoo, e.model_id, 2), _weights(ref, e.model_id, 2), str(e.factors))


def test_sigkill_in_the_middle_of_an_epoch_then_resume_gives_the_same_bytes(tmp_path):
    spec_path = write_spec(tmp_path / "k.yaml", training={"epochs": 3, "batch_size": 4}, grid={"seed": [1, 2, 3, 4]})
    spec = load_spec(spec_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}

    def command(out):
        return [sys.executable, "-m", "modelzoos", "train", str(spec_path), "--out", str(out)]

    subprocess.run(command(tmp_path / "whole"), env=env, check=True, capture_output=True, timeout=600)
    killed = ZooDir(tmp_path / "killed")
    proc = subprocess.Popen(command(killed.root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = spec.models()[0].model_id
    deadline = time.monotonic() + 300
    while len(killed.read_metrics(first)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)  # now inside epoch 2
    assert proc.poll() is None, "the run ended before it could be killed; make the epochs longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [len(killed.read_metrics(e.model_id)) for e in spec.models()]
    assert min(done) >= 2 and max(done) < 4, done
    kept = {e.model_id: killed.checkpoint(e.model_id, 1).stat().st_mtime_ns for e in spec.models()}
    subprocess.run(command(killed.root), env=env, check=True, capture_output=True, timeout=600)
    # it resumed: epoch 1 was not trained (or written) again
    assert kept == {e.model_id: killed.checkpoint(e.model_id, 1).stat().st_mtime_ns for e in spec.models()}
    whole = ZooDir(tmp_path / "whole")
    for e in spec.models():
        for epoch in range(4):
            assert killed.checkpoint(e.model_id, epoch).read_bytes() == whole.checkpoint(e.model_id, epoch).read_bytes()
        assert killed.read_metrics(e.model_id) == whole.read_metrics(e.model_id)
        assert not killed.state_path(e.model_id).exists()


@pytest.mark.parametrize("grid", OPTIMIZERS, ids=lambda g: g["optimizer"] + ("-nesterov" if g.get("nesterov") else ""))
def test_stacked_optimizer_matches_torch_optim_step_by_step(tmp_path, grid):
    """The update rules alone, on the same gradients: no training dynamics to amplify rounding,
    so elementwise agreement to float precision."""
    from modelzoos.training.optim import StackedOptimizer
    from modelzoos.training.reference import make_optimizer

    factors = [e.factors for e in load_spec(write_spec(tmp_path / "o.yaml", grid={"seed": [1], **grid})).models()]
    K = len(factors)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(K, 7, 5, generator=g)
    stacked = {"w": start.clone()}
    opt = StackedOptimizer(stacked, factors)
    singles = [torch.nn.Parameter(start[k].clone()) for k in range(K)]
    torch_opts = [make_optimizer([p], f) for p, f in zip(singles, factors)]
    # the last model sits out every other step (a frozen model's weights and state stay put)
    for i in range(10):
        active = torch.ones(K, dtype=torch.bool)
        active[-1] = i % 2 == 0
        grad = torch.randn(K, 7, 5, generator=g)
        assert opt.step({"w": grad}, active).all()
        for k, (p, o) in enumerate(zip(singles, torch_opts)):
            if active[k]:
                p.grad = grad[k].clone()
                o.step()
    for k in range(K):
        torch.testing.assert_close(stacked["w"][k], singles[k].detach(), rtol=1e-5, atol=1e-6)


def test_an_update_that_would_overflow_is_not_applied():
    from modelzoos.spec import Factors
    from modelzoos.training.optim import StackedOptimizer

    params = {"w": torch.ones(2, 3)}
    opt = StackedOptimizer(params, [Factors(seed=1, optimizer="sgd", lr=1e30).resolved()] * 2)
    finite = opt.step({"w": torch.tensor([[1e-3] * 3, [1e30] * 3])}, torch.ones(2, dtype=torch.bool))
    assert finite.tolist() == [True, False]
    assert torch.equal(params["w"][1], torch.ones(3)) and torch.isfinite(params["w"]).all()
    assert opt.steps.tolist() == [1.0, 0.0]


def test_cnn_l_population_trains_like_the_lone_model(tmp_path):
    spec = load_spec(write_spec(
        tmp_path / "l.yaml",
        architecture={"name": "cnn-l"},
        image_data={"image_size": 32, "resize": 32},
        training={"epochs": 1},
        grid={"seed": [1, 2], "dropout": [0.0, 0.5], "activation": "gelu", "lr": 1e-3},
    ))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    data = load_image_tensors(spec.image_data)
    for entry in spec.models():
        alone = train_alone(spec, entry, data)
        assert sum(t.numel() for t in alone[0].values()) == 10_565
        assert_same_model(_weights(zoo, entry.model_id, 1), alone[1], str(entry.factors), tol=2e-3)


def test_resnet18_population_with_batchnorm_and_augmentation_trains_like_the_lone_model(tmp_path):
    """The ResNet-18 protocol at toy size: SGD with OneCycleLR, crop + flip + rotation drawn from
    each model's seed on the device, and per-model BatchNorm statistics, in a group and alone.
    (At the zoos' lr of 0.05 on random labels, K=1 against the lone model alone drifts to ~1e-3:
    training is chaotic there, so a smaller lr keeps rounding from growing.)"""
    import dataclasses

    spec = load_spec(write_spec(
        tmp_path / "r.yaml",
        architecture={"name": "resnet18"},
        image_data={"source": "synthetic:96", "channels": 3, "image_size": 16, "resize": None,
                    "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "validation": {"size": 16, "seed": 42}},
        training={"epochs": 1, "batch_size": 16, "scheduler": "onecycle",
                  "augmentation": {"crop_padding": 4, "hflip": True, "rotation": 20}},
        grid={"seed": [1, 2], "optimizer": "sgd", "lr": 0.005, "weight_decay": 5e-4, "activation": "relu"},
    ))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    data = load_image_tensors(spec.image_data)
    for entry in spec.models():
        alone = train_alone(spec, entry, data)
        assert all(torch.equal(alone[0][n], t) for n, t in _weights(zoo, entry.model_id, 0).items())
        grouped = _weights(zoo, entry.model_id, 1)
        assert grouped["bn1.num_batches_tracked"].item() == 5 == alone[1]["bn1.num_batches_tracked"].item()
        buffers = {n: t for n, t in grouped.items() if "running" in n}
        assert_same_model(buffers, {n: alone[1][n] for n in buffers}, f"{entry.factors} BatchNorm statistics", tol=2e-3)
        assert_same_model(grouped, alone[1], str(entry.factors))
        plain = dataclasses.replace(spec, training=dataclasses.replace(spec.training, augmentation=Augmentation()))
        with pytest.raises(AssertionError):  # the augmentation made a difference the tolerance sees
            assert_same_model(grouped, train_alone(plain, entry, data)[1], "without augmentation", tol=5e-3)
    a, b = (_weights(zoo, e.model_id, 1)["bn1.running_mean"] for e in spec.models())
    assert not torch.equal(a, b)


def test_a_diverged_resnet_keeps_its_batchnorm_statistics(tmp_path):
    """A diverged model is frozen whole: its running statistics stop moving with its weights."""
    spec = load_spec(write_spec(
        tmp_path / "rb.yaml",
        architecture={"name": "resnet18"},
        image_data={"source": "synthetic:24", "channels": 3, "image_size": 8, "resize": None,
                    "mean": None, "std": None, "validation": {"size": 0}},
        training={"epochs": 2, "batch_size": 12},
        grid={"seed": [1], "optimizer": "sgd", "lr": [0.01, 1e30], "activation": "relu"},
    ))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    healthy, bad = spec.models()
    rows = zoo.read_metrics(bad.model_id)
    assert rows[1]["status"] == "diverged" and zoo.read_metrics(healthy.model_id)[2]["status"] == "ok"
    one, two = _weights(zoo, bad.model_id, 1), _weights(zoo, bad.model_id, 2)
    assert all(torch.isfinite(t).all() for t in two.values() if t.is_floating_point())
    assert all(torch.equal(one[n], t) for n, t in two.items())
    moving = _weights(zoo, healthy.model_id, 1)["layer1.0.bn1.running_var"], _weights(zoo, healthy.model_id, 2)["layer1.0.bn1.running_var"]
    assert not torch.equal(*moving)


def test_vit_population_trains_like_the_lone_model(tmp_path):
    import dataclasses

    """A tiny transformers ViT, with its own (seeded) init, under vmap in a group and alone, with
    the supervised pre-training recipe: label smoothing, mixup or CutMix, random erasing."""
    spec = load_spec(write_spec(
        tmp_path / "v.yaml",
        architecture={"name": "vit", "args": {"image_size": 28, "patch_size": 7, "hidden_size": 32, "num_hidden_layers": 2,
                                              "num_attention_heads": 4, "intermediate_size": 64}},
        training={"epochs": 1, "label_smoothing": 0.1, "augmentation": {"erasing": 0.25, "mixup": 0.8, "cutmix": 1.0}},
        grid={"seed": [1, 2], "init": "default", "activation": "gelu", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2},
    ))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    data = load_image_tensors(spec.image_data)
    first = [_weights(zoo, e.model_id, 0) for e in spec.models()]
    assert not torch.equal(first[0]["vit.embeddings.cls_token"], first[1]["vit.embeddings.cls_token"])
    for entry, start in zip(spec.models(), first):
        alone = train_alone(spec, entry, data)
        assert all(torch.equal(alone[0][n], t) for n, t in start.items())
        assert_same_model(_weights(zoo, entry.model_id, 1), alone[1], str(entry.factors))
        plain = dataclasses.replace(spec, training=dataclasses.replace(spec.training, augmentation=Augmentation()))
        with pytest.raises(AssertionError):  # the recipe made a difference the tolerance sees
            assert_same_model(_weights(zoo, entry.model_id, 1), train_alone(plain, entry, data)[1], "plain", tol=5e-3)
        before, after = zoo.read_metrics(entry.model_id)
        assert after["status"] == "ok" and after["train_loss"] < before["train_loss"]  # it learns


def test_contrastive_vit_population_trains_like_the_lone_model(tmp_path):
    """SimCLR pre-training (two keyed views per image, InfoNCE, the head as a projection head) in
    a group and alone; its accuracies are k-NN accuracies, its losses InfoNCE on fixed views."""
    spec = load_spec(write_spec(
        tmp_path / "c.yaml",
        architecture={"name": "vit", "args": {"image_size": 28, "patch_size": 7, "hidden_size": 32, "num_hidden_layers": 2,
                                              "num_attention_heads": 4, "intermediate_size": 64}},
        training={"epochs": 1, "batch_size": 64, "loss": "info_nce", "temperature": 0.5, "projection_dim": 16},
        grid={"seed": [1, 2], "init": "default", "activation": "gelu", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2},
    ))
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    data = load_image_tensors(spec.image_data)
    for entry in spec.models():
        alone = train_alone(spec, entry, data)
        assert alone[1]["classifier.weight"].shape == (16, 32)  # the projection head
        assert_same_model(_weights(zoo, entry.model_id, 1), alone[1], str(entry.factors))
        before, after = zoo.read_metrics(entry.model_id)
        # InfoNCE of batch 64 (fixed views, so epoch 0 and 1 differ by the weights alone)
        assert all(0 < r[f"{s}_loss"] < math.log(2 * 64 - 1) + 1 for r in (before, after) for s in ("train", "val", "test"))
        assert before["train_loss"] != after["train_loss"]
        assert all(0 < after[f"{s}_acc"] <= 1 for s in ("train", "val", "test"))
        assert after["ggap"] == pytest.approx(after["train_acc"] - after["test_acc"])
    # fixed views: a model's metrics are the same alone and beside another model, and the views
    # are the same for both (two copies of one model score alike)
    from modelzoos.training.engine import GroupTrainer, Member, Population

    trainer = GroupTrainer(spec, zoo, data, torch.device("cpu"))
    first, second = spec.models()
    pair = trainer.metrics(Population(spec, [Member(first), Member(second)], torch.device("cpu")))
    alone = trainer.metrics(Population(spec, [Member(first)], torch.device("cpu")))
    twins = trainer.metrics(Population(spec, [Member(first), Member(first)], torch.device("cpu")))
    for name, v in alone.items():
        assert v[0].item() == pytest.approx(pair[name][0].item(), rel=1e-5) == pytest.approx(twins[name][1].item(), rel=1e-5)
    assert zoo.read_metrics(first.model_id)[0]["test_loss"] == pytest.approx(alone["test_loss"][0].item(), rel=1e-5)


def test_bfloat16_autocast_in_the_engine_and_the_plain_loop(tmp_path):
    """training.autocast: bfloat16 forward passes in the engine and in the plain loop; weights stay
    float32. (Trajectories are not compared: bfloat16 rounding, which differs between vmap's
    batched and one model's matmuls, grows in training past the distance to a float32 run. The
    forward passes are.)"""
    import dataclasses

    from modelzoos.architectures import logits_of
    from modelzoos.training.engine import Member, Population

    spec = load_spec(write_spec(
        tmp_path / "b.yaml",
        architecture={"name": "vit", "args": {"image_size": 28, "patch_size": 7, "hidden_size": 32, "num_hidden_layers": 1,
                                              "num_attention_heads": 4, "intermediate_size": 64}},
        training={"epochs": 1, "autocast": "bfloat16"},
        grid={"seed": [1, 2], "init": "default", "activation": "gelu", "optimizer": "adamw", "lr": 1e-3},
    ))
    full = dataclasses.replace(spec, training=dataclasses.replace(spec.training, autocast=None))
    data = load_image_tensors(spec.image_data)
    x, cpu = data.test_x[:64], torch.device("cpu")

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    with torch.no_grad():
        half = Population(spec, [Member(e) for e in spec.models()], cpu).forward(x)
        single = Population(full, [Member(e) for e in spec.models()], cpu).forward(x)
        models = [initial_model(spec, e.factors).eval() for e in spec.models()]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            alone = torch.stack([logits_of(m, x) for m in models]).float()
        alone_single = torch.stack([logits_of(m, x) for m in models])
    assert half.dtype == torch.float32
    # bfloat16 keeps ~3 digits: both paths are that far from float32 (where a group and a lone
    # model agree to ~1e-7), and that close to each other
    assert rel(half, single) > 1e-3 and rel(alone, alone_single) > 1e-3 and rel(single, alone_single) < 1e-5
    assert rel(half, alone) < 1e-2
    zoo = train_zoo(spec, tmp_path / "zoo", progress=False)
    for entry in spec.models():
        assert all(t.dtype == torch.float32 for t in _weights(zoo, entry.model_id, 1).values())
        before, after = zoo.read_metrics(entry.model_id)
        assert after["train_loss"] < before["train_loss"]
    trained = train_alone(spec, spec.models()[0], data)
    assert all(t.dtype == torch.float32 for t in trained[1].values()) and not torch.equal(trained[0]["classifier.weight"], trained[1]["classifier.weight"])
