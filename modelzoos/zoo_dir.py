"""The raw zoo directory: where training writes and the builder reads.

    DIR/zoo.yaml                                  the resolved spec, frozen at the first run
    DIR/models/<model_id>/config.json             factors, architecture, stage, parent
    DIR/models/<model_id>/epoch_000.safetensors   initial weights; one file per epoch after
    DIR/models/<model_id>/SHA256SUMS              the sha256 of every checkpoint, as training wrote it
    DIR/models/<model_id>/metrics.jsonl           one line per finished epoch
    DIR/models/<model_id>/state.pt                optimizer state for resume; never published
    DIR/cache/images-<key>.safetensors            the preprocessed image tensors; never published
    DIR/hub/                                      what `build` writes

Both sides use these paths and readers, so the layout is written down once.

SHA256SUMS is in the format of coreutils `sha256sum` (`<64 hex digits>  epoch_000.safetensors`, one
line per checkpoint, sorted by file name), so `cd DIR/models/<model_id> && sha256sum -c SHA256SUMS`
checks a model without this package. Training hashes each checkpoint's bytes as it writes them and
rewrites the file before the epoch's metrics line (the commit point), so every committed epoch has
its line; `modelzoos verify` compares. One file per model, not one for the zoo: the processes of
`accelerate launch` write different models at the same time. A zoo trained before manifests were
written has none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .errors import ModelzoosError
from .spec import ModelEntry, ZooSpec, spec_from_dict


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; zoo files are meant to be shared.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary name beside `path`, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_record(own: ZooSpec, entry: ModelEntry) -> dict[str, Any]:
    """What a model's config.json says of it, as JSON holds it: its id, lineage, factors and the
    module that rebuilds it. `own` is the spec it trained under (its stage's, in a staged zoo).
    Training writes it (with more beside it); `verify` checks it, since `build` reads rows from it."""
    record = {
        "model_id": entry.model_id,
        "stage": entry.stage,
        "parent_id": entry.parent_id,
        "parent_epoch": entry.parent_epoch,
        "factors": dataclasses.asdict(entry.factors),
        "architecture": own.architecture.name,
        "architecture_args": own.architecture_args(entry.factors),
    }
    return json.loads(json.dumps(record))  # tuples as the lists JSON reads back


class ZooDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def spec_path(self) -> Path:
        return self.root / "zoo.yaml"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    def image_cache(self, key: str) -> Path:
        """Preprocessed image tensors, so a resume (and every process) skips decoding."""
        return self.root / "cache" / f"images-{key}.safetensors"

    def model_dir(self, model_id: str) -> Path:
        return self.models_dir / model_id

    def checkpoint(self, model_id: str, epoch: int) -> Path:
        return self.model_dir(model_id) / f"epoch_{epoch:03d}.safetensors"

    def config_path(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "config.json"

    def metrics_path(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "metrics.jsonl"

    def manifest_path(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "SHA256SUMS"

    def state_path(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "state.pt"

    def load_spec(self) -> ZooSpec:
        import yaml

        if not self.spec_path.is_file():
            raise ModelzoosError(
                f"{self.root} is not a zoo directory (no zoo.yaml); train one with "
                "`modelzoos train ZOO --out DIR`"
            )
        try:
            data = yaml.safe_load(self.spec_path.read_text())
        except yaml.YAMLError as e:
            raise ModelzoosError(f"{self.spec_path}: damaged, not valid YAML: {e}") from None
        return spec_from_dict(data, where=str(self.spec_path))

    def is_hub_folder(self) -> bool:
        """A folder `build` wrote (it carries a zoo.yaml too, but no models). Every hub folder has
        the `metadata` config; layout.json only a zoo of one layout (a staged zoo has layouts/)."""
        return (self.root / "metadata").is_dir() and not self.models_dir.exists()

    def read_config(self, model_id: str) -> dict[str, Any]:
        path = self.config_path(model_id)
        if not path.is_file():
            raise ModelzoosError(f"{path} is missing; {_REPAIR.format(dir=self.model_dir(model_id))}")
        return _parse_json(path, path.read_text())

    def read_metrics(self, model_id: str) -> list[dict[str, Any]]:
        """The finished epochs of a model, in order; an absent file means none."""
        path = self.metrics_path(model_id)
        if not path.is_file():
            return []
        return [_parse_json(path, line) for line in path.read_text().splitlines() if line.strip()]

    def write_metrics(self, model_id: str, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.metrics_path(model_id), "".join(json.dumps(r) + "\n" for r in rows))

    def read_manifest(self, model_id: str) -> dict[str, str]:
        """The sha256 (lowercase hex) of each checkpoint by file name; an absent file means none."""
        path = self.manifest_path(model_id)
        if not path.is_file():
            return {}
        sums = {}
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            match = _MANIFEST_LINE.fullmatch(line)
            if match is None:
                raise ModelzoosError(
                    f"{path} line {n}: not a `sha256sum` line ('<64 hex digits>  <file name>'): {line[:80]!r}; "
                    + _REPAIR.format(dir=path.parent)
                )
            sums[match["name"]] = match["digest"].lower()
        return sums

    def write_manifest(self, model_id: str, sums: dict[str, str]) -> None:
        """SHA256SUMS from {file name: sha256 hex}, as `sha256sum` writes it."""
        atomic_write(self.manifest_path(model_id), "".join(f"{sums[name]}  {name}\n" for name in sorted(sums)))


# sha256sum writes "<digest>  <name>" (text mode) or "<digest> *<name>" (binary mode); read both
_MANIFEST_LINE = re.compile(r"(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>.+)")
_REPAIR = "the zoo directory is damaged: delete {dir} and re-run the same `modelzoos train` command"


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelzoosError(f"{path}: not valid JSON ({e}); {_REPAIR.format(dir=path.parent)}") from None
