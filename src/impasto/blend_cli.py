"""``impasto blend RESULT.png --strength 0.6 [-o OUT.png]``: a result at another strength, without a new run.

Registered by ``impasto.cli`` through ``add_parser``; the work is ``api.blend_file`` (``impasto/reblend.py``).
Exit codes: 0 written, 2 it cannot be done (no recipe, the photo moved or changed, a bad strength): one line says why.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXAMPLES = """examples:
  impasto blend photo-starry.png --strength 0.6                 → photo-starry-strength60.png beside it
  impasto blend photo-starry.png --strength 0.3 -o subtle.png
the photo is the one the recipe inside the file names (it must still be there, unchanged).
"""


def _strength(text: str) -> float:
    """Checked as the config checks it (no torch: a usage error stays quick)."""
    from .config import StyleConfig
    from .errors import ConfigError

    try:
        return StyleConfig(strength=text).strength  # the field's coercer takes text; its check says the range
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "blend", help="an impasto result at another strength (blended with its photo), without a new run",
        description="Blend a finished result with the photo it was painted from, in OKLab: 0 is the photo, 1 the\n"
                    "painting. The photo, its size (a print's crop) and the strength the result was made at come\n"
                    "from the recipe inside the file; the written file's recipe records the new strength.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="RESULT", help="a picture impasto wrote (PNG, TIFF, WebP, JPEG: its recipe inside)")
    p.add_argument("--strength", type=_strength, required=True, metavar="X",
                   help="how much of the painting to keep, from 0 (the photo) to 1 (the painting)")
    p.add_argument("-o", "--output", help="output image [default: RESULT-strengthNN.png beside it]")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_blend)


def cmd_blend(args: argparse.Namespace) -> int:
    from .api import blend_file

    out = blend_file(args.image, args.strength, args.output, force=args.force)
    print(f"impasto: wrote {out} (strength {args.strength:g})", file=sys.stderr)
    return 0
