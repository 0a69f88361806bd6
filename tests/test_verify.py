"""SHA256SUMS written by training, and `modelzoos verify` on deliberately damaged copies of the tiny zoo."""

import hashlib
import json
import shutil
import struct
import subprocess

import datasets
import pytest
import safetensors.torch

from modelzoos.cli import main
from modelzoos.errors import ModelzoosError
from modelzoos.training import train_zoo
from modelzoos.verify import Problem, bad_models, verify_zoo
from modelzoos.zoo_dir import ZooDir


@pytest.fixture
def zoo(tiny_zoo, tmp_path):
    """A copy of the tiny zoo (3 models, epochs 0-2) to damage."""
    _, root = tiny_zoo
    shutil.copytree(root, tmp_path / "z", ignore=shutil.ignore_patterns("hub"))
    return ZooDir(tmp_path / "z")


@pytest.fixture
def ids(tiny_zoo):
    spec, _ = tiny_zoo
    return [m.model_id for m in spec.models()]


def found(zoo):
    """(model_id, epoch, kind) of every problem, in the report's order."""
    return [(p.model_id, p.epoch, p.kind) for p in verify_zoo(zoo.root, progress=False).problems]


def test_training_writes_a_sha256sum_manifest(tiny_zoo):
    spec, root = tiny_zoo
    zoo = ZooDir(root)
    for entry in spec.models():
        files = sorted(zoo.model_dir(entry.model_id).glob("epoch_*.safetensors"))
        assert [f.name for f in files] == [f"epoch_{e:03d}.safetensors" for e in range(3)]
        expected = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
        assert zoo.manifest_path(entry.model_id).read_text() == expected
        assert zoo.read_manifest(entry.model_id) == {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum here to check the format against")
    done = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=zoo.model_dir(spec.models()[0].model_id),
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 3


def test_manifest_line_is_written_before_the_epoch_commits_and_kept_on_resume(tiny_spec, tmp_path, monkeypatch):
    """Killed at the commit point (the metrics line) of the last epoch: that checkpoint's line is
    there; the resumed run goes on from epoch 1 and keeps the earlier epochs' lines."""
    original = ZooDir.write_metrics

    def dies(self, model_id, rows):
        if len(rows) == 3:
            raise KeyboardInterrupt
        original(self, model_id, rows)

    spec = tiny_spec.replace(max_models=1)
    model_id = spec.models()[0].model_id
    zoo = ZooDir(tmp_path / "z")
    monkeypatch.setattr(ZooDir, "write_metrics", dies)
    with pytest.raises(KeyboardInterrupt):
        train_zoo(spec, zoo.root, progress=False)
    monkeypatch.setattr(ZooDir, "write_metrics", original)

    def sums():
        files = [zoo.checkpoint(model_id, e) for e in range(3)]
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    assert len(zoo.read_metrics(model_id)) == 2
    before = sums()
    assert zoo.read_manifest(model_id) == before
    train_zoo(spec, zoo.root, progress=False)
    assert len(zoo.read_metrics(model_id)) == 3
    assert zoo.read_manifest(model_id) == sums() == before  # epoch 2 trained again: the same bytes


def test_a_clean_zoo_verifies(zoo, capsys):
    report = verify_zoo(zoo.root, progress=False)
    assert report.problems == [] and report.bad == {}
    assert (report.models, report.checkpoints, report.checksummed) == (3, 9, 9)
    assert main(["verify", str(zoo.root)]) == 0
    assert capsys.readouterr().out == "all 3 models verified: 9 checkpoints, sha256 and finite\n"


def test_a_flipped_byte_is_a_checksum_mismatch(zoo, ids, capsys):
    path = zoo.checkpoint(ids[0], 1)
    data = bytearray(path.read_bytes())
    (header,) = struct.unpack("<Q", data[:8])
    data[8 + header] ^= 0x01  # the lowest bit of the first number: still a readable, finite file
    path.write_bytes(bytes(data))
    safetensors.torch.load_file(path)
    assert found(zoo) == [(ids[0], 1, "checksum")]
    assert main(["verify", str(zoo.root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{ids[0]} epoch 1: checksum mismatch (file changed after training)"
    assert out[1].startswith("1 of 3 models have problems; to train one again, delete ")


def test_a_truncated_checkpoint_is_unreadable(zoo, ids):
    path = zoo.checkpoint(ids[1], 2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert found(zoo) == [(ids[1], 2, "checksum"), (ids[1], 2, "unreadable")]
    (problem,) = [p for p in verify_zoo(zoo.root, progress=False).problems if p.kind == "unreadable"]
    assert "epoch_002.safetensors is not a readable safetensors file" in problem.message


def _write_nan(zoo, model_id, epoch):
    """NaN in the first floating tensor, with the manifest line updated: only the NaN check can tell."""
    path = zoo.checkpoint(model_id, epoch)
    state = safetensors.torch.load_file(path)
    name = next(n for n, t in state.items() if t.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    safetensors.torch.save_file(state, path)
    sums = zoo.read_manifest(model_id)
    sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    zoo.write_manifest(model_id, sums)
    return name


def test_nan_in_an_epoch_that_trained_ok(zoo, ids):
    name = _write_nan(zoo, ids[2], 1)
    report = verify_zoo(zoo.root, progress=False)
    assert [(p.model_id, p.epoch, p.kind) for p in report.problems] == [(ids[2], 1, "nan")]
    assert name in report.problems[0].message
    # The engine writes a state it finds non-finite as it is, and marks the epoch diverged: allowed.
    rows = zoo.read_metrics(ids[2])
    rows[1]["status"] = "diverged"
    zoo.write_metrics(ids[2], rows)
    report = verify_zoo(zoo.root, progress=False)
    assert report.problems == [] and report.nonfinite_diverged == 1
    assert "finite but 1 of diverged epochs" in report.summary()


def test_missing_epochs_are_listed_by_number(zoo, ids, capsys):
    zoo.checkpoint(ids[0], 1).unlink()
    zoo.write_metrics(ids[1], zoo.read_metrics(ids[1])[:2])  # epoch 2's line lost
    zoo.metrics_path(ids[2]).unlink()
    for epoch in range(3):
        zoo.checkpoint(ids[2], epoch).unlink()
    report = verify_zoo(zoo.root, progress=False)
    assert [str(p) for p in report.problems] == [
        f"{ids[0]} epoch 1: missing (no checkpoint file)",
        f"{ids[1]} epoch 2: missing (no metrics row)",
        f"{ids[2]}: epochs 0-2: missing (no checkpoint and no metrics row)",
    ]
    assert bad_models(report.problems) == {
        ids[0]: ["epoch 1: missing (no checkpoint file)"],
        ids[1]: ["epoch 2: missing (no metrics row)"],
        ids[2]: ["epochs 0-2: missing (no checkpoint and no metrics row)"],
    }
    assert main(["verify", str(zoo.root)]) == 1
    assert "3 of 3 models have problems" in capsys.readouterr().out


def test_a_zoo_without_manifests_is_a_warning_not_a_problem(zoo, ids, capsys, monkeypatch):
    zoo.manifest_path(ids[0]).unlink()
    sums = zoo.read_manifest(ids[1])
    del sums["epoch_000.safetensors"]
    zoo.write_manifest(ids[1], sums)
    report = verify_zoo(zoo.root, progress=False)
    assert [(p.model_id, p.epoch, p.kind) for p in report.problems] == [
        (ids[0], None, "no-manifest"), (ids[1], 0, "no-manifest"),
    ]
    assert all(p.is_warning for p in report.problems) and report.bad == {}
    assert main(["verify", str(zoo.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{ids[0]}: warning: no SHA256SUMS (trained before manifests were written): checksums not checked"
    assert out[-1] == "all 3 models verified: 9 checkpoints, 5 by sha256 (4 without a manifest line) and finite"
    for model_id in ids:
        zoo.manifest_path(model_id).unlink(missing_ok=True)
    assert verify_zoo(zoo.root, progress=False).summary() == (
        "all 3 models verified: 9 checkpoints, no sha256 (no manifest lines) and finite"
    )
    monkeypatch.setattr("modelzoos.cli.WARNINGS_SHOWN", 1)  # a big old zoo: a warning per model
    assert main(["verify", str(zoo.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{ids[0]}: warning") and out[1] == "... and 2 more warnings like these" and len(out) == 3


def test_damaged_config_metrics_and_manifest(zoo, ids):
    zoo.config_path(ids[0]).unlink()
    config = json.loads(zoo.config_path(ids[1]).read_text())
    config["factors"]["seed"] = 99
    zoo.config_path(ids[1]).write_text(json.dumps(config))
    zoo.manifest_path(ids[2]).write_text("not a checksum line\n")
    text = zoo.metrics_path(ids[2]).read_text()
    zoo.metrics_path(ids[2]).write_text(text[: len(text) - 10])  # the last line cut short
    problems = verify_zoo(zoo.root, progress=False).problems
    assert [(p.model_id, p.epoch, p.kind) for p in problems] == [
        (ids[0], None, "config"), (ids[1], None, "config"),
        (ids[2], None, "unreadable"), (ids[2], None, "unreadable"), (ids[2], 2, "missing"),
    ]
    assert [p.message for p in problems[:4]] == [
        "config.json missing",
        "config.json disagrees with zoo.yaml on factors",
        "metrics.jsonl line 3: not a metrics row (JSON with an integer 'epoch')",
        "SHA256SUMS damaged, checksums not checked "
        f"({zoo.manifest_path(ids[2])} line 1: not a `sha256sum` line ('<64 hex digits>  <file name>'): "
        "'not a checksum line')",
    ]


def test_not_a_zoo_directory_gives_one_message(zoo, tmp_path, capsys):
    assert main(["verify", str(tmp_path / "empty")]) == 1
    assert "is not a zoo directory (no zoo.yaml)" in capsys.readouterr().err
    hub = tmp_path / "hub"
    (hub / "metadata").mkdir(parents=True)
    shutil.copyfile(zoo.spec_path, hub / "zoo.yaml")
    with pytest.raises(ModelzoosError, match="is a hub folder .* verify the zoo directory"):
        verify_zoo(hub)


def test_problem_lines():
    assert str(Problem("abc", 3, "checksum", "checksum mismatch")) == "abc epoch 3: checksum mismatch"
    assert Problem("abc", None, "no-manifest", "no SHA256SUMS").line(model=False) == "warning: no SHA256SUMS"
    problems = [Problem("abc", None, "no-manifest", "x"), Problem("def", 0, "nan", "y")]
    assert bad_models(problems) == {"def": ["epoch 0: y"]}


def test_build_refuses_a_damaged_zoo_or_leaves_its_bad_models_out(zoo, ids, capsys):
    from modelzoos.hub import build_hub

    build_hub(zoo.root)
    before = {p: p.read_bytes() for p in zoo.hub_dir.rglob("*") if p.is_file()}
    path = zoo.checkpoint(ids[1], 2)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the last weight: still a valid safetensors file
    path.write_bytes(bytes(data))
    assert main(["build", str(zoo.root)]) == 1
    err = capsys.readouterr().err
    assert f"1 of 3 models have problems ({ids[1]}: epoch 2: checksum mismatch" in err and "--skip-bad-models" in err
    assert {p: p.read_bytes() for p in zoo.hub_dir.rglob("*") if p.is_file()} == before  # the old folder is kept
    assert main(["build", str(zoo.root), "--skip-bad-models"]) == 0
    ds = datasets.load_dataset(str(zoo.hub_dir), "weights")
    assert {r for split in ds.values() for r in split["model_id"]} == {ids[0], ids[2]}
    card = (zoo.hub_dir / "README.md").read_text()
    assert ids[1] in card and "checksum mismatch" in card
