"""``impasto video INPUT STYLE [STYLE ...] -o OUTPUT``: registered by ``impasto.cli`` through ``add_parser``.

Imports nothing heavy: the command imports the loop (torch, PyAV, OpenCV) when it runs.

Exit codes: 0 every frame written (and the video encoded), 2 bad input or usage, 130 interrupted (the frames
written stay; the same command continues at the first missing one).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ImageError
from ..flags import add_config_flags, config_from_args, config_groups
from .settings import FLOWS, INITS, LATER_STEPS, PASS_STEPS

EXAMPLES = """examples:
  impasto video clip.mp4 starry.jpg -o clip-starry.mp4 --size 256     the audio and frame rate carried over
  impasto video clip.mp4 starry.jpg -o frames/ --frames 48 --start 120   48 frames as PNGs, from frame 120
  impasto video frames/ oil.jpg ink.jpg --style-blend 0.3,0.7 -o out.webm --fps 12
  impasto video clip.mov starry.jpg -o out.gif --long-term 1,2,4      long-term consistency (Ruder et al.)
  impasto video clip.mp4 starry.jpg -o flicker.mp4 --temporal-weight 0 --frame-init content   frame by frame
  impasto video clip.mp4 starry.jpg -o clip-starry.mp4 --size 256     again: continues at the first missing frame
  impasto video film.mp4 oil.jpg -o out.mp4 --cuts 48,120             shots start afresh at frames 48 and 120
  impasto video spin.gif ink.jpg -o spin-ink.gif --loop               the last frame leads back into the first
  impasto video clip.mp4 -o morph.mp4 --style-keyframes 0:oil.jpg,120:ink.jpg   the style changes along the clip
  impasto video clip.mp4 oil.jpg -o out.mp4 --passes 3                then a backward and a forward pass (Ruder et al.)
"""


def _long_term(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give distances such as 1,2,4") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give distances of at least 1, such as 1,2,4")
    return out


def _fps(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r}: give a rate such as 24, 29.97 or 30000/1001") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a rate between 0 and 1000")
    return value


def _whole(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number, ``least`` or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, {least} or more")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction such as 0.01") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction from 0 to 1, such as 0.01")
    return value


def _cuts(text: str) -> Any:
    from .cuts import parse_cuts

    try:
        return parse_cuts(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("cuts = ", "")) from None


def _keyframes(text: str) -> Any:
    from .keyframes import parse_keyframes

    try:
        return parse_keyframes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("style_keyframes = ", "")) from None


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "video", help="stylize a video (or a folder of frames) with temporal consistency",
        usage="%(prog)s INPUT STYLE [STYLE ...] -o OUTPUT [settings]", add_help=False, epilog=EXAMPLES,
        description="Paint every frame of a clip in the manner of the style images, keeping consecutive frames\n"
                    "consistent (Ruder et al.): optical flow between the input frames, each frame started from\n"
                    "the previous result warped onto it, and a temporal loss. Frames are written as they finish;\n"
                    "the same command continues an interrupted clip.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="a video file (mp4, mov, webm, mkv, avi, animated GIF) or a folder "
                   "of frames (PNG, JPEG, ...; in name order)")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="one or more style images: paths or URLs (none with "
                   "--style-keyframes)")
    v = p.add_argument_group("video (what to take of the clip, and how frames follow each other)")
    v.add_argument(
        "-o", "--output", required=True, help="a video file (.mp4, .mov, .mkv, .webm, .avi, .gif: by extension; the "
        "recipe beside it in OUTPUT.json) or a folder for PNG frames (frame_000000.png, ...; video.json)")
    v.add_argument("--frames", type=int, metavar="N", help="take N frames [default: all]")
    v.add_argument("--start", type=_whole(0), default=0, metavar="S", help="the first frame to take, from 0 "
                   "[default: 0]")
    v.add_argument("--long-term", type=_long_term, default=(1,), metavar="J,J,...",
                   help="earlier frames the temporal loss compares with, as distances (1: the previous frame; "
                   "1,2,4 also 2 and 4 back, for what closer frames do not cover) [default: 1]")
    v.add_argument("--later-steps", type=int, default=LATER_STEPS, metavar="N",
                   help="steps for each frame after the first, at the final size, started from the previous "
                   f"result (the first frame runs the whole schedule) [default: {LATER_STEPS}]")
    v.add_argument("--later-tol", type=_fraction, metavar="F",
                   help="stop a later frame early once its loss improves by less than this fraction over 20 steps "
                   "[default: off]")
    v.add_argument("--passes", type=_whole(1), default=1, metavar="N",
                   help="passes over the clip: after the first, alternately backward and forward, each frame started "
                   "from its result blended with its neighbour's (Ruder et al. 2018) [default: 1]")
    v.add_argument("--pass-steps", type=_whole(1), default=PASS_STEPS, metavar="N",
                   help=f"steps for each frame in the passes after the first [default: {PASS_STEPS}]")
    v.add_argument("--frame-init", choices=INITS, default="warped",
                   help="later frames start from the previous result warped (warped) or each on its own from "
                   "the content with the whole schedule (content) [default: warped]")
    v.add_argument("--flow", choices=FLOWS, default="dis", help="optical flow: OpenCV's DIS (fast) or Farneback "
                   "[default: dis]")
    v.add_argument("--cuts", type=_cuts, default="auto", metavar="auto|none|F,F,...",
                   help="scene cuts, where a shot starts afresh (no paint carried across): detected (auto), none, or "
                   "the frames that start a shot, counted from 0 in the frames taken [default: auto]")
    v.add_argument("--loop", action="store_true", help="make the clip loop: the last frames lead back into the "
                   "first (for a GIF or a looping video)")
    v.add_argument("--style-keyframes", type=_keyframes, metavar="F:STYLE,F:STYLE,...",
                   help="styles over time instead of STYLE arguments: the style at each keyframe (frames counted "
                   "from 0 in the frames taken), blended linearly between them, e.g. 0:oil.jpg,120:ink.jpg")
    v.add_argument("--fps", type=_fps, metavar="RATE", help="the output's frame rate [default: the input's; 24 for "
                   "a folder of frames]")
    v.add_argument("--keep-frames", action="store_true", help="keep OUTPUT.frames/ (the PNG frames) after writing "
                   "an output video")
    groups = config_groups(p)
    run = groups["run"]
    run.add_argument("--force", action="store_true", help="start again: overwrite OUTPUT and its frames")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("-h", "--help", action="help", help="show this help and exit")
    add_config_flags(groups)
    p.set_defaults(func=cmd_video)


def cmd_video(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # a bad setting is a usage error, found before torch is imported
    from ..io.files import check_input, path_problem

    problem = None if Path(args.input).is_dir() else path_problem(args.input)  # a file or a folder of frames
    if problem is not None:  # as read_clip says it, but before torch is imported (3-4 s), as a bad flag is
        raise ImageError(f"{args.input}: {problem}")
    for source in [*args.styles, *(img for _, img in args.style_keyframes or ())]:
        check_input(source)
    from ..cli import install_stop
    from .settings import VideoSettings

    vs = VideoSettings(frames=args.frames, start=args.start, flow=args.flow, long_term=args.long_term,
                       later_steps=args.later_steps, frame_init=args.frame_init, fps=args.fps,
                       keep_frames=args.keep_frames, cuts=args.cuts, loop=args.loop,
                       style_keyframes=args.style_keyframes, later_tol=args.later_tol, passes=args.passes,
                       pass_steps=args.pass_steps)
    from ..api import StopToken
    from .loop import stylize_video

    stop = StopToken()
    restore = install_stop(stop)
    try:
        result = stylize_video(args.input, args.styles, args.output, cfg, video=vs, stop=stop,
                               progress=not args.quiet, force=args.force)
    finally:
        restore()
    for note in result.notes:
        print(f"impasto: note: {note}", file=sys.stderr)
    if result.status == "cancelled":
        print(f"impasto: {result.message}; {result.frames} of {result.total} frames are written; run the same "
              "command again to continue", file=sys.stderr)
        return 130
    times = [r["seconds"] for r in result.records]
    later = f", later frames {sum(times[1:]) / len(times[1:]):.1f} s each" if len(times) > 1 else ""
    print(f"impasto: wrote {result.output} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
          f"{float(result.fps):.3g} fps, {result.elapsed:.0f} s; first frame {times[0]:.1f} s{later})" if times else
          f"impasto: {result.output} was already complete", file=sys.stderr)
    return 0
