"""RunState: everything needed to continue a run of a batch, cut into runs and joined into batches, warm-started.

The state is explicit so that a run can be checkpointed, resumed, split from the batch it ran in (a sweep
checkpoints each variant on its own, because which variants share a batch is an accident of what else was
pending), joined with other runs at the same point of the schedule, or used to start the next video frame.

Per-run lists (images, optimiser variables, EMA, history) and one Adam ``state_dict`` with one parameter group per
run (``core.optimize`` builds it that way so that each run has its own learning rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class RunState:
    """Everything needed to continue a run (of a batch of ``n`` images)."""

    images: list[torch.Tensor]  # n × (1, 3, H, W) current output images in [0, 1] (EMA when on)
    step: int = 0  # steps done over all scales
    scale: int = 0  # index of the current scale
    scale_step: int = 0  # steps done within the current scale
    params: list[torch.Tensor] | None = None  # optimiser variables at the current scale (None: from ``images``)
    opt_state: dict | None = None  # optimiser.state_dict() at the current scale
    ema: list[torch.Tensor] | None = None
    ema_count: int = 0
    history: list[list[dict[str, float]]] = field(default_factory=list)
    status: str = "running"  # running | done | cancelled | diverged (every run of the batch); see events.Status
    message: str = ""
    elapsed: float = 0.0
    # Runs of a batch whose loss or pixels became NaN/Inf: index → message. Each keeps its last finite image and
    # stops moving; the others go on (a batch's gradients are per run, so one run's NaN cannot reach another's).
    diverged: dict[int, str] = field(default_factory=dict)
    # Set when the optimiser's moments were carried from a coarser scale (or an earlier frame) and still have to be
    # rescaled to this scale's gradients at its first step (see optimize.rescale_moments).
    rescale_pending: bool = False

    @property
    def n(self) -> int:
        return len(self.images)

    def item_status(self, i: int) -> str:
        return "diverged" if i in self.diverged else self.status

    def item_message(self, i: int) -> str:
        return self.diverged.get(i, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown run-state fields {sorted(unknown)}")
        return cls(**d)


def warm_start(previous: RunState, images: Sequence[torch.Tensor] | None = None, *,
               carry_optimizer: bool = True) -> RunState:
    """A fresh run (step 0, empty history) that starts where ``previous`` ended: from its images, or from
    ``images`` (e.g. the previous video frame's output warped to this frame), with its Adam moments carried (they
    are resized and rescaled to the new run's first scale, like a scale change) when ``carry_optimizer``."""
    start = [t.detach().clone() for t in (images if images is not None else previous.images)]
    opt = previous.opt_state if carry_optimizer and previous.opt_state is not None else None
    return RunState(images=start, history=[[] for _ in start], params=None,
                    opt_state=_copy_opt(opt) if opt is not None else None, rescale_pending=opt is not None)


def _copy_opt(opt_state: dict[str, Any]) -> dict[str, Any]:
    return {"state": {k: {n: (v.clone() if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
                      for k, s in opt_state["state"].items()},
            "param_groups": [dict(g) for g in opt_state["param_groups"]]}


def position(state: RunState) -> tuple[Any, ...]:
    """What must be equal for states to continue as one batch."""
    return (state.step, state.scale, state.scale_step, state.ema_count, state.ema is not None,
            state.params is not None, state.opt_state is not None, state.rescale_pending)


def take(state: RunState, indices: Sequence[int]) -> RunState:
    """The runs at ``indices`` of a batch's state, as a state of their own (numbered from 0)."""
    pick = list(indices)
    return RunState(
        images=[state.images[i] for i in pick],
        step=state.step, scale=state.scale, scale_step=state.scale_step,
        params=[state.params[i] for i in pick] if state.params is not None else None,
        opt_state=_take_opt(state.opt_state, pick) if state.opt_state is not None else None,
        ema=[state.ema[i] for i in pick] if state.ema is not None else None,
        ema_count=state.ema_count,
        history=[state.history[i] for i in pick] if state.history else [[] for _ in pick],
        status=state.status, message=state.message, elapsed=state.elapsed,
        diverged={new: state.diverged[old] for new, old in enumerate(pick) if old in state.diverged},
        rescale_pending=state.rescale_pending,
    )


def merge(states: Sequence[RunState]) -> RunState:
    """States at the same ``position`` → one batch state (runs in the given order)."""
    if not states:
        raise ValueError("nothing to merge")
    first = states[0]
    if any(position(s) != position(first) for s in states[1:]):
        raise ValueError("only states at the same step, scale and EMA count can share a batch")
    return RunState(
        images=[im for s in states for im in s.images],
        step=first.step, scale=first.scale, scale_step=first.scale_step,
        params=[p for s in states for p in s.params] if first.params is not None else None,  # type: ignore[union-attr]
        opt_state=_merge_opt([s.opt_state for s in states]) if first.opt_state is not None else None,  # type: ignore[misc]
        ema=[e for s in states for e in s.ema] if first.ema is not None else None,  # type: ignore[union-attr]
        ema_count=first.ema_count,
        history=[h for s in states for h in s.history],
        status=first.status, message=first.message, elapsed=max(s.elapsed for s in states),
        diverged=_merge_diverged(states), rescale_pending=first.rescale_pending,
    )


def _merge_diverged(states: Sequence[RunState]) -> dict[int, str]:
    out: dict[int, str] = {}
    offset = 0
    for s in states:
        out.update({offset + i: msg for i, msg in s.diverged.items()})
        offset += len(s.images)
    return out


def _take_opt(opt_state: dict[str, Any], pick: list[int]) -> dict[str, Any]:
    groups = opt_state["param_groups"]
    if len(groups) <= max(pick):
        raise ValueError("this optimiser state has fewer parameter groups than runs (not a batch of Adam runs)")
    new_state: dict[int, Any] = {}
    new_groups = []
    nid = 0
    for i in pick:
        ids = []
        for pid in groups[i]["params"]:
            if pid in opt_state["state"]:
                new_state[nid] = opt_state["state"][pid]
            ids.append(nid)
            nid += 1
        new_groups.append({**groups[i], "params": ids})
    return {"state": new_state, "param_groups": new_groups}


def _merge_opt(opt_states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    new_state: dict[int, Any] = {}
    new_groups = []
    nid = 0
    for st in opt_states:
        for group in st["param_groups"]:
            ids = []
            for pid in group["params"]:
                if pid in st["state"]:
                    new_state[nid] = st["state"][pid]
                ids.append(nid)
                nid += 1
            new_groups.append({**group, "params": ids})
    return {"state": new_state, "param_groups": new_groups}
