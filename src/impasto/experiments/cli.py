"""``impasto sweep EXPERIMENT.toml``: registered by ``impasto.cli`` through ``add_parser``.

Exit codes: 0 every variant finished (a diverged variant is a finding, not a failure: it is marked in the report),
1 the executor left variants unfinished, 2 bad input, 130 interrupted (rerun the same command to continue).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXAMPLES = """examples:
  impasto sweep examples/report.toml --content photo.jpg --style starry.jpg scream.jpg --size 128 --fast-forward 10
  impasto sweep study.toml -o study/              rerun: skips finished variants, continues interrupted ones
  impasto sweep study.toml --force                start every variant afresh
  impasto sweep study.toml --dry-run              list the variants and their batches; run nothing
  impasto sweep study.toml --executor ray --address auto    on the Ray cluster this machine joined

an experiment file:
  [base]                       # StyleConfig's keys (see 'impasto stylize --help'); a preset first, then these
  preset = "gatys-adam"
  [[variant]]                  # named variants override base keys
  name = "heavy"
  note = "what it tests"
  style_weight = 5e6
  [grid]                       # axes: their cartesian product runs (for each variant, if there are variants)
  lr = [0.001, 0.003]
"""

# Settings that may be set on the command line for every variant at once.
FLAGS = {
    "size": "long side of every result in pixels (overrides every variant's size)",
    "steps": "iterations per scale for every variant (overrides every variant's steps)",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "weights": "bundled, torchvision or the path of a state dict",
}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="run an experiment file's variants → pictures, contact sheet, loss plots, report",
        description="Run every variant of an experiment (a [base] config plus [[variant]] tables and/or [grid]\n"
                    "axes) and write each picture (recipe inside), its losses, a contact sheet, loss plots and a\n"
                    "Markdown/HTML report. A rerun skips what is finished and continues what was interrupted.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", metavar="EXPERIMENT.toml", help="the experiment file")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder [default: study/<file's stem>]")
    p.add_argument("--content", help="content image (path or URL) [default: the file's [experiment] content]")
    p.add_argument("--style", dest="styles", nargs="+", metavar="STYLE",
                   help="style image(s); variants choose weights with style_blend [default: the file's styles]")
    for name, text in FLAGS.items():
        p.add_argument(f"--{name}", metavar=name.upper(), help=text)
    p.add_argument("--fast-forward", type=int, metavar="K",
                   help="a quick look at a long study: each variant runs 1/K of its steps at K times its learning "
                   "rate (Adam only; what differs between variants stays), e.g. 10")
    p.add_argument("--force", action="store_true", help="rerun every variant, even finished ones")
    p.add_argument("--batch", type=int, metavar="N", help="at most N variants per batch (1: one after another)")
    p.add_argument("--refresh", type=float, default=30.0, metavar="SECONDS",
                   help="redraw the sheet, plots and report this often while a batch runs (0: only after "
                   "each batch) [default: 30]")
    p.add_argument("--max-variants", type=int, metavar="N",
                   help="refuse an experiment of more than N variants (counted before any is built) [default: 1000]")
    p.add_argument("--dry-run", action="store_true", help="list the variants and how they would be batched; run nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    from .cluster import add_executor_flags

    add_executor_flags(p)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..api import StopToken
    from .runner import sweep
    from .spec import load_experiment

    overrides = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    experiment = load_experiment(args.experiment, **({"max_variants": args.max_variants}
                                                     if args.max_variants is not None else {}))
    if args.dry_run:
        planned = experiment.with_overrides(**overrides)
        from .quick import fast_forwarded

        return _dry_run(planned if args.fast_forward is None else fast_forwarded(planned, args.fast_forward))
    stop = StopToken()
    from ..cli import install_stop  # the same Ctrl-C handling as impasto stylize
    from .cluster import executor_from_args, spread

    executor = executor_from_args(args)
    max_batch = spread(executor, len(experiment.variants), args.batch)
    restore = install_stop(stop)
    try:
        result = sweep(experiment, content=args.content, styles=args.styles, output=args.output, force=args.force,
                       max_batch=max_batch, stop=stop, progress=not args.quiet, refresh=args.refresh,
                       executor=executor, fast_forward=args.fast_forward, **overrides)
    finally:
        restore()
        if executor is not None:
            executor.close()
    report = result.files.get("report_html")
    skipped = sum(v.skipped for v in result.variants)
    for v in result.variants:
        if v.status in ("diverged", "failed"):
            print(f"impasto: {'note' if v.status == 'diverged' else 'error'}: {v.name}: {v.message}", file=sys.stderr)
    if result.status == "cancelled":
        print(f"impasto: sweep interrupted ({stop.reason}); finished variants and checkpoints are in "
              f"{result.output}; run the same command again to continue", file=sys.stderr)
        return 130
    if result.status != "done":  # failed: a variant failed, or the sweep ended early (see results.sweep_status)
        unfinished = ", ".join(v.name for v in result.variants if not v.finished)
        print(f"impasto: error: the sweep ended with unfinished variants ({unfinished}); see {report}",
              file=sys.stderr)
        return 1
    print(f"impasto: swept {len(result.variants)} variants ({len(result.ran)} run, {skipped} already done) in "
          f"{result.elapsed:.0f} s; report: {report}", file=sys.stderr)
    return 0


def _dry_run(experiment: Any) -> int:
    from ..api import batch_key
    from .spec import describe_value, differences

    groups: dict[Any, list[str]] = {}
    base = experiment.base.to_dict()
    for v in experiment.variants:
        groups.setdefault(batch_key(v.config), []).append(v.name)
    print(f"{experiment.path}: {len(experiment.variants)} variants in {len(groups)} batch group(s)")
    for v in experiment.variants:
        changes = differences(v.config, experiment.base)
        text = ", ".join(f"{k}={describe_value(k, x, base.get(k))}" for k, x in changes.items()) or "(base)"
        group = next(i for i, names in enumerate(groups.values(), start=1) if v.name in names)
        print(f"  {v.name:<24} batch group {group}  {text}")
    from .executors import CPU_BATCH_PIXELS

    print(f"(a group runs as one batch through VGG, cut to --batch N, to the device's memory, and on a CPU to "
          f"{CPU_BATCH_PIXELS // 1000}k final-size pixels a batch)")
    return 0


