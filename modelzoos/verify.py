"""`modelzoos verify`: is a raw zoo directory still what training wrote?

For every model the spec lists: its config.json is there, valid and the spec's; every epoch 0..E
has a metrics row and a checkpoint; each checkpoint's sha256 is its line in SHA256SUMS; it opens
with safetensors; and its floating tensors are finite unless that epoch's metrics row says the
model diverged. (The engine never applies a non-finite update and freezes a diverged model at its
last finite weights, so in practice every checkpoint is finite. Its last-resort check writes a state
it finds non-finite as it is, and marks that epoch diverged; NaN or inf in any other epoch is damage.)

A missing SHA256SUMS, or a checkpoint without a line in it, is a warning, not a problem: a zoo
trained before manifests were written has none, and its checkpoints are still checked for
readability and finiteness. Refusing it would make every older zoo unpublishable. The manifest
guards against accidents (a bad disk, a botched copy), not against someone editing files: whoever
can change a checkpoint can change SHA256SUMS too.

`verify_zoo` returns a `Verification`; `bad_models` is what `build` refuses (or skips).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from tqdm.auto import tqdm

from .builder.rows import stage_of
from .errors import ModelzoosError
from .spec import ModelEntry, ZooSpec
from .zoo_dir import ZooDir, model_record

# Problems that leave a model usable: reported, but not in `bad_models`
WARNING_KINDS = frozenset({"no-manifest"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one model.

    kind: "config" (config.json missing, invalid or not the spec's), "missing" (epochs without a
    checkpoint or metrics row), "checksum" (a checkpoint differs from its SHA256SUMS line),
    "unreadable" (a checkpoint, metrics.jsonl or SHA256SUMS that cannot be parsed), "nan" (NaN or
    inf in an epoch not marked diverged), or the warning "no-manifest" (no SHA256SUMS, or no line
    in it: trained before manifests were written).
    epoch: the epoch concerned; None for the model as a whole, or for several epochs (the message
    names them).
    """

    model_id: str
    epoch: int | None
    kind: str
    message: str

    @property
    def is_warning(self) -> bool:
        return self.kind in WARNING_KINDS

    def line(self, model: bool = True) -> str:
        """"<model_id> epoch 3: checksum mismatch (...)"; without the model id for model=False."""
        where = [self.model_id] if model else []
        where += [f"epoch {self.epoch}"] if self.epoch is not None else []
        text = f"{'warning: ' if self.is_warning else ''}{self.message}"
        return f"{' '.join(where)}: {text}" if where else text

    def __str__(self) -> str:
        return self.line()


@dataclass
class Verification:
    """What `verify_zoo` found: the problems, in the spec's model order, and what it checked."""

    root: Path
    models: int  # models the spec lists
    problems: list[Problem] = field(default_factory=list)
    checkpoints: int = 0  # checkpoint files read and parsed
    checksummed: int = 0  # checkpoints whose sha256 is their SHA256SUMS line
    nonfinite_diverged: int = 0  # checkpoints non-finite in an epoch marked diverged (allowed)

    @property
    def bad(self) -> dict[str, list[str]]:
        return bad_models(self.problems)

    def summary(self) -> str:
        """One line: how many models have problems, or what was verified."""
        bad = self.bad
        if bad:
            return (
                f"{len(bad)} of {self.models} models have problems; to train one again, delete "
                f"{self.root / 'models' / '<model_id>'} and re-run the same `modelzoos train` command"
            )
        unchecked = self.checkpoints - self.checksummed
        if not unchecked:
            hashed = "sha256"
        elif not self.checksummed:
            hashed = "no sha256 (no manifest lines)"
        else:
            hashed = f"{self.checksummed} by sha256 ({unchecked} without a manifest line)"
        finite = "finite" if not self.nonfinite_diverged else (
            f"finite but {self.nonfinite_diverged} of diverged epochs (as their metrics say)"
        )
        return f"all {self.models} models verified: {self.checkpoints} checkpoints, {hashed} and {finite}"


def bad_models(problems: list[Problem]) -> dict[str, list[str]]:
    """model_id -> its problems as lines ("epoch 3: checksum mismatch (...)"), warnings left out,
    for every model with at least one; in the order of `problems`."""
    out: dict[str, list[str]] = {}
    for p in problems:
        if not p.is_warning:
            out.setdefault(p.model_id, []).append(p.line(model=False))
    return out


def verify_zoo(zoo_dir: str | Path, progress: bool = True) -> Verification:
    """Check every model of the raw zoo directory `zoo_dir` (see the module docstring); reads and
    hashes every checkpoint. What it finds is in the report; it raises ModelzoosError only when
    `zoo_dir` is not a zoo directory (or its zoo.yaml is damaged)."""
    zoo = ZooDir(zoo_dir)
    if zoo.is_hub_folder():
        raise ModelzoosError(
            f"{zoo.root} is a hub folder written by `modelzoos build`; verify the zoo directory (its parent)"
        )
    spec = zoo.load_spec()
    entries = spec.models()
    report = Verification(zoo.root, len(entries))
    # progress=False turns the bar off; otherwise tqdm's own TQDM_DISABLE may
    bar = tqdm(entries, desc=f"verifying {spec.name}", unit="model", **({} if progress else {"disable": True}))
    for entry in bar:
        report.problems.extend(_verify_model(zoo, spec, entry, report))
    return report


def _verify_model(zoo: ZooDir, spec: ZooSpec, entry: ModelEntry, report: Verification) -> list[Problem]:
    model_id = entry.model_id
    problems: list[Problem] = []

    def problem(kind: str, message: str, epochs: list[int] | None = None) -> None:
        """One problem of the model, of one epoch, or of several (named in the message)."""
        if epochs is not None and len(epochs) == 1:
            problems.append(Problem(model_id, epochs[0], kind, message))
        else:
            where = f"{_epochs(epochs)}: " if epochs else ""
            problems.append(Problem(model_id, None, kind, where + message))

    wrong = _check_config(zoo, spec, entry)
    if wrong:
        problem("config", wrong)

    rows, bad_lines = _read_metrics(zoo, model_id)
    if bad_lines:
        lines = f"line{'s' if len(bad_lines) > 1 else ''} {', '.join(map(str, bad_lines))}"
        problem("unreadable", f"metrics.jsonl {lines}: not a metrics row (JSON with an integer 'epoch')")

    sums: dict[str, str] | None = None
    if zoo.manifest_path(model_id).is_file():
        try:
            sums = zoo.read_manifest(model_id)
        except ModelzoosError as e:
            # its message without the advice to re-train, which the summary gives once
            problem("unreadable", f"SHA256SUMS damaged, checksums not checked ({str(e).rsplit('; ', 1)[0]})")
    else:
        problem("no-manifest", "no SHA256SUMS (trained before manifests were written): checksums not checked")

    epochs = list(range(stage_of(spec, entry).training.epochs + 1))
    no_row = [e for e in epochs if e not in rows]
    no_file = [e for e in epochs if not zoo.checkpoint(model_id, e).is_file()]
    missing = {
        "no checkpoint and no metrics row": [e for e in no_row if e in no_file],
        "no checkpoint file": [e for e in no_file if e not in no_row],
        "no metrics row": [e for e in no_row if e not in no_file],
    }
    for what, which in missing.items():
        if which:
            problem("missing", f"missing ({what})", which)

    unlisted = []
    for epoch in epochs:
        if epoch in no_file:
            continue
        path = zoo.checkpoint(model_id, epoch)
        try:
            data = path.read_bytes()
        except OSError as e:
            problem("unreadable", f"cannot read {path.name}: {e.strerror}", [epoch])
            continue
        if sums is not None:
            expected = sums.get(path.name)
            if expected is None:
                unlisted.append(epoch)
            elif hashlib.sha256(data).hexdigest() != expected:
                problem("checksum", "checksum mismatch (file changed after training)", [epoch])
            else:
                report.checksummed += 1
        try:
            tensors = safetensors.torch.load(data)
        except Exception as e:  # noqa: BLE001 (whatever safetensors cannot parse is damaged)
            problem("unreadable", f"{path.name} is not a readable safetensors file ({_first_line(e)})", [epoch])
            continue
        report.checkpoints += 1
        nonfinite = [n for n, t in tensors.items() if t.is_floating_point() and not _finite(t)]
        if nonfinite:
            if rows.get(epoch, {}).get("status") == "diverged":
                report.nonfinite_diverged += 1
            else:
                shown = ", ".join(nonfinite[:3]) + (", ..." if len(nonfinite) > 3 else "")
                message = f"NaN or inf in {len(nonfinite)} tensor(s) ({shown}) of an epoch not marked diverged"
                problem("nan", message, [epoch])
    if unlisted:
        problem("no-manifest", "no line in SHA256SUMS (written before manifests were): checksum not checked", unlisted)
    return sorted(problems, key=lambda p: (p.epoch is not None, p.epoch or 0))


def _check_config(zoo: ZooDir, spec: ZooSpec, entry: ModelEntry) -> str | None:
    """What is wrong with the model's config.json, or None. `build` takes its rows' factors and
    lineage from it, so it must say what the spec says."""
    path = zoo.config_path(entry.model_id)
    if not path.is_file():
        return "config.json missing"
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"config.json not valid JSON ({e})"
    if not isinstance(config, dict):
        return "config.json is not a JSON object"
    expected = model_record(stage_of(spec, entry), entry)
    differ = [k for k, v in expected.items() if config.get(k, _ABSENT) != v]
    if differ:
        return f"config.json disagrees with zoo.yaml on {', '.join(differ)}"
    return None


_ABSENT = object()


def _read_metrics(zoo: ZooDir, model_id: str) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """The metrics rows by epoch, and the numbers of lines that are not rows (kept going past
    them, so the rest of the model is still checked)."""
    path = zoo.metrics_path(model_id)
    if not path.is_file():
        return {}, []
    rows, bad = {}, []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and type(row.get("epoch")) is int:
            rows[row["epoch"]] = row
        else:
            bad.append(n)
    return rows, bad


def _epochs(epochs: list[int]) -> str:
    """[0, 1, 2, 5] -> "epochs 0-2, 5": a model missing all its epochs takes one line."""
    runs: list[list[int]] = []
    for e in epochs:
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"epoch{'s' if len(epochs) > 1 else ''} {text}"


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _finite(t: torch.Tensor) -> bool:
    """No NaN or inf in `t`. A sum is NaN or inf whenever an element is, and costs no boolean
    tensor (isfinite per element took most of `build`'s time); a sum that overflows falls back."""
    return math.isfinite(t.sum(dtype=torch.float64).item()) or bool(torch.isfinite(t).all())
