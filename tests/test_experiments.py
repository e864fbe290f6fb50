"""Sweeps: experiment files, grouping, resume, batching, the sheet/plots/report and the CLI, on 32 px images."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import STATUSES, Result
from impasto.cli import main
from impasto.core import state as states
from impasto.core.state import RunState
from impasto.experiments import Batch, BatchOutcome, LocalExecutor, load_experiment
from impasto.experiments.report import read_manifest
from impasto.experiments.results import read_status
from impasto.io.recipe import read_recipe
from impasto.samples import sample_style

BASE = """\
[experiment]
title = "tiny study"

[base]
size = 32
start_size = "none"
first_steps = "none"
steps = 4
device = "cpu"
"""

THREE = BASE + """
[[variant]]
name = "plain"
note = "the base"

[[variant]]
name = "heavy"
note = "more style"
style_weight = 40

[[variant]]
name = "deep"
lr = 0.05
content_layers = ["relu5_2"]
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def reference(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> impasto.SweepResult:
    """The three-variant sweep, batched, run once for the tests that compare against it."""
    d = tmp_path_factory.mktemp("reference")
    exp = write(d, THREE)
    return impasto.sweep(exp, content=inputs["content"], styles=[inputs["style"]], output=d / "out", progress=False)


# -- parsing ---------------------------------------------------------------------------------------------------------
def test_base_and_variants(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, THREE))
    assert [v.name for v in exp.variants] == ["plain", "heavy", "deep"]
    assert exp.title == "tiny study" and exp.base.size == 32 and exp.base.steps == 4
    heavy, deep = exp["heavy"], exp["deep"]
    assert heavy.config.style_weight == 40 and heavy.config.size == 32 and heavy.note == "more style"
    assert deep.config.content_layers == ("relu5_2",) and deep.config.lr == 0.05
    assert exp["plain"].config == exp.base


def test_base_alone_runs_once(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, BASE))
    assert [v.name for v in exp.variants] == ["base"]


def test_an_override_makes_the_notes_say_what_ran() -> None:
    """Issue 28: under `--steps 100`, report.toml's train4 note said "2000 steps" on the sheet; now its first line is
    what ran. Notes that state nothing overridden (train2, or every note under --size) stay as written."""
    from PIL import ImageDraw

    from impasto.experiments.results import VariantResult
    from impasto.experiments.sheet import _fonts, _label_rows

    example = load_experiment(Path(__file__).resolve().parents[1] / "examples" / "report.toml")
    ran = example.with_overrides(size=128, steps=100)
    train4 = ran["train4"]
    assert train4.config.steps == 100 and "2000 steps" in example["train4"].note
    assert train4.note == f"[ran steps = 100, not 2000] {example['train4'].note}"
    assert ran["train1"].note.startswith("[ran steps = 100, not 1000] baseline")  # its note says "1000 steps"
    assert ran["train2"].note == example["train2"].note
    assert [v.note for v in example.with_overrides(size=128).variants] == [v.note for v in example.variants]
    rec = VariantResult("train4", train4.config, {"lr": 0.001}, "k", "train4", note=train4.note)
    draw, fonts = ImageDraw.Draw(Image.new("RGB", (1, 1))), _fonts()
    rows = [text for text, _, _ in _label_rows(draw, rec, {}, fonts.text, 128)]
    assert "".join(rows).replace(" ", "").startswith("lr=0.001[ransteps=100,not2000]"), rows  # on the sheet


def _min_content_width(table: str, css: str) -> float:
    """A table's narrowest layout in px, as a browser's auto layout finds it: per column its widest unbreakable run
    (text between spaces and <wbr>; a thumbnail at its width), plus the cells' padding from ``css``. Characters
    are taken at 0.6 em of the table's font size, wider than system-ui's digits and lower case (about 0.55 em)."""
    font = float(re.search(r"table \{[^}]*font-size: (\d+)px", css).group(1))
    pad = 2 * float(re.search(r"th, td \{[^}]*padding: \d+px (\d+)px", css).group(1))
    name_min = float(re.search(r"td\.name \{ min-width: ([\d.]+)em", css).group(1)) * font
    widths: dict[int, float] = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        for i, (attrs, cell) in enumerate(re.findall(r"<t[hd]([^>]*)>(.*?)</t[hd]>", row, re.S)):
            thumbs = [float(w) for w in re.findall(r'<img [^>]*width="(\d+)"', cell)]
            text = re.sub(r"<br>|<wbr>", " ", cell)
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
            w = max([len(piece) * 0.6 * font for piece in text.split()] + thumbs + [0])
            w = max(w, name_min) if 'class="name"' in attrs else w
            widths[i] = max(widths.get(i, 0), w + pad)
    return sum(widths.values())


def test_the_report_table_fits_a_1280_px_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28: report.toml's table was wider than a 1280 px window. Its narrowest layout now fits the page's column
    (the body's max-width); a sweep with more columns scrolls inside its own box, never the page."""
    from impasto.experiments import report
    from impasto.experiments.results import SweepResult, VariantResult
    from impasto.experiments.spec import differences
    from impasto.io.images import LoadedImage

    exp = load_experiment(Path(__file__).resolve().parents[1] / "examples" / "report.toml").with_overrides(steps=100)
    picture = Image.new("RGB", (512, 384), "white")
    history = [{"step": 280, "scale": 4, "time": 1.0, "total": 1.2345e7, "content": 5.907e-13, "style": 1.7745,
                "tv": 0.0, "temporal": 0.0}]
    variants = [VariantResult(v.name, v.config, differences(v.config, exp.base), "0" * 16, v.name, note=v.note,
                              status="cancelled", steps_done=1000, total_steps=1000, elapsed=12345.6, batch_size=8,
                              peak_memory=12345 * 2**20, history=history, image=picture) for v in exp.variants]
    result = SweepResult(exp, Path("out"), variants, LoadedImage(picture, "photo.jpg"),
                         [LoadedImage(picture, "starry_night.jpg")], overrides={"steps": 100}, status="done")
    monkeypatch.setattr(report.findings, "page", lambda result: [])  # the findings measure pictures: not here
    page = report.page(result, b"", {})
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    body = float(re.search(r"body \{[^}]*max-width: (\d+)px", css).group(1))
    assert body <= 1280 - 2 * 16 - 17  # its margins and a scroll bar: the page's column fits the window
    tables = re.findall(r'<div class="wide"><table>(.*?)</table></div>', page, re.S)
    assert len(tables) == page.count("<table>") == 1 and re.search(r"\.wide \{[^}]*overflow-x: auto", css)
    assert _min_content_width(tables[0], css) <= body, _min_content_width(tables[0], css)


def test_grid_is_a_cartesian_product(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, BASE + "[grid]\nstyle_weight = [1, 10, 100]\nlr = [0.01, 0.02]\n"))
    assert len(exp.variants) == 6
    assert exp.variants[0].name == "style_weight=1,lr=0.01"
    got = {(v.config.style_weight, v.config.lr) for v in exp.variants}
    assert got == {(w, lr) for w in (1, 10, 100) for lr in (0.01, 0.02)}


def test_variants_and_grid_mix(tmp_path: Path) -> None:
    text = THREE + "\n[grid]\nseed = [0, 1]\n"
    exp = load_experiment(write(tmp_path, text))
    assert [v.name for v in exp.variants] == [
        "plain[seed=0]", "plain[seed=1]", "heavy[seed=0]", "heavy[seed=1]", "deep[seed=0]", "deep[seed=1]"]
    assert exp["heavy[seed=1]"].config.style_weight == 40 and exp["heavy[seed=1]"].config.seed == 1


def test_style_layers_table_replaces_the_base(tmp_path: Path) -> None:
    text = BASE + '[[variant]]\nname = "two"\n[variant.style_layers]\nrelu1_1 = 0.5\nrelu2_1 = 2\n'
    exp = load_experiment(write(tmp_path, text))
    assert exp["two"].config.style_layers == (("relu1_1", 0.5), ("relu2_1", 2.0))


@pytest.mark.parametrize(("extra", "line", "words"), [
    ('[[variant]]\nname = "x"\nstyle_wieght = 3\n', 13, ["style_wieght", "did you mean 'style_weight'", "allowed"]),
    ('[[variant]]\nname = "x"\nlr = -1\n', 13, ["variant 'x'", "lr = -1.0", "must be a finite number > 0"]),
    ('[[variant]]\nname = "x"\noptimizer = "sgd"\n', 13, ["optimizer", "adam, lbfgs"]),
    ('[[variant]]\nname = "x"\ncontent_layers = ["relu9_9"]\n', 13, ["content_layers", "valid layers"]),
    ('[[variant]]\nname = "a"\n[[variant]]\nname = "a"\n', 14, ["used twice"]),
    ("[grid]\nlr = 0.1\n", 12, ["grid axis lr", "non-empty list"]),
    ("[grid]\npooling = [\"max\", \"mean\"]\n", 12, ["[grid] pooling = mean", "choose one of max, avg"]),
    ("[grid]\nsteps = [4, 0]\n", 12, ["steps = 0", "must be > 0"]),
    ("[bsae]\nsize = 3\n", 11, ["unknown table [bsae]", "did you mean 'base'"]),
    ('[[variant]]\nname = "x"\nlr = 0.1\n[grid]\nlr = [0.2]\n', 13, ["sets lr, which [grid] also sweeps"]),
])
def test_errors_name_line_key_and_choices(tmp_path: Path, extra: str, line: int, words: list[str]) -> None:
    path = write(tmp_path, BASE + "\n" + extra)
    with pytest.raises(impasto.ConfigError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def test_key_outside_any_table(tmp_path: Path) -> None:
    path = write(tmp_path, "# study\nsteps = 3\n" + BASE)
    with pytest.raises(impasto.ConfigError, match=rf"^{path}:2: steps is outside any table; put it under \[base\]"):
        load_experiment(path)


def test_bad_base_value_points_at_base(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("steps = 4", "steps = 4\nstyle_scale = 99") + THREE[len(BASE):])
    with pytest.raises(impasto.ConfigError, match=rf"^{path}:9: \[base\]: style_scale = 99.0 is invalid: "
                                                  "must be between 0.05 and 8"):
        load_experiment(path)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(impasto.ConfigError, match="TOML syntax error.*line 3"):
        load_experiment(write(tmp_path, "[base]\nsize = 32\nsteps = = 4\n"))


def test_blend_needs_as_many_styles(tmp_path: Path, inputs: dict[str, Path]) -> None:
    path = write(tmp_path, BASE + '\n[[variant]]\nname = "mix"\nstyle_blend = [0.2, 0.8]\n')
    with pytest.raises(impasto.ConfigError, match=r"exp.toml:11: variant 'mix': style_blend = 0.2/0.8 has 2 weights "
                                                  r"for 1 style image"):
        impasto.sweep(path, content=inputs["content"], styles=[inputs["style"]], output=tmp_path / "o",
                      progress=False)


# -- a real sweep ----------------------------------------------------------------------------------------------------
def test_sweep_writes_sheet_plots_and_report(reference: impasto.SweepResult) -> None:
    out = reference.output
    assert reference.status == "done" and reference.ran == ["plain", "heavy", "deep"]
    assert [v.status for v in reference.variants] == ["done"] * 3
    for f in ("sheet.png", "report.md", "report.html", "sweep.json", "plots/loss-total.png", "plots/loss-total.svg",
              "plots/loss-content.svg", "plots/loss-style.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "plots/loss-tv.png").is_file()  # the default tv_weight is on: its term is plotted
    assert not (out / "plots/loss-temporal.png").exists()  # temporal is 0 everywhere for stills: no empty plot
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for v in reference.variants:
        assert v.name in md and v.name in page
        assert len(v.history) == 4 and v.elapsed > 0 and v.peak_memory and v.batch_size == 3
        assert v.losses["style"] > 0
    assert "| variant | lr | style_weight | content_layers |" in md  # only the keys that differ  # only the keys that differ
    assert "steps |" in md and "| size |" not in md
    assert page.count("data:image/") >= 4 and 'src="sheet.png"' not in page  # self-contained
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width >= 3 * 200
    recipe = read_recipe(out / "runs" / "heavy.png")
    assert recipe["sweep"]["variant"] == "heavy" and recipe["sweep"]["changes"] == {"style_weight": 40.0}
    assert recipe["config"]["style_weight"] == 40.0
    assert (out / "runs" / "heavy.losses.csv").read_text().count("\n") == 5
    manifest = json.loads((out / "sweep.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["plain", "heavy", "deep"]


def test_rerun_does_no_optimisation(reference: impasto.SweepResult, inputs: dict[str, Path]) -> None:
    steps = []
    again = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]],
                          output=reference.output, progress=False, callback=steps.append)
    assert steps == [] and again.ran == [] and all(v.skipped for v in again.variants)
    for a, b in zip(again.variants, reference.variants):
        assert a.losses == pytest.approx(b.losses) and a.elapsed == pytest.approx(b.elapsed, abs=1e-3)
        assert np.array_equal(pixels(a.image), pixels(b.image))


def test_changed_settings_inputs_or_force_rerun(tmp_path: Path, inputs: dict[str, Path]) -> None:
    exp, out = load_experiment(write(tmp_path, THREE)), tmp_path / "out"

    def ran(**kw: object) -> list[str]:
        fake = Fake()
        kw.setdefault("styles", [inputs["style"]])
        impasto.sweep(exp, content=inputs["content"], output=out, progress=False, executor=fake, plots=False, **kw)
        return [n for names in fake.batches for n in names]

    assert ran() == ["plain", "heavy", "deep"]
    assert ran() == []
    assert ran(steps=2) == ["plain", "heavy", "deep"]  # another config → another key
    assert ran(steps=2, styles=[inputs["style2"]]) == ["plain", "heavy", "deep"]  # other inputs → another key
    assert ran(steps=2, styles=[inputs["style2"]]) == []
    assert ran(steps=2, styles=[inputs["style2"]], force=True) == ["plain", "heavy", "deep"]


def test_interrupted_sweep_resumes(reference: impasto.SweepResult, inputs: dict[str, Path], tmp_path: Path) -> None:
    stop = impasto.StopToken()
    seen: list[int] = []

    def stop_after_two(event: impasto.experiments.SweepStep) -> None:
        seen.append(event.step.step)
        if event.step.step == 2:
            stop.stop("test")

    out = tmp_path / "out"
    first = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]], output=out,
                          progress=False, callback=stop_after_two, stop=stop)
    assert first.status == "cancelled" and {v.status for v in first.variants} == {"cancelled"}
    assert sorted(p.name for p in (out / "runs").glob("*.ckpt")) == ["deep.ckpt", "heavy.ckpt", "plain.ckpt"]
    assert "interrupted at step 2/4" in (out / "report.md").read_text()

    steps: list[int] = []
    second = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]], output=out,
                           progress=False, callback=lambda e: steps.append(e.step.step))
    assert second.status == "done" and sorted(steps) == [3, 3, 3, 4, 4, 4]  # only the steps that were left
    assert not list((out / "runs").glob("*.ckpt"))
    for a, b in zip(second.variants, reference.variants):
        assert [h["step"] for h in a.history] == [1, 2, 3, 4]
        assert a.losses == pytest.approx(b.losses, rel=1e-4)
        assert np.abs(pixels(a.image) - pixels(b.image)).max() <= 1 / 255


def test_batched_equals_sequential(reference: impasto.SweepResult, inputs: dict[str, Path], tmp_path: Path) -> None:
    sizes: list[int] = []

    class Recording(LocalExecutor):
        def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
            sizes.extend(len(b.names) for b in batches)
            yield from super().run(batches, on_step=on_step, stop=stop)

    seq = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]],
                        output=tmp_path / "seq", progress=False, max_batch=1, executor=Recording())
    assert sizes == [1, 1, 1] and {v.batch_size for v in reference.variants} == {3}
    for a, b in zip(seq.variants, reference.variants):
        diff = np.abs(pixels(a.image) - pixels(b.image))
        assert diff.max() <= 2 / 255 and diff.mean() <= 0.2 / 255, (a.name, diff.max())
        assert a.losses == pytest.approx(b.losses, rel=1e-3)


def test_a_cpu_batch_of_large_images_runs_in_parts(reference: impasto.SweepResult, inputs: dict[str, Path],
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU a batch is cut to CPU_BATCH_PIXELS of final-size images a part (there, past that, batching is
    slower than one run after another); the parts paint what the whole batch painted."""
    from impasto.experiments import executors

    w, h = reference.variants[0].image.size
    monkeypatch.setattr(executors, "CPU_BATCH_PIXELS", 2 * w * h + 1)  # room for two of the three
    parts = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]],
                          output=tmp_path / "parts", progress=False)
    assert [v.batch_size for v in parts.variants] == [2, 2, 1]
    for a, b in zip(parts.variants, reference.variants):
        diff = np.abs(pixels(a.image) - pixels(b.image))
        assert diff.max() <= 2 / 255 and diff.mean() <= 0.2 / 255, (a.name, diff.max())
    monkeypatch.setattr(executors, "CPU_BATCH_PIXELS", w * h - 1)  # not even one: each runs alone
    alone = impasto.sweep(reference.experiment, content=inputs["content"], styles=[inputs["style"]],
                          output=tmp_path / "alone", progress=False)
    assert [v.batch_size for v in alone.variants] == [1, 1, 1]


def test_state_cut_and_joined_is_the_same_state() -> None:
    """Per-variant checkpoints: cutting a batch's state into runs and joining them back changes nothing."""
    params = [torch.rand(1, 3, 4, 5, requires_grad=True) for _ in range(3)]
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, (0.1, 0.2, 0.3))])
    sum((p * (i + 1)).sum() for i, p in enumerate(params)).backward()
    opt.step()
    st = RunState(images=[p.detach() * 0.5 for p in params], step=1, scale=0, scale_step=1,
                  params=[p.detach() for p in params], opt_state=opt.state_dict(),
                  ema=[p.detach() * 2 for p in params], ema_count=1, history=[[{"step": 1, "total": float(i)}]
                                                                              for i in range(3)], elapsed=1.5)
    parts = [states.take(st, [i]) for i in range(3)]
    assert [p.opt_state["param_groups"][0]["lr"] for p in parts] == [0.1, 0.2, 0.3]
    joined = states.merge(parts)
    for a, b in zip(joined.params + joined.images + joined.ema, st.params + st.images + st.ema):
        assert torch.equal(a, b)
    assert joined.history == st.history and joined.elapsed == 1.5 and states.position(joined) == states.position(st)
    for k in range(3):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(joined.opt_state["state"][k][key], st.opt_state["state"][k][key])
        assert joined.opt_state["param_groups"][k] == st.opt_state["param_groups"][k]
    swapped = states.take(st, [2, 0])
    assert torch.equal(swapped.params[0], st.params[2]) and swapped.opt_state["param_groups"][0]["lr"] == 0.3
    fresh = torch.optim.Adam([{"params": [p], "lr": 1.0} for p in swapped.params])
    fresh.load_state_dict(swapped.opt_state)  # what the engine does when it continues
    with pytest.raises(ValueError, match="same step"):
        states.merge([parts[0], states.take(RunState(images=[st.images[0]], step=2), [0])])


# -- the runner's seam, with a stand-in executor (no VGG) -------------------------------------------------------------
class Fake:
    """An executor that paints each variant a flat colour; the variant named "bad" diverges (alone, as in core)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, ...]] = []

    def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
        for b in batches:
            self.batches.append(b.names)
            yield BatchOutcome(b, [self._result(b, i) for i in range(len(b.names))], 1 << 20, "fake")

    def _result(self, b: Batch, i: int) -> Result:
        cfg = b.configs[i]
        status = "diverged" if b.names[i] == "bad" else "done"
        hist = [{"step": 1, "scale": 0, "time": 0.1, "total": 2.0, "content": 1.0, "style": 1.0, "tv": 0.0}]
        img = Image.new("RGB", (32, 24), (int(cfg.style_weight) % 255, 0, 0))
        state = RunState(images=[torch.zeros(1, 3, 2, 2) for _ in b.names], step=1,
                         history=[hist for _ in b.names], status=status)
        return Result(img, cfg, hist, status, "", 0.1, {"inputs_fingerprint": "f", "config": cfg.to_dict()}, state)


def test_groups_follow_batch_key_and_a_diverged_variant_does_not_stop_its_batch(tmp_path: Path, inputs: dict[str, Path]) -> None:
    text = BASE + """
[[variant]]
name = "a"
[[variant]]
name = "bad"
style_weight = 7
[[variant]]
name = "bigger"
size = 40
[[variant]]
name = "c"
lr = 0.1
"""
    fake = Fake()
    result = impasto.sweep(write(tmp_path, text), content=inputs["content"], styles=[inputs["style"]],
                           output=tmp_path / "out", progress=False, executor=fake, plots=False)
    # size differs → its own batch; "bad" diverged in its batch, its batch-mates finished there (nothing reruns).
    assert fake.batches == [("a", "bad", "c"), ("bigger",)]
    assert {v.name: v.status for v in result.variants} == {"a": "done", "bad": "diverged", "bigger": "done",
                                                           "c": "done"}
    assert result["c"].changes == {"lr": 0.1}


def test_report_is_redrawn_while_a_batch_runs(tmp_path: Path, inputs: dict[str, Path]) -> None:
    seen: list[str] = []

    class Stepping(Fake):
        def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
            for b in batches:
                for step in (1, 2):
                    for i in range(len(b.names)):
                        on_step(b, impasto.Step(step=step, total_steps=4, scale=0, scales=1, size=(24, 32),
                                                losses={"total": 3.0 - step, "content": 1.0, "style": 2.0 - step / 2,
                                                        "tv": 0.0}, elapsed=0.1 * step, index=i,
                                                render=lambda: Image.new("RGB", (32, 24), (0, 90, 0))))
                    seen.append((tmp_path / "out" / "report.md").read_text())
            yield from super().run(batches, on_step=on_step, stop=stop)

    impasto.sweep(write(tmp_path, THREE), content=inputs["content"], styles=[inputs["style"]],
                  output=tmp_path / "out", progress=False, executor=Stepping(), refresh=1e-9, plots=False)
    assert "| running |" in seen[0] and "| 1/4 |" in seen[0] and "| 2/4 |" in seen[1]
    assert "| done |" in (tmp_path / "out" / "report.md").read_text()


def test_every_status_a_sweep_writes_is_in_the_vocabulary(tmp_path: Path, inputs: dict[str, Path]) -> None:
    """Variants are queued, running, done, diverged or failed (their batch never came back); the sweep is running,
    then failed; a rerun finishes it. Old words (pending, incomplete) still read."""
    text = BASE + """
[[variant]]
name = "a"
[[variant]]
name = "bad"
style_weight = 7
[[variant]]
name = "lost"
size = 40
"""
    out = tmp_path / "out"
    seen: list[dict] = []

    class Losing(Fake):  # the batch holding "lost" takes a step, then its worker dies
        def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
            seen.append(json.loads((out / "sweep.json").read_text()))
            for b in batches:
                if "lost" in b.names:
                    on_step(b, SimpleNamespace(index=0, step=1, total_steps=4, scale=0, elapsed=0.1, render=None,
                                               losses={"total": 2.0, "content": 1.0, "style": 1.0, "tv": 0.0}))
                    raise RuntimeError("the worker was lost")
                yield from super().run([b], on_step=on_step, stop=stop)

    exp = write(tmp_path, text)
    with pytest.raises(RuntimeError, match="worker was lost"):
        impasto.sweep(exp, content=inputs["content"], styles=[inputs["style"]], output=out, progress=False,
                      executor=Losing(), plots=False)
    manifest = json.loads((out / "sweep.json").read_text())
    assert seen[0]["status"] == "running" and {v["status"] for v in seen[0]["variants"]} == {"queued"}
    assert manifest["status"] == "failed"
    assert {v["name"]: v["status"] for v in manifest["variants"]} == {"a": "done", "bad": "diverged", "lost": "failed"}
    records = [json.loads(p.read_text())["status"] for p in (out / "runs").glob("*.json")]
    written = [seen[0]["status"], manifest["status"], *(v["status"] for m in (seen[0], manifest)
                                                        for v in m["variants"]), *records]
    assert set(written) <= set(STATUSES) and set(written) == set(STATUSES) - {"cancelled"}

    again = impasto.sweep(exp, content=inputs["content"], styles=[inputs["style"]], output=out, progress=False,
                          executor=Fake(), plots=False)
    assert again.status == "done" and again.ran == ["lost"]

    # A manifest and a record written before the one vocabulary
    old = {**manifest, "status": "incomplete", "variants": [{**v, "status": "pending"} for v in manifest["variants"]]}
    (out / "sweep.json").write_text(json.dumps(old))
    back = read_manifest(out / "sweep.json")
    assert back["status"] == "failed" and {v["status"] for v in back["variants"]} == {"queued"}
    assert (read_status("pending"), read_status("incomplete"), read_status("diverged")) == ("queued", "failed",
                                                                                             "diverged")
    with pytest.raises(ValueError, match="unknown status 'finished'"):
        read_status("finished")


def test_missing_inputs_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(impasto.ConfigError, match="no content image"):
        impasto.sweep(write(tmp_path, THREE), styles=[sample_style(32, 32)], output=tmp_path / "o", progress=False)


def test_inputs_from_the_experiment_file(tmp_path: Path, inputs: dict[str, Path]) -> None:
    shutil.copy(inputs["content"], tmp_path / "c.png")
    shutil.copy(inputs["style"], tmp_path / "s.png")
    text = THREE.replace('title = "tiny study"', 'title = "t"\ncontent = "c.png"\nstyles = ["s.png"]')
    fake = Fake()
    result = impasto.sweep(write(tmp_path, text), output=tmp_path / "out", progress=False, executor=fake, plots=False)
    assert result.content.name.endswith("c.png") and len(result.styles) == 1 and result.status == "done"


# -- the command line -------------------------------------------------------------------------------------------------
def test_cli_sweep_reuses_finished_runs(reference: impasto.SweepResult, inputs: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference.output, out)
    exp = write(tmp_path, THREE)
    code = main(["sweep", str(exp), "--content", str(inputs["content"]), "--style", str(inputs["style"]),
                 "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "3 variants (0 run, 3 already done)" in err and "report.html" in err


def test_a_sweep_says_first_what_it_will_take_here(inputs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from impasto.api import estimate_run
    from impasto.estimate import duration

    exp = write(tmp_path, THREE + "\n[grid]\nsize = [32, 48]\n")  # two sizes: two batches
    code = main(["sweep", str(exp), "--content", str(inputs["content"]), "--style", str(inputs["style"]),
                 "-o", str(tmp_path / "out"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    cfg = impasto.StyleConfig(start_size=None, first_steps=None, steps=1, device="cpu")
    seconds = sum(estimate_run(inputs["content"], inputs["style"], cfg.replace(size=s), runs=3)[0].seconds
                  for s in (32, 48))
    assert err.splitlines()[0] == f"impasto: 6 variants in 2 batches: {duration(seconds)} here", err


def test_cli_dry_run_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = write(tmp_path, THREE + "\n[grid]\nsize = [32, 48]\n")
    assert main(["sweep", str(exp), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "6 variants in 2 batch group(s)" in text and "heavy[size=48]" in text
    assert "on a CPU to 250k final-size pixels a batch" in text  # how a group is cut when it runs
    assert main(["sweep", str(exp), "--dry-run", "--steps", "2"]) == 0
    bad = write(tmp_path, BASE + '\n[[variant]]\nname = "x"\npooling = "mean"\n', "bad.toml")
    assert main(["sweep", str(bad), "--content", "c.png", "--style", "s.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"impasto: error: {bad}:13: variant 'x': pooling = 'mean' is invalid: choose one of max, avg")
    assert main(["sweep", str(exp), "--size", "8", "--dry-run"]) == 2
    assert "size = 8 is invalid" in capsys.readouterr().err


def test_readme_sweep_example_runs(tmp_path: Path, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' Python sweep example (docs/how-to/sweeps.md), at 32 px and 2 steps, on examples/report.toml."""
    root = Path(__file__).resolve().parents[1]
    page = root / "docs" / "how-to" / "sweeps.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    code = next(b for b in blocks if "impasto.sweep(" in b)
    assert "size=128, fast_forward=10" in code
    code = code.replace("size=128, fast_forward=10", "size=32, steps=20, fast_forward=10, progress=False")
    (tmp_path / "examples").mkdir()
    shutil.copy(root / "examples" / "report.toml", tmp_path / "examples" / "report.toml")
    for name, src in (("photo.jpg", "content"), ("style.jpg", "style"), ("style2.jpg", "style2")):
        with Image.open(inputs[src]) as im:
            im.convert("RGB").save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    ns: dict[str, object] = {}
    exec(compile(code, str(page), "exec"), ns)
    result = ns["result"]
    assert isinstance(result, impasto.SweepResult) and result.status == "done"
    assert [v.name for v in result.variants] == ["train1", "train2", "train3", "train4", "train5", "train6",
                                                 "train7a", "train7b"]
