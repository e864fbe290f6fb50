"""The ``impasto`` command: argv → StyleConfig → api → exit code. Flags and their grouped help are generated from
the config's fields. Nothing imports torch before a command starts working, so ``--help`` and usage errors are quick
(a test counts the modules).

Exit codes: 0 done, 1 a failed run (diverged, a bug), 2 bad input or usage, 130 interrupted (image and checkpoint
saved; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import itertools
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, NoReturn
from urllib.parse import unquote, urlparse

from . import __version__
from .config import PRESET_NOTES, PRESETS, StyleConfig, preset
from .errors import ImpastoError, OutputError
from .flags import add_config_flags, config_flags, config_from_args, config_groups, number

EXAMPLES = """examples:
  impasto demo                                        paint the built-in sample scene (offline)
  impasto stylize photo.jpg starry.jpg                the default recipe → photo-starry.png beside photo.jpg
  impasto stylize photo.jpg a.jpg b.jpg --style-blend 0.2,0.8 -o blend.png
  impasto stylize photo.jpg starry.jpg --preset gatys-adam -o classic.png
  impasto stylize photo.jpg starry.jpg --style-weight 30 --preserve-color luminance
  impasto layers --size 512                           layer names and their shapes
  impasto recipe out.png                              the settings a PNG was made with, as a command
  impasto blend out.png --strength 0.6                the result at 60 %, blended with its photo (no new run)
  impasto sweep examples/report.toml --content photo.jpg --style starry.jpg scream.jpg -o study/
  impasto serve                                       the web UI on http://127.0.0.1:8000
  impasto video clip.mp4 starry.jpg -o out.mp4 --size 256   a video, its frames consistent over time
  impasto doctor                                      this machine, and what a run will take here
"""

class _Parser(argparse.ArgumentParser):
    _words: Sequence[str] = ()

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._words = list(sys.argv[1:] if args is None else args)  # for error(): a missing flag may be a mistyped one
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage and two lines)
        close = close_flags(self, self._words) if message.startswith("the following arguments are required") else {}
        if close:  # --outptu o.mp4 is why -o/--output is missing
            message += "; " + "; ".join(f"{w} is no flag: did you mean {f}?" for w, f in close.items())
        self.exit(2, f"impasto: error: {message} (see {self.prog} --help)\n")


def close_flags(parser: argparse.ArgumentParser, words: Sequence[str]) -> dict[str, str]:
    """The words that look like flags of ``parser`` but are none of them (``--style-wieght``), each with the closest
    real flag (``--style-weight``), as the web API and the config keys suggest; those with none close are left out."""
    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    unknown = [w.split("=", 1)[0] for w in itertools.takewhile(lambda w: w != "--", words) if w.startswith("--")]
    unknown = [w for w in unknown if not any(f.startswith(w) for f in flags)]  # argparse takes unique prefixes
    return {w: m[0] for w in unknown for m in [difflib.get_close_matches(w, flags, n=1)] if m}


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: Sequence[str]) -> NoReturn:
    """argparse's 'unrecognized arguments', said by the command's own parser, with the closest real flags."""
    commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    own = commands.get(getattr(args, "command", None)) or parser  # the subcommand's flags, not the top level's
    close = list(dict.fromkeys(close_flags(own, extras).values()))
    own.error(f"unrecognized arguments: {' '.join(extras)}" + (f"; did you mean {' and '.join(close)}?" if close else ""))


def _stem(source: str) -> str:
    """The name part of a path or URL, safe in a file name: photo.jpg → photo; https://x.org/a%20b.jpg → a_b."""
    from .io.fetch import is_url

    text = str(source)
    if is_url(text):
        url = urlparse(text)
        text = PurePosixPath(unquote(url.path)).stem or url.hostname or "image"
        return re.sub(r"[^\w.+-]+", "_", text).strip("._") or "image"
    return Path(text).stem or "image"


def default_output(content: str, styles: Sequence[str], *, resume: bool = False) -> Path:
    """``<content>-<style>[+<style>…].png`` beside the content (for a URL, in the current folder), numbered -2, -3, …
    rather than overwriting anything. With ``resume``: the last of those names that has a checkpoint beside it."""
    from .io.fetch import is_url

    folder = Path() if is_url(str(content)) else Path(content).parent
    stem = f"{_stem(content)}-{'+'.join(_stem(s) for s in styles)}"[:200]

    def names() -> Iterator[Path]:
        for n in itertools.count(1):
            yield folder / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")

    def taken(p: Path) -> bool:
        return p.exists() or p.is_symlink() or p.with_name(p.name + ".ckpt").exists()

    if not resume:
        return next(p for p in names() if not taken(p))
    with_ckpt = [p for p in itertools.takewhile(taken, names()) if p.with_name(p.name + ".ckpt").exists()]
    if not with_ckpt:
        raise OutputError(f"nothing to resume: no {folder / stem}.png.ckpt; give the interrupted run's -o OUTPUT")
    return with_ckpt[-1]


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
    from .io.files import SAVE_FORMATS, check_input, check_output
    from .outputs import check_format

    cfg = config_from_args(args)  # a bad setting is a usage error, found before torch is imported
    if args.output is None:  # a new name beside the content: never overwrites, so --force changes nothing
        out = check_output(default_output(args.content, args.styles, resume=args.resume), force=args.resume)
    else:
        out = check_output(args.output, force=args.force or args.resume)  # before any work, and before OUT.ckpt
    check_format(out, SAVE_FORMATS[out.suffix.lower()], bit_depth=cfg.bit_depth, transparent=False)  # 16-bit JPEG
    for source in (args.content, *args.styles):
        check_input(source)  # a mistyped path is found before torch is imported (3-4 s), as a bad flag is
    from .api import StopToken, resume_state, stylize

    ckpt = out.with_name(out.name + ".ckpt")
    state = resume_state(ckpt, cfg, args.content, args.styles) if args.resume else None
    stop = StopToken()
    restore = install_stop(stop)
    try:
        # A stopped run writes OUT.ckpt before the image: a disk that fills up after it leaves the run resumable.
        result = stylize(args.content, args.styles, cfg, stop=stop, state=state, progress=not args.quiet,
                         output=out, force=True, checkpoint=ckpt)
    finally:
        restore()
    for note in result.recipe.get("notes", []):
        print(f"impasto: note: {note}", file=sys.stderr)
    if result.status == "cancelled":
        print(f"impasto: {result.message}; saved {out} and {ckpt}; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    if result.status == "diverged":
        print(f"impasto: error: {result.message}; saved it to {out}", file=sys.stderr)
        return 1
    if ckpt.exists():
        ckpt.unlink()
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    if not args.quiet or args.output is None:  # a name chosen here is always said
        print(f"impasto: wrote {out} ({result.image.width}x{result.image.height}, {result.elapsed:.1f} s; {losses})",
              file=sys.stderr)
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from .api import LAYER_NAMES, layer_shapes

    h, w = (args.size, args.size) if not args.shape else tuple(int(v) for v in args.shape.lower().split("x"))
    shapes = layer_shapes(h, w)  # shapes only: no weights needed
    defaults = StyleConfig()
    marks = {name: "content" for name in defaults.content_layers}
    for name, weight in defaults.style_layers:
        mark = "style" if weight == 1 else f"style ×{number(weight)}"
        marks[name] = f"{marks[name]}, {mark}" if name in marks else mark
    print(f"{'index':>5}  {'layer':<8} {'channels x height x width':<26} {'floats':>12}  default")
    for i, name in enumerate(LAYER_NAMES):
        c, hh, ww = shapes[name]
        print(f"{i:>5}  {name:<8} {f'{c} x {hh} x {ww}':<26} {c * hh * ww:>12,}  {marks.get(name, '')}".rstrip())
    print("default: impasto's content and style layers; --content-layers and --style-layers choose others")
    return 0


def repeat_command(recipe: Mapping[str, Any]) -> str:
    """``impasto stylize …`` that repeats a recipe's run: its inputs, its preset and the settings that differ."""
    inputs = recipe.get("inputs") or {}
    names = [inputs.get("content") or "CONTENT", *(inputs.get("styles") or ["STYLE"])]
    # Images handed over in memory (a PIL image, an upload) have no file name: a placeholder says which is which.
    words = ["impasto", "stylize"] + [
        n if not str(n).startswith("<") else ("CONTENT" if i == 0 else f"STYLE{i}") for i, n in enumerate(names)]
    cfg = recipe.get("config") or {}
    name = cfg.get("preset")
    base = None
    if name in PRESETS:
        words += ["--preset", name]
        base = preset(name)
    return shlex.join(words + config_flags(cfg, base))


def cmd_recipe(args: argparse.Namespace) -> int:
    from .io.recipe import for_terminal, read_recipe

    data = read_recipe(args.image)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))  # JSON escapes control characters itself
        return 0
    data = for_terminal(data)  # the file may come from anyone: no escape sequence reaches the terminal
    cfg = data.get("config", {})
    print(f"impasto {data.get('impasto')}  status {data.get('status')}  device {data.get('device')}  "
          f"{data.get('elapsed_s')} s  {data.get('steps_done')} steps")
    print(f"inputs: {json.dumps(data.get('inputs'))}")
    print(f"losses: {json.dumps(data.get('final_losses'))}")
    print(f"loss convention: {data.get('loss_convention')}")
    print("config:")
    for k in sorted(cfg):
        print(f"  {k} = {json.dumps(cfg[k])}")
    print(f"to repeat: {repeat_command(data)}")
    return 0


def _wrap(units: Sequence[str], width: int, indent: str) -> list[str]:
    """Lines of at most ``width`` characters, never breaking inside a unit (a flag and its value)."""
    lines = [indent]
    for u in units:
        if len(lines[-1]) > len(indent) and len(lines[-1]) + 1 + len(u) > width:
            lines.append(indent)
        lines[-1] += ("" if lines[-1] == indent else " ") + u
    return lines


def cmd_presets(args: argparse.Namespace) -> int:
    width = max(map(len, PRESETS)) + 2
    print(f"{'preset':<{width}}what it is for, and the flags it amounts to")
    for name in PRESETS:
        print(f"{name:<{width}}{PRESET_NOTES.get(name, '')}")
        words = config_flags(preset(name).to_dict())
        units = [f"{a} {b}" if not b.startswith("--") else a for a, b in zip(words, [*words[1:], "--"])
                 if a.startswith("--")]
        for line in _wrap(units or ["(impasto's defaults)"], 116, " " * width):
            print(line)
    print("use one with --preset NAME; flags given with it override its settings")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .api import stylize
    from .io.files import check_output
    from .io.recipe import save_image
    from .samples import sample_content, sample_style

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    result_path = check_output(folder / "demo_result.png", force=True)
    content, style = folder / "demo_content.png", folder / "demo_style.png"
    save_image(sample_content(), content)  # 384x288, painted procedurally
    save_image(sample_style(), style)  # 384x384
    t0 = time.perf_counter()
    overrides = {k: v for k, v in (("size", args.size), ("steps", args.steps), ("device", args.device),
                                   ("preset", args.preset)) if v}
    # The saved files, not the images in memory: the result's recipe then names them ('impasto recipe' repeats it).
    stylize(str(content), str(style), progress=True, output=result_path, **overrides)
    print(f"impasto: painted {content} in the manner of {style} → {result_path} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


def _front_end(package: str, name: str = "cli") -> ModuleType | None:
    """``impasto.<package>.<name>``, which registers a command of the package, or None when the package is absent.
    These modules import nothing heavy (their packages load lazily; their commands import the engine when they
    run), which keeps ``impasto --help`` and usage errors free of torch (tests/test_cli.py checks it)."""
    try:
        return importlib.import_module(f"impasto.{package}.{name}")
    except ModuleNotFoundError as e:
        if e.name not in (f"impasto.{package}", f"impasto.{package}.{name}"):
            raise
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="impasto", description="Neural style transfer (Gatys et al.) on VGG19.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("stylize", help="paint a content image in the manner of style images", epilog=EXAMPLES,
                       usage="%(prog)s CONTENT STYLE [STYLE ...] [-o OUTPUT] [settings]", add_help=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="content image: path or http(s) URL")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images: paths or URLs")
    groups = config_groups(p)
    groups["common"].add_argument(
        "-o", "--output", help="output image: .png, .tif, .webp or .jpg, its recipe inside [default: CONTENT-STYLE.png beside "
        "the content (STYLE1+STYLE2 for two), numbered -2, -3, … rather than overwrite]")
    run = groups["run"]
    run.add_argument("--force", action="store_true", help="overwrite an existing -o OUTPUT")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from OUTPUT.ckpt")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("-h", "--help", action="help", help="show this help and exit")
    add_config_flags(groups)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("layers", help="VGG19's layer names and shapes for an image size, the defaults marked")
    p.add_argument("--size", type=int, default=512, help="square input size [default: 512]")
    p.add_argument("--shape", help="HEIGHTxWIDTH instead of a square")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("recipe", help="the settings stored in an impasto PNG, and a command that repeats the run")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="the raw JSON")
    p.set_defaults(func=cmd_recipe)
    from .blend_cli import add_parser as add_blend  # its own module: cli.py has no room (no torch imported here)

    add_blend(sub)

    p = sub.add_parser("presets", help="list the named presets: what each is for and what it sets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("demo", help="stylize built-in sample images (offline, bundled weights)")
    p.add_argument("-o", "--output", default="impasto-demo", help="folder for the images [default: impasto-demo]")
    p.add_argument("--size", type=int, default=384, help="long side of the result [default: 384, the scene's own]")
    p.add_argument("--steps", type=int, help="iterations per scale, twice that at the first [default: impasto's, "
                   "40]")
    p.add_argument("--device", help="auto, cpu, cuda, mps [default: auto]")
    p.add_argument("--preset", choices=sorted(PRESETS), help="paint it with a preset, e.g. neighbour [default: none, "
                   "impasto's defaults]")
    p.set_defaults(func=cmd_demo)

    from . import doctor  # its own module: cli.py is near its size limit

    doctor.add_parser(sub)
    for package, name in (("experiments", "cli"), ("experiments", "batch_cli"), ("web", "cli"),
                          ("video", "cli")):  # front ends
        module = _front_end(package, name)  # that register their own commands
        if module is not None:
            module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .io.streams import guard_std_streams  # stderr full or closed: never what stops a run

    restore = guard_std_streams()
    try:
        code = _main(argv)
        try:
            sys.stdout.flush()  # what a command printed (``impasto recipe``) fails here on a full disk
        except ImpastoError as e:
            print(f"impasto: error: {e}", file=sys.stderr)
            code = code or e.exit_code
        return code
    finally:
        restore()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _refuse_unknown(parser, args, extras)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ImpastoError as e:
        from .io.files import printable  # a file name or a file's words may hold escape sequences or newlines

        print(f"impasto: error: {printable(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("impasto: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
