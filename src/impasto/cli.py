"""The ``impasto`` command: argv → StyleConfig → api → exit code. Flags are generated from the config's fields.

Exit codes: 0 done, 1 a failed run (diverged, a bug), 2 bad input or usage, 130 interrupted (image and checkpoint
saved; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .config import FIELD_NAMES, PRESETS, StyleConfig, field_docs, from_dict, from_toml
from .errors import ImpastoError

EXAMPLES = """examples:
  impasto demo                                        paint the built-in sample scene (offline)
  impasto stylize photo.jpg starry.jpg -o out.png     the default fast recipe
  impasto stylize photo.jpg a.jpg b.jpg --style-blend 0.2,0.8 -o blend.png
  impasto stylize photo.jpg starry.jpg --preset gatys-adam -o classic.png
  impasto stylize photo.jpg starry.jpg --style-weight 30 --preserve-color luminance -o out.png
  impasto layers --size 512                           layer names and their shapes
  impasto recipe out.png                              the settings a PNG was made with
  impasto sweep examples/report.toml --content photo.jpg --style starry.jpg scream.jpg -o study/
  impasto serve                                       the web UI on http://127.0.0.1:8000
"""

# Fields that are not flags of their own or are spelled differently on the command line.
_SKIP = {"preset"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage and two lines)
        self.exit(2, f"impasto: error: {message} (see impasto {self.prog.split()[-1]} --help)\n")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per StyleConfig field, defaulting to None (= not given)."""
    docs = field_docs()
    defaults = StyleConfig()
    g = p.add_argument_group("settings (default: the preset's, else impasto's)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe (see 'impasto presets')")
    g.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file (flags override it)")
    for name in FIELD_NAMES:
        if name in _SKIP:
            continue
        default = getattr(defaults, name)
        if name == "style_layers":
            shown = ",".join(f"{n}:{w:g}" for n, w in default)
        elif isinstance(default, tuple):
            shown = ",".join(map(str, default))
        else:
            shown = default
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, metavar=name.upper(),
                       help=f"{docs.get(name, '')} [default: {shown}]".replace("%", "%%"))


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    base = None
    if getattr(args, "config", None):
        base = from_toml(args.config)
    given = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name, None) is not None}
    if given.get("preset") is None and getattr(args, "preset", None):
        given["preset"] = args.preset
    if base is not None:
        return base.replace(**given) if given else base
    return from_dict(given)


def install_stop(stop: Any) -> Callable[[], None]:
    """SIGINT/SIGTERM end the run after the current step; a second Ctrl-C interrupts at once.

    Returns a function that puts the previous handlers back.
    """
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        if stop.stopped:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.stop("interrupted by " + signal.Signals(signum).name)

    for s in old:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def cmd_stylize(args: argparse.Namespace) -> int:
    from .api import StopToken, resume_state, save_run_checkpoint, stylize
    from .io.files import check_output

    cfg = config_from_args(args)
    out = check_output(args.output, force=args.force or args.resume)  # before any work, and before naming OUT.ckpt
    ckpt = out.with_name(out.name + ".ckpt")
    state = resume_state(ckpt, cfg, args.content, args.styles) if args.resume else None
    stop = StopToken()
    restore = install_stop(stop)
    try:
        result = stylize(args.content, args.styles, cfg, stop=stop, state=state, progress=not args.quiet,
                         output=out, force=True)
    finally:
        restore()
    for note in result.recipe.get("notes", []):
        print(f"impasto: note: {note}", file=sys.stderr)
    if result.status == "cancelled":
        save_run_checkpoint(ckpt, result)
        print(f"impasto: {result.message}; saved {out} and {ckpt}; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    if result.status == "diverged":
        print(f"impasto: error: {result.message}; saved it to {out}", file=sys.stderr)
        return 1
    if ckpt.exists():
        ckpt.unlink()
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    if not args.quiet:
        print(f"impasto: wrote {out} ({result.image.width}x{result.image.height}, {result.elapsed:.1f} s; {losses})",
              file=sys.stderr)
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from .api import LAYER_NAMES, layer_shapes

    h, w = (args.size, args.size) if not args.shape else tuple(int(v) for v in args.shape.lower().split("x"))
    shapes = layer_shapes(h, w)  # shapes only: no weights needed
    print(f"{'index':>5}  {'layer':<8} {'channels x height x width':<26} floats")
    for i, name in enumerate(LAYER_NAMES):
        c, hh, ww = shapes[name]
        print(f"{i:>5}  {name:<8} {f'{c} x {hh} x {ww}':<26} {c * hh * ww:,}")
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from .io.recipe import read_recipe

    data = read_recipe(args.image)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    cfg = data.get("config", {})
    print(f"impasto {data.get('impasto')}  status {data.get('status')}  device {data.get('device')}  "
          f"{data.get('elapsed_s')} s  {data.get('steps_done')} steps")
    print(f"inputs: {json.dumps(data.get('inputs'))}")
    print(f"losses: {json.dumps(data.get('final_losses'))}")
    print(f"loss convention: {data.get('loss_convention')}")
    print("config:")
    for k in sorted(cfg):
        print(f"  {k} = {json.dumps(cfg[k])}")
    flags = " ".join(f"--{k.replace('_', '-')} {_flag_value(v)}" for k, v in cfg.items()
                     if k in FIELD_NAMES and k not in ("preset", "device") and v is not None)
    print(f"to repeat: impasto stylize CONTENT STYLE -o OUT {flags}")
    return 0


def _flag_value(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}:{w:g}" for k, w in v.items())
    if isinstance(v, list):
        return ",".join(map(str, v)) if len(v) != 2 or not all(isinstance(x, int) for x in v) else f"{v[0]}x{v[1]}"
    return str(v)


def cmd_presets(args: argparse.Namespace) -> int:
    for name, values in PRESETS.items():
        desc = ", ".join(f"{k}={v}" for k, v in values.items()) or "impasto's defaults"
        print(f"{name}: {desc}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .api import stylize
    from .io.files import check_output
    from .io.recipe import save_image
    from .samples import sample_content, sample_style

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    result_path = check_output(folder / "demo_result.png", force=True)
    content, style = sample_content(), sample_style()  # 384x288 and 384x384, painted procedurally
    save_image(content, folder / "demo_content.png")
    save_image(style, folder / "demo_style.png")
    t0 = time.perf_counter()
    overrides = {k: v for k, v in (("size", args.size), ("steps", args.steps), ("device", args.device)) if v}
    stylize(content, style, progress=True, output=result_path, **overrides)
    print(f"impasto: painted {folder / 'demo_content.png'} in the manner of {folder / 'demo_style.png'} → "
          f"{result_path} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="impasto", description="Neural style transfer (Gatys et al.) on VGG19.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("stylize", help="paint a content image in the manner of style images", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", help="content image: path or http(s) URL")
    p.add_argument("styles", nargs="+", metavar="style", help="one or more style images")
    p.add_argument("-o", "--output", required=True, help="output image (.png with its recipe, or .jpg)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUTPUT.ckpt")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("layers", help="VGG19's layer names and their shapes for an image size")
    p.add_argument("--size", type=int, default=512, help="square input size [default: 512]")
    p.add_argument("--shape", help="HEIGHTxWIDTH instead of a square")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("recipe", help="print the settings stored in a PNG made by impasto")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="the raw JSON")
    p.set_defaults(func=cmd_recipe)

    p = sub.add_parser("presets", help="list the named presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("demo", help="stylize built-in sample images (offline, bundled weights)")
    p.add_argument("-o", "--output", default="impasto-demo", help="folder for the images [default: impasto-demo]")
    p.add_argument("--size", type=int, default=320, help="long side of the result [default: 320]")
    p.add_argument("--steps", type=int, default=60, help="iterations per scale, twice that at the first "
                   "[default: 60; about two minutes on a 2-core CPU]")
    p.add_argument("--device", help="auto, cpu, cuda, mps [default: auto]")
    p.set_defaults(func=cmd_demo)

    for module in ("experiments.cli", "web.cli"):  # front ends that register their own commands
        try:
            mod = __import__(f"impasto.{module}", fromlist=["add_parser"])
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("impasto"):
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ImpastoError as e:
        print(f"impasto: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("impasto: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
