"""The `modelzoos` command: list, show, train, verify, build, soups, run, push."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from .errors import ModelzoosError
from .spec import ZooSpec, load_spec, registered_zoos


def _spec_from_args(args: argparse.Namespace) -> ZooSpec:
    spec = load_spec(args.zoo)
    if args.smoke:
        spec = spec.smoke()
    spec = spec.replace(max_models=args.max_models, epochs=args.epochs)
    if args.image_dataset:
        spec = dataclasses.replace(spec, image_data=dataclasses.replace(spec.image_data, source=args.image_dataset))
    return spec


PUBLICATION_NAMES = {"model-zoos": '"Model Zoos" (Schürholt et al., NeurIPS 2022)', "vit-zoo": '"A Model Zoo of Vision Transformers" (Falk et al., 2025)'}


def cmd_list(args: argparse.Namespace) -> None:
    from .builder.rows import distinct_layouts

    rows = [("zoo", "models", "epochs", "params", "image data")]
    totals: dict[str | None, list[int]] = {}
    for name in registered_zoos():
        spec = load_spec(name)
        n = len(spec.models())
        epochs = "+".join(str(spec.stage_spec(st.name).training.epochs) for st in spec.stages) or str(spec.training.epochs)
        counts = sorted({layout.n_params for layout in distinct_layouts(spec)})  # stages and heads may differ
        params = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}-{counts[-1]:,}"
        rows.append((name, f"{n:,}", epochs, params, spec.image_data.source))
        zoos_models = totals.setdefault(spec.publication, [0, 0])
        zoos_models[0] += 1
        zoos_models[1] += n
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print()
    for publication, (zoos, models) in totals.items():
        if publication is not None:
            print(f"zoos of {PUBLICATION_NAMES[publication]}: {zoos}, {models:,} models")
    print(f"all registered zoos: {len(rows) - 1}, {sum(m for _, m in totals.values()):,} models")


def cmd_show(args: argparse.Namespace) -> None:
    spec = load_spec(args.zoo)
    print(spec.to_yaml(), end="")
    if spec.stages:
        models = spec.models()
        for st in spec.stages:
            own = spec.stage_spec(st.name)
            n = sum(m.stage == st.name for m in models)
            start = f"from each {' and '.join(repr(p) for p in st.parents)} model" if st.parents else "from scratch"
            print(f"# stage {st.name}: {n} models ({start}); varying factors: {', '.join(own.varying_factors) or 'none'}")
        print(f"# {len(models)} models in all")
        return
    axes = [str(len(v)) for v in spec.grid.values()]
    if spec.random_seeds:
        axes.append(f"{spec.random_seeds.count} random seeds")
    print(f"# grid: {' x '.join(axes)} = {spec.grid_size} models", end="")
    if spec.max_models is not None and spec.max_models < spec.grid_size:
        print(f", of which the first {spec.max_models} are trained", end="")
    print(f"; varying factors: {', '.join(spec.varying_factors) or 'none'}")


def cmd_train(args: argparse.Namespace) -> None:
    from .training import train_zoo

    train_zoo(_spec_from_args(args), args.out, group_size=args.group_size)


WARNINGS_SHOWN = 10


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify_zoo

    report = verify_zoo(args.dir)
    warnings = [p for p in report.problems if p.is_warning]
    for problem in report.problems:  # in the spec's model order, so grouped by model
        # a zoo trained before manifests has a warning per model: a few show what they are
        if not problem.is_warning or warnings.index(problem) < WARNINGS_SHOWN:
            print(problem)
    if len(warnings) > WARNINGS_SHOWN:
        print(f"... and {len(warnings) - WARNINGS_SHOWN} more warnings like these")
    print(report.summary())
    return 1 if report.bad else 0


def cmd_build(args: argparse.Namespace) -> None:
    from .hub import build_hub

    hub = build_hub(args.dir, checkpoints=args.checkpoints, skip_bad_models=args.skip_bad_models, repo_id=args.repo_id)
    print(f"Hub folder: {hub}")


def cmd_soups(args: argparse.Namespace) -> None:
    import json

    from .soups import write_soup_report

    path = write_soup_report(args.dir, args.k)
    report = json.loads(path.read_text())
    print(
        f"epoch average of the last {report['k']} epochs: {report['epoch_average_gain_mean']:+.4f} test accuracy on "
        f"average ({report['epoch_average_improved']} of {len(report['models'])} fine-tunes better)"
    )
    for f in report["families"]:
        print(
            f"backbone {f['parent_id']} {f['head']}: best sibling {f['best_sibling']:.4f}, uniform soup "
            f"{f['uniform_soup']:.4f}, greedy soup {f['greedy_soup']:.4f} ({f['greedy_ingredients']} of {f['siblings']})"
        )
    print(f"written to {path}; `modelzoos build {args.dir}` puts the table in the card")


def cmd_run(args: argparse.Namespace) -> None:
    from .hub import build_hub
    from .hub_cards import summarize
    from .training.train import process_state, train_zoo

    spec = _spec_from_args(args)
    start = time.monotonic()
    train_zoo(spec, args.out, group_size=args.group_size)
    if not process_state().is_main_process:
        return
    from .soups import fine_tuning_stage, write_soup_report

    tuned = fine_tuning_stage(spec)
    if tuned is not None:  # a zoo with fine-tunes: measure weight averaging
        write_soup_report(args.out, k=min(3, spec.stage_spec(tuned.name).training.epochs))  # a smoke run has 1
    hub = build_hub(args.out).resolve()
    s = summarize(hub)
    minutes, seconds = divmod(int(time.monotonic() - start), 60)
    print(f"\n{spec.name}: {s.models} models in {minutes}m{seconds:02d}s")
    for stage, st in s.stages.items():
        acc = (  # a stage whose every model diverged has no accuracy to show
            f"mean {st['mean']:.4f}, range {st['min']:.4f} .. {st['max']:.4f}" if st["mean"] is not None else "none (no model has one)"
        )
        print(f"{'' if stage == 'train' else stage + ': '}{st['models']} models x {st['epochs']} epochs, final test accuracy: {acc}")
    if s.faulty_models:
        print(f"{s.faulty_models} faulty models (status 'diverged')")
    print(f"hub folder: {hub}")
    print(f'load it:   datasets.load_dataset("{hub}")  or  load_dataset("{hub}", "weights")')


def cmd_push(args: argparse.Namespace) -> None:
    from .push import push_hub

    r = push_hub(args.dir, args.repo_id, private=args.private, revision=args.revision, dry_run=args.dry_run)
    if f'load_dataset("{args.repo_id}"' not in (Path(args.dir) / "README.md").read_text():
        print(
            f"warning: the card's examples load another repository; rebuild with `modelzoos build DIR --repo-id "
            f"{args.repo_id}` and push again so that they load this one", file=sys.stderr,
        )
    total = f"{len(r.files)} files, {_size(sum(f.size for f in r.files))}"
    if r.dry_run:
        for f in r.files:
            print(f"{_size(f.size):>10}  {f.path}")
        print(f"{total}: what a push to {r.repo_id} ({r.revision}) would upload; files the repository already "
              "holds unchanged are skipped then")
        return
    if r.created:
        print(f"created the {'private' if r.private else 'public'} dataset repository {r.repo_id}")
    if r.changed:
        print(f"pushed {args.dir} ({total}) to {r.repo_id} ({r.revision}): {r.commit_url}")
    else:
        print(f"nothing changed: {r.repo_id} ({r.revision}) already holds these {total}")
    revision = "" if r.revision == "main" else f", revision={r.revision!r}"
    print(f"{r.url}  ({'private' if r.private else 'public'})")
    print(f'load it:   datasets.load_dataset("{r.repo_id}"{revision})')


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):  # decimal units, as the Hub shows sizes
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _add_zoo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo", help="a registered zoo name (see `modelzoos list`) or a path to a spec .yaml")
    p.add_argument("--out", required=True, type=Path, help="the zoo directory (created; re-run to resume)")
    p.add_argument("--max-models", type=int, help="train only the first N models of the grid")
    p.add_argument("--epochs", type=int, help="train for E epochs instead of the spec's")
    p.add_argument("--group-size", type=int, help="models trained together in one group")
    p.add_argument("--image-dataset", help="Hub id or local path of the image data, instead of the spec's")
    p.add_argument(
        "--smoke", action="store_true",
        help="smoke scale: 2 models, 1 epoch, 256 synthetic images of the zoo's shape (32 for ResNet-18), offline",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="modelzoos", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the registered zoos").set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="a zoo's resolved spec and grid size")
    p.add_argument("zoo", help="a registered zoo name or a path to a spec .yaml")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("train", help="train a zoo into a raw zoo directory (resumable; use with accelerate launch)")
    _add_zoo_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser(
        "verify", help="check a raw zoo directory: missing epochs, checksums (SHA256SUMS), unreadable files, NaNs"
    )
    p.add_argument("dir", type=Path, help="a raw zoo directory written by `modelzoos train`")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("build", help="write DIR/hub: Parquet tables, layout.json and the dataset card")
    p.add_argument("dir", type=Path, help="a raw zoo directory written by `modelzoos train`")
    p.add_argument(
        "--checkpoints", action="store_true",
        help="also write checkpoints/<model_id>.safetensors: every epoch of a model, stacked (raw tensors without the tables)",
    )
    p.add_argument(
        "--skip-bad-models", action="store_true",
        help="build without the models `modelzoos verify` finds damaged or incomplete (the card lists them)",
    )
    p.add_argument("--repo-id", help="the Hub dataset id the card's examples load (default modelzoos/<zoo name>)")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("soups", help="measure epoch averaging and soups of a staged zoo's fine-tunes (DIR/soups.json)")
    p.add_argument("dir", type=Path, help="a raw zoo directory of a staged zoo, fully trained")
    p.add_argument("--k", type=int, default=3, help="average each fine-tune's last K epochs (default 3)")
    p.set_defaults(func=cmd_soups)
    p = sub.add_parser("run", help="train and build a zoo, then print a summary (the main job)")
    _add_zoo_args(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("push", help="upload a hub folder to a Hugging Face dataset repository (re-run to resume)")
    p.add_argument("dir", type=Path, help="a hub folder written by `modelzoos build` (DIR/hub)")
    p.add_argument("--repo-id", required=True, help="the dataset repository, ORG/NAME (created if missing)")
    p.add_argument(
        "--private", action="store_true", help="create the repository private (an existing one is not changed)"
    )
    p.add_argument("--revision", help="push to this branch, created from main if missing (default: main)")
    p.add_argument("--dry-run", action="store_true", help="list the files and sizes a push would upload; offline")
    p.set_defaults(func=cmd_push)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)  # a command that found problems (verify) returns 1
    except ModelzoosError as e:
        # Under `accelerate launch` every process reports; say which one.
        rank = f" (process {os.environ['RANK']})" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        print(f"modelzoos: error{rank}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("modelzoos: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return code or 0
