"""The command line: exit codes and messages, as a user meets them."""

import subprocess
import sys

import datasets

from modelzoos.cli import main

from conftest import write_spec


def test_list_and_show(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "digits-cnn-s" in out and "2,464" in out and "embedded:digits" in out
    assert main(["show", "digits-cnn-s"]) == 0
    assert "= 50 models" in capsys.readouterr().out
    assert main(["show", "digits-vit"]) == 0
    out = capsys.readouterr().out
    assert "# stage pretrain: 3 models (from scratch)" in out and "# stage finetune: 64 models (from each 'pretrain' and 'simclr' model)" in out


def test_run_trains_builds_and_summarizes(tiny_spec_path, tmp_path, capsys):
    out = tmp_path / "zoo"
    assert main(["run", str(tiny_spec_path), "--out", str(out), "--max-models", "2", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2 models x 1 epochs" in printed and "final test accuracy: mean" in printed
    assert f'load_dataset("{(out / "hub").resolve()}")' in printed
    ds = datasets.load_dataset(str(out / "hub"), "weights")
    assert sum(len(s) for s in ds.values()) == 2 * 2


def test_bad_inputs_give_one_message_and_nonzero_exit(tmp_path, capsys):
    bad_key = write_spec(tmp_path / "bad.yaml", training={"epochz": 1})
    bad_type = write_spec(tmp_path / "type.yaml", training={"batch_size": 3.5})
    broken = tmp_path / "broken.yaml"
    broken.write_text("grid: {seed: [1, 2\n")
    cases = [
        (["show", "no-such-zoo"], "unknown zoo 'no-such-zoo'"),
        (["train", str(bad_key), "--out", str(tmp_path / "z")], "unknown key 'training.epochz'"),
        (["show", str(broken)], "not valid YAML"),
        (["run", str(bad_type), "--out", str(tmp_path / "x")], "'training.batch_size' must be an integer"),
        (["build", str(tmp_path / "empty")], "is not a zoo directory"),
        (["train", "digits-cnn-s", "--out", str(tmp_path / "y"), "--image-dataset", str(tmp_path / "gone")], "cannot load split"),
        (["run", "digits-cnn-s", "--out", str(tmp_path / "x"), "--epochs", "-1"], "--epochs must be at least 1"),
        (["run", "digits-cnn-s", "--out", str(tmp_path / "x"), "--group-size", "0"], "--group-size must be at least 1"),
        (["train", "digits-cnn-s", "--out", str(tmp_path / "a-file")], "is a file"),
    ]
    (tmp_path / "a-file").write_text("keep me")
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("modelzoos: error: ") and message in err
    for out in ("z", "x", "y"):
        assert not (tmp_path / out).exists()
    assert (tmp_path / "a-file").read_text() == "keep me"


def test_out_dir_with_a_different_zoo_exits_nonzero(tiny_zoo, capsys):
    spec, root = tiny_zoo
    assert main(["train", str(root / "zoo.yaml"), "--out", str(root), "--epochs", "7"]) == 1
    err = capsys.readouterr().err
    assert "holds a different zoo" in err and "training.epochs is 2 there, 7 now" in err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "modelzoos", "show", "nope"], capture_output=True, text=True)
    assert done.returncode == 1 and "unknown zoo 'nope'" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
