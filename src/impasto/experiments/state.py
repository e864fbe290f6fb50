"""Cutting a batch's RunState into one state per run, and joining runs' states back into a batch.

A sweep checkpoints each variant on its own, because the batch a variant ran in is an accident of what else was
pending: a rerun may batch it with different neighbours, or alone. Runs can share a batch only when they stand at
the same point of the schedule (``position``), since one batch steps all its images in lockstep.

The engine's RunState keeps per-run lists (images, optimiser variables, EMA, history) and one Adam ``state_dict``
with one parameter group per run (``core.optimize`` builds it that way so that each run has its own learning rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.optimize import RunState

# The RunState fields this module knows how to cut and join; a field added to RunState must be handled here too.
KNOWN_FIELDS = {"images", "step", "scale", "scale_step", "params", "opt_state", "ema", "ema_count", "history",
                "status", "message", "elapsed", "diverged"}


def _check_fields() -> None:
    new = set(RunState.__dataclass_fields__) - KNOWN_FIELDS
    if new:
        raise NotImplementedError(f"experiments.state does not know RunState's {sorted(new)}: teach take/merge them")


def position(state: RunState) -> tuple[Any, ...]:
    """What must be equal for states to continue as one batch."""
    return (state.step, state.scale, state.scale_step, state.ema_count, state.ema is not None,
            state.params is not None, state.opt_state is not None)


def take(state: RunState, indices: Sequence[int]) -> RunState:
    """The runs at ``indices`` of a batch's state, as a state of their own (numbered from 0)."""
    _check_fields()
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
    )


def merge(states: Sequence[RunState]) -> RunState:
    """States at the same ``position`` → one batch state (runs in the given order)."""
    _check_fields()
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
        diverged=_merge_diverged(states),
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
