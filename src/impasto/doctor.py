"""``impasto doctor``: this machine as impasto sees it, and what runs will take here (see docs/how-to/time-and-doctor.md).

Nothing heavy is imported until the command runs (``impasto --help`` stays free of torch).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="this machine: device, precision and why, threads, its speed, and what the demo "
                       "and a 512 px run will take here")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps [default: auto]")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="the precision to report on [default: auto]")
    p.add_argument("--recalibrate", action="store_true", help="measure this machine again (a few seconds), e.g. "
                   "after the first measuring ran while it was busy")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .api import machine_report
    from .estimate import duration

    r = machine_report(args.device, args.precision, again=args.recalibrate,
                       notice=lambda text: print(text, file=sys.stderr, flush=True))
    rows = [("versions", r.versions), ("device", f"{r.device} ({r.device_why})"), ("cpu", r.cpu),
            ("threads", r.threads), ("precision", f"{r.precision} ({r.precision_why})")]
    cal = r.calibration
    if cal is not None:
        when = cal.measured_at.replace("T", " ").replace("Z", " UTC")
        rows += [("calibration", f"measured {when}" + (" (just now)" if r.measured_now else "")
                  + f" in {duration(cal.took_s).removeprefix('about ')}; cached in {r.cache}"),
                 ("", f"a step: {cal.overhead_s * 1000:.0f} ms fixed + VGG at {cal.vgg_flops_per_s / 1e9:.1f} GFLOP/s; "
                      f"matrix products {cal.matmul_flops_per_s / 1e9:.1f} GFLOP/s; weights load "
                      f"{cal.startup_s:.1f} s")]
    for i, (what, text) in enumerate(r.expected):
        rows.append(("expected" if i == 0 else "", f"{what}: {text}"))
    for name, text in rows:
        print(f"{name:<12}{text}")
    print("These figures are this machine's as it was when measured: other work running at the same time slows "
          "a run down (impasto doctor --recalibrate measures again).")
    return 0
