"""The card's plots: PNGs under the hub folder's `assets/`, drawn from its metadata tables only.

Drawn on a bare `Figure` with the Agg canvas, not pyplot, so building a card neither needs a
display nor changes the caller's matplotlib state. The PNGs carry no software version, so the same
tables give the same bytes (with the same matplotlib and fonts).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..zoo_dir import atomic_write
from .summary import final_rows, read_metadata, stage_order

ASSETS_DIR = "assets"
# Epochs per panel: a train and a test box each, so 32 boxes at most across a 700-pixel figure.
MAX_EPOCHS_SHOWN = 16
NICE_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)
DPI = 100
WIDTH = 7.0  # inches; the Hub shows a card about 700 pixels wide
TEST, TRAIN = "tab:blue", "tab:orange"
COLUMNS = ["model_id", "stage", "parent_id", "epoch", "train_acc", "test_acc", "status"]  # what the plots read
STAGE_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


@dataclass(frozen=True)
class Plot:
    path: str  # relative to the hub folder, as the card links it
    alt: str
    caption: str  # what the plot shows and what to look for


def write_plots(hub_dir: Path) -> list[Plot]:
    """Draw the card's plots from `hub_dir`'s metadata tables into `hub_dir/assets/`."""
    table = pa.concat_tables([t.select(COLUMNS) for t in read_metadata(hub_dir).values()])
    final = final_rows(table)
    stages = stage_order(final)
    last = {name: pc.max(table.filter(pc.equal(table["stage"], name))["epoch"]).as_py() for name in stages}
    per_stage = ", one panel per stage" if len(stages) > 1 else ""
    every = "; epochs thinned to a round step, with the first and the last" if any(
        len(shown_epochs(e)) < e + 1 for e in last.values()
    ) else ""
    defined = np.isfinite(_floats(final["train_acc"])) & np.isfinite(_floats(final["test_acc"]))
    missing = int((~defined).sum())
    crosses = bool((defined & (np.asarray(final["status"].to_pylist(), dtype=object) != "ok")).any())
    return [
        Plot(
            _save(accuracy_figure(table, stages), hub_dir, "accuracy_per_epoch.png"),
            "train and test accuracy per epoch, box plots over the models",
            f"Train (orange) and test (blue) accuracy of the models at each epoch{per_stage}{every}: a box spans "
            "the middle half of the models (the line is the median), its whiskers reach the farthest models within "
            "1.5 box heights, dots are the models beyond. It shows how fast the population learns, how widely it "
            "spreads, and from which epoch train and test accuracy part.",
        ),
        Plot(
            _save(generalization_figure(final, stages), hub_dir, "generalization_gap.png"),
            "train against test accuracy at the last epoch, one dot per model",
            "Each model's train against its test accuracy at its last epoch"
            + (", coloured by stage" if len(stages) > 1 else "")
            + ": a dot's height below the dashed diagonal is its generalization gap (the `ggap` column), so "
            "a cloud hugging the diagonal generalizes, one sagging below it overfits"
            + ("; red crosses are diverged models" if crosses else "")
            + (f" ({missing} without a train or test accuracy left out)" if missing else "")
            + ".",
        ),
    ]


def shown_epochs(last: int) -> list[int]:
    """Every epoch from 0 to `last` where they fit in a panel, else every n-th for a round n, and
    the last one."""
    step = next((s for s in NICE_STEPS if last // s + 1 + (last % s > 0) <= MAX_EPOCHS_SHOWN), NICE_STEPS[-1])
    epochs = list(range(0, last + 1, step))
    return epochs if epochs[-1] == last else [*epochs, last]


def accuracy_figure(table: pa.Table, stages: list[str]) -> Figure:
    """Box plots of train and test accuracy over the models per epoch, a panel per stage (in
    `stages`' order). `table`: metadata rows with at least `COLUMNS`."""
    fig = _figure(WIDTH, 0.6 + 2.2 * len(stages))
    epoch = table["epoch"].to_numpy()
    stage = np.asarray(table["stage"].to_pylist(), dtype=object)
    model_id = np.asarray(table["model_id"].to_pylist(), dtype=object)
    for i, name in enumerate(stages):
        ax = fig.add_subplot(len(stages), 1, i + 1)
        in_stage = stage == name
        epochs = shown_epochs(int(epoch[in_stage].max()))
        for column, color, offset in (("train_acc", TRAIN, -0.2), ("test_acc", TEST, 0.2)):
            values = _floats(table[column])
            groups = [values[in_stage & (epoch == e)] for e in epochs]
            # null accuracies (a diverged model's, or no validation images) are no values to draw
            kept = [(k, g[np.isfinite(g)]) for k, g in enumerate(groups)]
            kept = [(k, g) for k, g in kept if len(g)]
            if not kept:
                continue
            ax.boxplot(
                [g for _, g in kept], positions=[k + offset for k, _ in kept], widths=0.35, patch_artist=True,
                boxprops={"facecolor": color, "alpha": 0.45, "edgecolor": color},
                medianprops={"color": "black", "linewidth": 1},
                whiskerprops={"color": color}, capprops={"color": color},
                flierprops={"marker": ".", "markersize": 2, "markerfacecolor": color, "markeredgecolor": color},
            )
        ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
        ax.set_xlim(-0.6, len(epochs) - 0.4)
        models = len(set(model_id[in_stage]))
        counted = f"{models} model{'s' if models > 1 else ''}"
        ax.set_title(counted if len(stages) == 1 else f"stage {name}: {counted}", fontsize=9, loc="left")
        ax.set_ylabel("accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    fig.axes[-1].set_xlabel("epoch", fontsize=8)
    fig.legend(
        handles=[Patch(facecolor=TRAIN, alpha=0.45, label="train"), Patch(facecolor=TEST, alpha=0.45, label="test")],
        loc="upper right", fontsize=7, ncols=2, frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / fig.get_figheight()))
    return fig


def generalization_figure(final: pa.Table, stages: list[str]) -> Figure:
    """Train against test accuracy of each model at its last epoch, with the diagonal; a colour per
    stage, diverged models as red crosses. `final`: `final_rows` of a table as `accuracy_figure`'s."""
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    train, test = _floats(final["train_acc"]), _floats(final["test_acc"])
    ok = np.asarray(final["status"].to_pylist(), dtype=object) == "ok"
    stage = np.asarray(final["stage"].to_pylist(), dtype=object)
    defined = np.isfinite(train) & np.isfinite(test)
    size = 12 if final.num_rows <= 200 else 4  # thousands of models blur into one cloud at 12
    handles = []
    for i, name in enumerate(stages):
        pick = defined & ok & (stage == name)
        color = STAGE_COLORS[i % len(STAGE_COLORS)]
        ax.scatter(train[pick], test[pick], s=size, color=color, alpha=0.6, linewidths=0)
        if len(stages) > 1:
            handles.append(Line2D([], [], marker="o", linestyle="", color=color, label=name, markersize=4))
    bad = defined & ~ok
    if bad.any():
        ax.scatter(train[bad], test[bad], s=18, marker="x", color="tab:red", linewidths=1)
        handles.append(Line2D([], [], marker="x", linestyle="", color="tab:red", label="diverged", markersize=4))
    both = np.concatenate([train[defined], test[defined]])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    pad = max(0.02, 0.05 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("train accuracy, last epoch", fontsize=8)
    ax.set_ylabel("test accuracy, last epoch", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(linewidth=0.4, alpha=0.5)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """As float64, nulls as NaN."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _save(fig: Figure, hub_dir: Path, name: str) -> str:
    buf = io.BytesIO()
    # no "Software" entry: it names the matplotlib version, which would change the bytes for nothing
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    path = f"{ASSETS_DIR}/{name}"
    atomic_write(hub_dir / path, buf.getvalue())
    return path
