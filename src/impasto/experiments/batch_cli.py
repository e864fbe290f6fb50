"""``impasto batch CONTENTS... --style S... -o OUTDIR``: registered by ``impasto.cli`` through ``add_parser``.

Exit codes: 0 every picture made (or there already), 1 some pair failed, 2 bad input, 130 interrupted (rerun the
same command to continue: finished pictures are skipped, interrupted ones go on from their checkpoints).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXAMPLES = """examples:
  impasto batch photos/ --style starry.jpg scream.jpg -o out/          every photo in both styles (2 per photo)
  impasto batch 'shoot/*.jpg' --style a.jpg b.jpg --blend -o out/      one picture per photo, the styles blended
  impasto batch photos/ --style starry.jpg -o out/ --size 1024 --preset gatys-adam
  impasto batch photos/ --style starry.jpg -o out/ --executor ray --address auto    fan out over a Ray cluster
a rerun with the same -o skips the pictures already there (--force repaints them) and continues interrupted ones.
"""


def add_parser(subparsers: Any) -> None:
    from ..flags import add_config_flags, config_groups
    from .cluster import add_executor_flags

    p = subparsers.add_parser(
        "batch", help="paint every content image in every style (folders, globs) → one folder and a summary sheet",
        description="Paint every content image (files, folders, globs, URLs) in every style image, with the same\n"
                    "settings: one picture per pair (or per content with --blend), a contact sheet (sheet.png) and\n"
                    "batch.json. Pairs that share a content image share a pass through VGG.",
        usage="%(prog)s CONTENT [CONTENT ...] --style STYLE [STYLE ...] -o OUTDIR [options] [settings]",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("contents", nargs="+", metavar="CONTENT", help="content images: files, folders, globs or URLs")
    groups = config_groups(p)
    common = groups["common"]
    common.add_argument("--style", dest="styles", nargs="+", required=True, metavar="STYLE",
                        help="style images (files, folders, globs or URLs): each pair gets one")
    common.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the pictures")
    common.add_argument("--blend", action="store_true",
                        help="one picture per content in the blend of all styles (weights: --style-blend)")
    run = groups["run"]
    run.add_argument("--batch", type=int, metavar="N", help="at most N pairs share a batch (1: one by one)")
    run.add_argument("--force", action="store_true", help="repaint pictures that are already in OUTDIR")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("-h", "--help", action="help", help="show this help and exit")
    add_executor_flags(p)
    add_config_flags(groups)
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..flags import config_from_args
    from .sources import expand

    cfg = config_from_args(args)
    expand(args.contents, "content images")  # a mistyped path is found before torch is imported, as a bad flag is
    expand(args.styles, "style images")
    from ..api import StopToken
    from ..cli import install_stop
    from .batch_job import batch
    from .cluster import executor_from_args

    executor = executor_from_args(args)
    stop = StopToken()
    restore = install_stop(stop)
    try:
        job = batch(args.contents, args.styles, output=args.output, config=cfg, blend=args.blend,
                    executor=executor, max_batch=args.batch, force=args.force, stop=stop, progress=not args.quiet)
    finally:
        restore()
        if executor is not None:
            executor.close()
    made = len(job.ran)
    skipped = sum(p.skipped for p in job.pairs)
    for p in job.pairs:
        if p.status in ("diverged", "failed"):
            print(f"impasto: {'note' if p.status == 'diverged' else 'error'}: {p.name}: {p.message}", file=sys.stderr)
    sheet = job.files.get("sheet")
    if job.status == "cancelled":
        print(f"impasto: batch interrupted ({stop.reason}); finished pictures and checkpoints are in {job.output}; "
              "run the same command again to continue", file=sys.stderr)
        return 130
    if job.status != "done":
        failed = [p.name for p in job.pairs if p.status not in ("done", "diverged")]
        print(f"impasto: error: {len(failed)} of {len(job.pairs)} pictures were not made ({', '.join(failed[:5])}"
              f"{', …' if len(failed) > 5 else ''}); see {job.files.get('manifest')}", file=sys.stderr)
        return 1
    note = f" (--force repaints the {skipped} already there)" if skipped and not made else ""
    print(f"impasto: {made} pictures made, {skipped} already there{note}, in {job.elapsed:.0f} s → {job.output}; "
          f"sheet: {sheet}", file=sys.stderr)
    return 0
