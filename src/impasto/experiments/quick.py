"""``impasto sweep --fast-forward K``: a quick look at a long Adam study (issue 28: ``--steps 100`` on the study's
recipe, Adam at lr 0.003, gave eight near-copies of the photo)."""

from __future__ import annotations

import dataclasses
import math

from ..config import StyleConfig
from ..errors import ConfigError
from .spec import Experiment, overridden


def fast_forwarded(exp: Experiment, factor: int) -> Experiment:
    """The same experiment in ``factor`` times fewer steps at ``factor`` times the learning rate, base and
    variants alike (the CLI's ``--fast-forward``): a quick look at what a long Adam study will show. Adam moves
    each pixel about ``lr`` a step, so its path is about as long and the variants keep their differences in lr
    and steps (train 4's lr ÷ 3 for 2 × the steps stays lr ÷ 3 for 2 × the steps). Adam only."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"fast_forward = {factor!r} is invalid: give a whole number, 1 or more (10: a tenth "
                          "of the steps at 10× the learning rate)", key="fast_forward")
    if factor == 1:
        return exp
    lbfgs = [v.name for v in exp.variants if v.config.optimizer != "adam"]
    if lbfgs or exp.base.optimizer != "adam":
        who = f"variant {lbfgs[0]!r}" if lbfgs else "the base"
        raise ConfigError(f"--fast-forward trades steps for Adam's learning rate, and {who} runs L-BFGS: run "
                          "it without --fast-forward, or with --steps", key="fast_forward")

    def faster(cfg: StyleConfig) -> StyleConfig:
        def fewer(n: int) -> int:
            return max(1, math.ceil(n / factor))
        return cfg.replace(steps=fewer(cfg.steps), lr=float(f"{cfg.lr * factor:.12g}"),  # 0.03, not 0.030000000000000002
                           first_steps=None if cfg.first_steps is None else fewer(cfg.first_steps),
                           scale_steps=None if cfg.scale_steps is None else tuple(fewer(n) for n in cfg.scale_steps))

    variants = tuple(overridden(v, faster(v.config)) for v in exp.variants)
    return dataclasses.replace(exp, base=faster(exp.base), variants=variants)
