"""Where ``impasto sweep`` and ``impasto batch`` run: their shared ``--executor``/``--address`` flags.

Imports nothing heavy (the commands' parsers are built for ``--help`` without torch or ray); ``executor_from_args``
imports Ray only when ``--executor ray`` is asked for, and says what to install when it is missing.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

EXECUTORS = ("local", "ray")


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where it runs (local, or a Ray cluster: pip install 'impasto[ray]')")
    g.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local: in this process, one batch after another; ray: on a Ray cluster's workers "
                        "[default: local, or ray when --address is given]")
    g.add_argument("--address", metavar="ADDRESS",
                   help="the Ray cluster: auto (the one this machine joined with 'ray start'), or "
                        "ray://HOST:10001 [default: a Ray instance started on this machine]")
    g.add_argument("--workers", type=int, metavar="N",
                   help="at most N Ray workers [default: one per GPU, or one per --cpus-per-worker cores]")
    g.add_argument("--gpus-per-worker", type=float, default=1.0, metavar="X",
                   help="GPUs each Ray worker holds; 0.5 packs two small jobs on a GPU [default: 1]")
    g.add_argument("--cpus-per-worker", type=int, default=4, metavar="N",
                   help="cores each Ray worker holds on a cluster without GPUs [default: 4]")


def executor_from_args(args: argparse.Namespace) -> Any:
    """None (the local executor) or a ``RayExecutor`` for the flags; Ray is imported here, not at parse time."""
    kind = args.executor or ("ray" if args.address else "local")
    if kind == "local":
        given = [f for f in ("address", "workers") if getattr(args, f) is not None]
        if given:
            from ..errors import ConfigError

            raise ConfigError(f"--{given[0]} is for --executor ray")
        return None
    from .ray_executor import RayExecutor, require_ray

    require_ray()  # before any work: one line saying what to install
    return RayExecutor(args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                       cpus_per_worker=args.cpus_per_worker)


def spread(executor: Any, n_variants: int, max_batch: int | None) -> int | None:
    """``--batch`` for a Ray executor when none is given: batches of ``ceil(variants / workers)``, so that every
    worker gets one (the plan alone would put every variant that can share a batch into one, for one worker). Said
    on stderr: the same ``--batch`` on the local executor paints the same pictures."""
    if executor is None or max_batch is not None:
        return max_batch
    workers = executor.capacity()
    size = max(1, math.ceil(n_variants / workers))
    if workers > 1:
        print(f"impasto: note: batches of at most {size} for {workers} Ray workers (--batch N chooses; the same "
              "--batch locally paints the same pictures)", file=sys.stderr)
    return size
