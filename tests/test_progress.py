"""Progress that tells the truth: the per-scale ETA against synthetic timings, the bar's words, text bars without
escape codes, and a sweep that runs (without plots) when matplotlib is missing."""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

import impasto
from impasto import progress
from impasto.api import Result, RunState, schedule
from impasto.core.schedule import scale_sizes
from impasto.experiments import BatchOutcome
from impasto.progress import Eta, RunProgress, SweepBars, fit, losses_text, scale_text, work_left
from impasto.samples import sample_content, sample_style

Event = tuple[int, int, float]  # (scale, step, clock)


def simulate(sizes: list[tuple[int, int]], steps: list[int], per_step: Callable[[int], float], *,
             setup: float = 0.0, noise: float = 0.1, seed: int = 0) -> list[Event]:
    """A run's clock at each step: per_step(pixels) with ±noise, and a setup cost at each new scale."""
    rng, t, k, out = random.Random(seed), 0.0, 0, []
    for s, ((h, w), n) in enumerate(zip(sizes, steps)):
        t += setup
        for _ in range(n):
            t += per_step(h * w) * (1 + rng.uniform(-noise, noise))
            k += 1
            out.append((s, k, t))
    return out


def errors(events: list[Event], sizes: list[tuple[int, int]], steps: list[int], every: int = 25,
           ) -> list[tuple[int, int, float, float]]:
    """(step, scale, Eta's estimate / truth, plain extrapolation / truth) every ``every`` steps."""
    eta, end, total, rows = Eta.for_schedule(sizes, steps), events[-1][2], len(events), []
    for scale, k, t in events:
        eta.update(scale, k, t)
        if k % every == 0 and k < total:
            truth, guess = end - t, eta.remaining()
            assert guess is not None
            rows.append((k, scale, guess / truth, t / k * (total - k) / truth))
    return rows


@pytest.mark.parametrize("factor", [math.sqrt(2), 2.0])  # each scale's steps cost 2× or 4× the last's
@pytest.mark.parametrize("overhead", [0.0, 0.3])  # fixed cost per step, as a fraction of the first scale's
def test_eta_follows_the_cost_of_each_scale(factor: float, overhead: float) -> None:
    sizes = scale_sizes((384, 512), 128, factor)
    steps = [200] + [100] * (len(sizes) - 1)
    px0 = sizes[0][0] * sizes[0][1]
    per_step = lambda px: 1e-6 * (overhead * px0 + px)
    rows = errors(simulate(sizes, steps, per_step, setup=per_step(px0) * 5), sizes, steps)
    for k, scale, ratio, plain in rows:
        # With one scale measured the model is proportional, so fixed costs make it overestimate a little;
        # from the second scale on the fitted line is within a few per cent.
        limit = 0.2 if scale > 0 or overhead == 0 else 0.3
        assert abs(ratio - 1) <= limit, (k, scale, ratio)
        assert plain < 0.5, (k, plain)  # what tqdm's plain extrapolation would say: less than half the truth


def test_eta_shrugs_off_slow_first_steps() -> None:
    """A process's first steps are slow (allocations, kernel selection), and so is a scale's first (its targets)."""
    sizes, steps = scale_sizes((384, 512), 128, math.sqrt(2)), [200, 100, 100, 100, 100]
    events = simulate(sizes, steps, lambda px: 1e-6 * px, setup=0.5)
    events = [(s, k, t + 2.0 * min(k, 3)) for s, k, t in events]  # steps 1-3: 2 s more each, 100x a step
    for k, _scale, ratio, _plain in errors(events, sizes, steps):
        assert abs(ratio - 1) <= 0.2 or k < 10, (k, ratio)


def test_eta_of_a_resumed_run_and_an_early_ended_scale() -> None:
    sizes, steps = [(64, 64), (128, 128), (256, 256)], [100, 50, 50]
    events = simulate(sizes, steps, lambda px: 1e-6 * px, noise=0.0)
    eta = Eta.for_schedule(sizes, steps)
    assert eta.remaining() is None
    for scale, k, t in events[120:125]:  # resumed at step 121 (scale 1): nothing timed before it
        eta.update(scale, k, t)
    left = eta.remaining()
    assert left is not None and left == pytest.approx(events[-1][2] - events[124][2], rel=0.01)
    # ``tol`` ends a scale early: the next scale's steps are counted from where it really began
    eta = Eta.for_schedule(sizes, steps)
    for scale, k, t in [(0, 1, 1.0), (0, 2, 2.0), (1, 3, 6.0), (1, 4, 10.0)]:
        eta.update(scale, k, t)
    assert eta.remaining() == pytest.approx(48 * 4 + 50 * 16, rel=0.05)


def test_fit_is_a_line_through_the_rates() -> None:
    line = fit([(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)])
    assert line is not None and line(8.0) == pytest.approx(17.0)
    assert fit([(2.0, 4.0)])(6.0) == pytest.approx(12.0)  # type: ignore[misc]  # one point: proportional
    assert fit([(1.0, 5.0), (2.0, 4.0)])(9.0) == 4.0  # type: ignore[misc]  # a slope <= 0: flat
    assert fit([]) is None
    assert work_left([(2, 2), (4, 4)], [3, 2]) == 3 * 4 + 2 * 16
    assert work_left([(2, 2), (4, 4)], [3, 2], done=4) == 16  # 3 of the first scale, 1 of the second


SIZES = [(96, 128), (136, 181), (192, 256)]


def step(n: int, scale: int = 1, index: int = 0, eta: float | None = None) -> impasto.Step:
    return impasto.Step(step=n, total_steps=6, scale=scale, scales=3, size=SIZES[scale],
                        losses={"total": 1234.5, "content": 2.0, "style": 3.0, "tv": 0.0, "temporal": 0.5},
                        elapsed=0.1 * n, index=index, eta=eta)


def test_the_bar_says_scale_size_and_short_losses() -> None:
    assert scale_text(step(3)) == "scale 2/3 · 181 px"
    assert losses_text(step(3).losses) == "total=1.23e+03 content=2 style=3 temporal=0.5"  # tv is zero: left out


def test_a_text_bar_is_one_line_without_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert progress.mode() == "text"  # pytest's captured stderr is not a terminal
    bar = RunProgress(SIZES, [2, 2, 2], runs=2)
    lefts = []
    for n in range(1, 7):
        for i in range(2):
            lefts.append(bar.update(step(n, scale=(n - 1) // 2, index=i)))
    bar.close()
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1, repr(err)
    assert "2 runs · scale 3/3 · 256 px" in err and "6/6" in err and "total=1.23e+03" in err
    assert lefts[0] is None and lefts[2] is not None and lefts[2] == lefts[3]  # one estimate per step


class Fake:
    """An executor that reports two steps per variant and paints it flat (no VGG)."""

    def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
        for b in batches:
            for n in (1, 2):
                for i in range(len(b.names)):
                    on_step(b, impasto.Step(step=n, total_steps=2, scale=0, scales=1, size=(24, 32),
                                            losses={"total": 3.0 - n, "content": 1.0, "style": 2.0, "tv": 0.0},
                                            elapsed=0.1 * n, index=i, eta=0.1 * (2 - n)))
            yield BatchOutcome(b, [self.result(b, i) for i in range(len(b.names))], 1 << 20, "fake")

    def result(self, b, i):  # type: ignore[no-untyped-def]
        hist = [{"step": n, "scale": 0, "time": 0.1 * n, "total": 3.0 - n, "content": 1.0, "style": 2.0, "tv": 0.0}
                for n in (1, 2)]
        state = RunState(images=[torch.zeros(1, 3, 2, 2) for _ in b.names], step=2, history=[hist] * len(b.names),
                         status="done")
        return Result(Image.new("RGB", (32, 24), (40 * i, 0, 0)), b.configs[i], hist, "done", "", 0.2,
                      {"inputs_fingerprint": "f", "config": b.configs[i].to_dict()}, state)


EXPERIMENT = """\
[base]
size = 32
start_size = "none"
steps = 2
device = "cpu"

[[variant]]
name = "a"

[[variant]]
name = "b"
style_weight = 40

[[variant]]
name = "bigger"
size = 40
"""


@pytest.fixture
def experiment(tmp_path: Path) -> dict[str, Path]:
    paths = {"exp": tmp_path / "exp.toml", "content": tmp_path / "c.png", "style": tmp_path / "s.png"}
    paths["exp"].write_text(EXPERIMENT, encoding="utf-8")
    sample_content(48, 36).save(paths["content"])
    sample_style(40, 40).save(paths["style"])
    return paths


def test_a_sweep_as_text_is_one_bar_without_escapes(experiment: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    result = impasto.sweep(experiment["exp"], content=experiment["content"], styles=[experiment["style"]],
                           output=experiment["exp"].parent / "out", executor=Fake(), plots=False)
    assert result.status == "done"
    estimate, err = capsys.readouterr().err.split("\n", 1)  # the first line: what the sweep will take here
    assert estimate.startswith("impasto: 3 variants in 2 batches: about ") and estimate.endswith(" here")
    assert "\x1b" not in err, repr(err)
    assert err.count("\n") == 1 and "sweep · batch 2/2 · scale 1/1 · 32 px" in err and "6/6" in err


def test_sweep_bars_estimate_the_waiting_variants() -> None:
    bars = SweepBars(True, 6, {"a": 2 * 768.0, "b": 2 * 768.0, "c": 2 * 768.0})
    batch = type("B", (), {"index": 1, "names": ("a", "b")})()
    bars.update(batch, step(1, scale=0, index=0, eta=1.0), last=False)
    left = bars.left(batch.names, step(1, eta=1.0))
    assert left is not None and left >= 1.0  # the batch's own ETA, plus "c" at the rate so far
    bars.close()


def test_sweep_runs_without_matplotlib(experiment: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    out = experiment["exp"].parent / "out"
    result = impasto.sweep(experiment["exp"], content=experiment["content"], styles=[experiment["style"]],
                           output=out, executor=Fake(), progress=False)
    assert result.status == "done" and not list((out / "plots").iterdir())
    assert not [k for k in result.files if k.startswith("plot_")]
    for report in ("report.md", "report.html"):
        text = (out / report).read_text()
        assert "No loss plots: they need matplotlib" in text and "impasto[sweep]" in text


def test_callbacks_and_the_schedule_see_the_same_eta() -> None:
    seen: list[impasto.Step] = []
    cfg = impasto.StyleConfig(size=32, start_size=16, steps=2, first_steps=3, device="cpu",
                              style_layers="relu1_1", content_layers=("relu1_1",))
    impasto.stylize(sample_content(32, 24), sample_style(24, 24), cfg, callback=seen.append, progress=False)
    sizes, steps = schedule(cfg, (24, 32))
    assert [s.size for s in seen] == [sz for sz, n in zip(sizes, steps) for _ in range(n)]
    # the machine is calibrated (conftest): the first step already has the model's estimate, before any is timed
    assert all(s.eta is not None and s.eta >= 0 for s in seen)
    assert seen[-1].eta == pytest.approx(0.0, abs=1e-9)


def test_web_jobs_carry_the_scale_and_the_eta(tmp_path: Path) -> None:
    """What ``GET /api/jobs/{id}`` and the ``progress`` events send: the scale, the scales and ``eta_s``."""
    from impasto.io.images import LoadedImage
    from impasto.web.jobs import JobQueue

    seen: list[dict] = []

    def run(content, styles, config, *, callback, stop, progress):  # type: ignore[no-untyped-def]
        img = Image.new("RGB", (32, 24))
        for n, (scale, eta) in enumerate([(0, None), (0, 4.0), (1, 2.5)], start=1):
            callback(impasto.Step(step=n, total_steps=4, scale=scale, scales=2, size=SIZES[scale], eta=eta,
                                  losses={"total": 1.0, "content": 0.5, "style": 0.5}, elapsed=0.1 * n,
                                  render=lambda: img))
            seen.append(queue.describe(queue.jobs()[0]))
        return Result(img, config, [], "done", "", 0.3, {"inputs_fingerprint": "f", "config": config.to_dict()})

    queue = JobQueue(tmp_path / "results", "cpu", run=run)
    im = sample_content(32, 24)
    job = queue.submit(LoadedImage(im, "c.png"), [LoadedImage(im, "s.png")], impasto.StyleConfig(size=32))
    queue.start()
    deadline = time.monotonic() + 60
    while queue.describe(job)["status"] not in impasto.api.FINAL and time.monotonic() < deadline:
        time.sleep(0.02)
    queue.close()
    assert [(d["scale"], d["scales"], d["eta_s"]) for d in seen] == [(0, 2, None), (0, 2, 4.0), (1, 2, 2.5)]
    assert seen[-1]["size"] == list(SIZES[1])
    assert queue.describe(job)["eta_s"] is None and queue.describe(job)["status"] == "done"  # only while running
