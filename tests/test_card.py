"""The dataset card's plots, summary and the models a build left out, on the tiny zoo."""

import dataclasses
import hashlib
import json
import re
import shutil

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from modelzoos.builder.rows import METRICS, named_layouts
from modelzoos.hub import build_hub
from modelzoos.hub_cards import render_card, summarize
from modelzoos.hub_cards.plots import accuracy_figure, shown_epochs
from modelzoos.hub_cards.summary import final_rows, read_metadata, stage_order
from modelzoos.shards import HubConfig, SplitFiles
from modelzoos.spec import load_spec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assets(hub):
    return {p.name: p.read_bytes() for p in sorted((hub / "assets").glob("*.png"))}


def _configs(hub):
    """The configs of a built hub folder, read back from its files (render_card's `configs`)."""
    out = []
    for name in ("metadata", "weights", "final"):
        files = sorted((hub / name).glob("*.parquet"))
        config = HubConfig(name, name, datasets.Features.from_arrow_schema(pq.read_schema(files[0])), name)
        for f in files:
            config.splits.setdefault(f.name.split("-")[0], SplitFiles()).files.append(f)
        out.append(config)
    return out


def _section(card, heading):
    start = card.index(heading)
    end = card.find("\n## ", start + len(heading))
    return card[start : end if end != -1 else None]


def test_plots_are_pngs_in_the_hub_folder_shown_in_the_card(tiny_zoo):
    _, root = tiny_zoo
    hub = root / "hub"
    pngs = _assets(hub)
    assert sorted(pngs) == ["accuracy_per_epoch.png", "generalization_gap.png"]
    for data in pngs.values():
        assert data.startswith(PNG_MAGIC)
        assert len(data) < 100_000  # read on the web
        assert b"matplotlib" not in data  # no Software entry: it would tie the bytes to a version
    card = (hub / "README.md").read_text()
    summary = _section(card, "## Summary")
    # every PNG linked from the card with a path relative to it, each with a caption after it
    assert sorted(re.findall(r"!\[[^\]]+\]\((assets/[^)]+\.png)\)\n\n\S", summary)) == [f"assets/{n}" for n in pngs]


def test_summary_gives_the_final_accuracy_quartiles(tiny_zoo):
    _, root = tiny_zoo
    table = pa.concat_tables(read_metadata(root / "hub").values())
    final = sorted(final_rows(table)["test_acc"].to_pylist())
    assert len(final) == 3
    summary = _section((root / "hub" / "README.md").read_text(), "## Summary")
    # 3 models: the quartiles interpolate halfway between neighbours
    quartiles = [(final[0] + final[1]) / 2, final[1], (final[1] + final[2]) / 2]
    numbers = [sum(final) / 3, final[0], *quartiles, final[2]]
    row = "| all | 3 | 0 | " + " | ".join(f"{x:.4f}" for x in numbers) + " |"
    assert row in summary
    assert "No faulty models" in summary


def test_plots_are_the_same_bytes_in_every_build(tiny_zoo, tmp_path):
    _, root = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("hub"))
    first = {n: hashlib.sha256(d).hexdigest() for n, d in _assets(build_hub(copy)).items()}
    card = (copy / "hub" / "README.md").read_text()
    second = {n: hashlib.sha256(d).hexdigest() for n, d in _assets(build_hub(copy)).items()}
    assert len(first) == 2 and first == second
    assert (copy / "hub" / "README.md").read_text() == card
    assert first == {n: hashlib.sha256(d).hexdigest() for n, d in _assets(root / "hub").items()}


def test_a_zoo_with_diverged_models_builds_and_lists_them(tiny_zoo, tmp_path):
    spec, root = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("hub"))
    ids = sorted(m.model_id for m in spec.models())
    # the first diverged with every metric undefined (NaN, stored as null), the second froze with finite ones
    for model_id, undefined in ((ids[0], True), (ids[1], False)):
        path = copy / "models" / model_id / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows[1:]:
            row["status"] = "diverged"
            if undefined:
                row.update({k: None for k in METRICS})
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hub = build_hub(copy)
    assert all(d.startswith(PNG_MAGIC) for d in _assets(hub).values()) and len(_assets(hub)) == 2
    card = (hub / "README.md").read_text()
    summary = _section(card, "## Summary")
    assert f"2 faulty models (the last row's `status` is \"diverged\"): `{ids[0]}`, `{ids[1]}`." in summary
    assert "| all | 3 (1 without a test accuracy) | 2 |" in summary
    assert "red crosses are diverged models (1 without a train or test accuracy left out)" in summary
    assert "| faulty models | 2 " in card
    # the undefined accuracies leave the boxes of the others' (a NaN among them would blank the box)
    table = pa.concat_tables(read_metadata(hub).values())
    ax = accuracy_figure(table, stage_order(final_rows(table))).axes[0]
    assert len(ax.patches) == 2 * 3 and all(np.isfinite(line.get_ydata()).all() for line in ax.lines)


def test_a_stage_without_any_final_accuracy_shows_dashes(tiny_zoo):
    _, root = tiny_zoo
    hub = root / "hub"
    spec = load_spec(hub / "zoo.yaml")
    summary = summarize(hub)
    undefined = {k: None for k in ("mean", "min", "q1", "median", "q3", "max")}
    summary = dataclasses.replace(summary, stages={"train": {**summary.stages["train"], **undefined, "defined": 0}})
    card = str(render_card(spec, named_layouts(spec), summary, hub, _configs(hub)))
    assert "| all | 3 (3 without a test accuracy) | 0 | – | – | – | – | – | – |" in card


def test_a_card_lists_the_models_the_build_left_out(tiny_zoo):
    _, root = tiny_zoo
    hub = root / "hub"
    spec = load_spec(hub / "zoo.yaml")
    args = (spec, named_layouts(spec), summarize(hub), hub, _configs(hub))
    assert "## Models left out" not in str(render_card(*args))
    assert "## Models left out" not in str(render_card(*args, skipped={}))
    skipped = {
        "ffff00000002": ["epoch_002.safetensors: truncated"],
        "ffff00000001": ["metrics.jsonl:\nline 3 is not JSON", "no config.json"],
    }
    card = str(render_card(*args, skipped=skipped))
    left_out = _section(card, "## Models left out")
    assert left_out.startswith("## Models left out\n\n2 models of the spec are not in this dataset")
    assert "The tables do not hold\nthem" in left_out
    assert left_out.index("- `ffff00000001`: metrics.jsonl: line 3 is not JSON; no config.json\n") < left_out.index(
        "- `ffff00000002`: epoch_002.safetensors: truncated\n"
    )
    assert yaml.safe_load(card.split("---")[1])["configs"]  # the metadata still parses
    one = str(render_card(*args, skipped={"ffff00000001": ["no config.json"]}))
    assert "1 model of the spec is not in this dataset" in one


def test_epochs_shown_per_panel():
    assert shown_epochs(2) == [0, 1, 2] and shown_epochs(15) == list(range(16))
    assert shown_epochs(50) == list(range(0, 51, 5)) and shown_epochs(90) == list(range(0, 91, 10))
    assert shown_epochs(31) == [0, 5, 10, 15, 20, 25, 30, 31]
    for last in range(300):
        epochs = shown_epochs(last)
        assert epochs[0] == 0 and epochs[-1] == last and len(epochs) <= 16 and epochs == sorted(set(epochs))


def test_one_panel_for_a_single_stage_zoo(tiny_zoo):
    _, root = tiny_zoo
    table = pa.concat_tables(read_metadata(root / "hub").values())
    fig = accuracy_figure(table, stage_order(final_rows(table)))
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["3 models"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]
