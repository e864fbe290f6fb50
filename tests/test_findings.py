"""The findings table (experiments/claims.py, experiments/findings.py): the keys read as if a stranger wrote them,
the verdicts on pictures whose answers are known, and a tiny real sweep end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import Result, RunState
from impasto.experiments import Batch, BatchOutcome, load_experiment
from impasto.experiments.findings import rises, study_findings

BASE = """\
[base]
size = 32
start_size = "none"
first_steps = "none"
steps = 3
device = "cpu"
"""

KNOWN = BASE + """
[findings]
baseline = "photo"
meter_size = 32
report_every = 2

[[variant]]
name = "photo"                       # the fake executor paints the content image itself
report_losses = [12.0, 11.0]

[[variant]]
name = "copy"                        # the same picture again
seed = 1
claim = "not much changing"
expect = ["similar"]

[[variant]]
name = "painting"                    # the style image itself
seed = 2
claim = "stronger style, less content detail"
expect = ["more-style", "more-style14", "less-content", "more-colour", "differs"]
claims = [{ by = "a sceptic", claim = "looks like the photo", expect = ["similar", "more-content"] }]

[[variant]]
name = "smooth"                      # the photo again, with a loss that never rises
seed = 3
claim = "smoother, more stable convergence"
expect = ["steadier", "lower-loss", "differs-from:painting", "similar-to:copy"]

[[variant]]
name = "unsaid"
seed = 4
claim = "no checks given"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


class Painter:
    """An executor that paints known pictures: the photo, or the style image for "painting"; "smooth"'s loss falls
    at every step, the others' rises once."""

    def __init__(self, inputs: dict[str, Path]) -> None:
        self.photo = Image.open(inputs["content"]).convert("RGB").resize((32, 24))
        self.style = Image.open(inputs["style"]).convert("RGB").resize((32, 24))

    def run(self, batches, *, on_step, stop):  # type: ignore[no-untyped-def]
        for b in batches:
            yield BatchOutcome(b, [self._result(b, i) for i in range(len(b.names))], 1 << 20, "fake")

    def _result(self, b: Batch, i: int) -> Result:
        name = b.names[i].split("[")[0]  # painting[lr=0.01] paints as painting does
        totals = [10.0, 9.0, 8.0] if name == "smooth" else [12.0, 13.0, 11.0]
        hist = [{"step": s + 1, "scale": 0, "time": 0.1, "total": t, "content": 1.0, "style": 1.0, "tv": 0.0}
                for s, t in enumerate(totals)]
        img = self.style if name == "painting" else self.photo
        state = RunState(images=[torch.zeros(1, 3, 2, 2) for _ in b.names], step=3,
                         history=[hist for _ in b.names], status="done")  # a batch's state: one per run
        return Result(img.copy(), b.configs[i], hist, "done", "", 0.1,
                      {"inputs_fingerprint": "f", "config": b.configs[i].to_dict()}, state)


@pytest.fixture(scope="module")
def known(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> impasto.SweepResult:
    d = tmp_path_factory.mktemp("known")
    return impasto.sweep(write(d, KNOWN), content=inputs["content"], styles=[inputs["style"]], output=d / "out",
                         progress=False, executor=Painter(inputs), plots=False)


def verdicts(result: impasto.SweepResult) -> dict[tuple[str, str], tuple[str, dict[str, bool | None]]]:
    f = study_findings(result)
    assert f is not None
    return {(v.variant, v.claim.by): (v.verdict, {c.word: c.holds for c in v.checks}) for v in f.verdicts}


def test_verdicts_on_known_pictures(known: impasto.SweepResult) -> None:
    got = verdicts(known)
    assert got[("copy", "report")] == ("borne out", {"similar": True})  # identical pictures
    assert got[("painting", "report")] == ("borne out", dict.fromkeys(
        ["more-style", "more-style14", "less-content", "more-colour", "differs"], True))  # the painting itself
    assert got[("painting", "a sceptic")] == ("not borne out", {"similar": False, "more-content": False})
    assert got[("smooth", "report")] == ("borne out", {"steadier": True, "lower-loss": True,
                                                       "differs-from:painting": True, "similar-to:copy": True})
    assert got[("unsaid", "report")] == ("not checked", {})
    f = study_findings(known)
    assert f is not None
    rows = {r.name: r for r in f.rows}
    assert rows["copy"].distances == rows["photo"].distances and rows["copy"].pixel_diff == 0.0
    assert rows["photo"].distances is not None and rows["photo"].distances.content == 0.0
    assert rows["photo"].rises == 0.5 and rows["smooth"].rises == 0.0
    assert rows["photo"].report_losses == (12.0, 11.0) and rows["photo"].totals_at == ((2, 13.0),)


def test_the_findings_are_in_the_report_and_the_manifest(known: impasto.SweepResult) -> None:
    md = (known.output / "report.md").read_text(encoding="utf-8")
    page = (known.output / "report.html").read_text(encoding="utf-8")
    for text in (md, page):
        assert "Findings" in text and "stronger style, less content detail" in text and "a sceptic" in text
        assert "not borne out" in text and "borne out" in text and "12 → 11" in text
        assert "above 0.02" in text and "2%" in text  # the thresholds are stated
    assert "| painting | stronger style, less content detail | report | more-style ✓ (style " in md
    found = json.loads((known.output / "sweep.json").read_text())["findings"]
    assert found["baseline"] == "photo" and found["differs"] == 0.02 and found["meter_size"] == 32
    claims = {(c["variant"], c["by"]): c["verdict"] for c in found["claims"]}
    assert claims[("copy", "report")] == "borne out" and claims[("painting", "a sceptic")] == "not borne out"
    photo = next(v for v in found["variants"] if v["name"] == "photo")
    assert photo["distances"]["content"] == 0.0 and photo["report_losses"] == [12.0, 11.0]
    assert {"style", "style14", "content", "colour"} <= set(photo["distances"])


def test_each_picture_is_measured_once(known: impasto.SweepResult) -> None:
    from impasto.experiments.report import publish

    before = {k for k in known.cache if k[0] == "distances"}
    publish(known, plots=False)
    assert {k for k in known.cache if k[0] == "distances"} == before and len(before) == 2  # photo, painting


def test_loss_rises() -> None:
    h = [{"step": 1, "scale": 0, "total": 3.0}, {"step": 2, "scale": 0, "total": 4.0},
         {"step": 3, "scale": 1, "total": 9.0}, {"step": 4, "scale": 1, "total": 8.0}]
    assert rises(h) == 0.5  # the scale change (4 → 9) is not a rise
    assert rises(h[:1]) is None


def test_a_grid_compares_each_point_with_the_baseline_at_that_point(tmp_path: Path, inputs: dict[str, Path]) -> None:
    text = KNOWN.replace("report_every = 2\n", "") + "\n[grid]\nlr = [0.01, 0.02]\n"
    result = impasto.sweep(write(tmp_path, text), content=inputs["content"], styles=[inputs["style"]],
                           output=tmp_path / "out", progress=False, executor=Painter(inputs), plots=False)
    f = study_findings(result)
    assert f is not None
    rows = {r.name: r for r in f.rows}
    assert rows["painting[lr=0.02]"].baseline == "photo[lr=0.02]"
    assert verdicts(result)[("smooth[lr=0.01]", "report")][0] == "borne out"


def test_a_two_style_blend_is_measured_against_its_own_target(tmp_path: Path, inputs: dict[str, Path]) -> None:
    text = BASE + """
[findings]
baseline = "one"
meter_size = 32
[[variant]]
name = "one"
style_blend = [1, 0]
[[variant]]
name = "mix"
style_blend = [0.2, 0.8]
"""
    result = impasto.sweep(write(tmp_path, text), content=inputs["content"], styles=[inputs["style"],
                           inputs["style2"]], output=tmp_path / "out", progress=False, executor=Painter(inputs),
                           plots=False)
    f = study_findings(result)
    assert f is not None
    one, mix = f.rows
    assert one.blend == (1.0, 0.0) and mix.blend == (0.2, 0.8)
    assert one.distances is not None and mix.distances is not None
    assert one.distances.style != mix.distances.style  # the same picture, two targets
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| 0.2 style.png + 0.8 style2.png |" in md


def test_without_findings_the_report_has_none(tmp_path: Path, inputs: dict[str, Path]) -> None:
    result = impasto.sweep(write(tmp_path, BASE + '[[variant]]\nname = "a"\n'), content=inputs["content"],
                           styles=[inputs["style"]], output=tmp_path / "out", progress=False,
                           executor=Painter(inputs), plots=False)
    assert study_findings(result) is None and not result.cache
    assert "Findings" not in (tmp_path / "out" / "report.md").read_text()
    assert "findings" not in json.loads((tmp_path / "out" / "sweep.json").read_text())


# -- the keys, read as if a stranger wrote them --------------------------------------------------------------------
TWO = BASE + '\n[findings]\nbaseline = "a"\n\n[[variant]]\nname = "a"\n\n[[variant]]\nname = "b"\n'


@pytest.mark.parametrize(("text", "line", "key", "words"), [
    (TWO.replace('baseline = "a"', 'baseline = "aa"'), 9, "baseline", ["not a [[variant]]'s name", "(a, b)"]),
    (TWO.replace('baseline = "a"\n', ""), 8, None, ["baseline is missing"]),
    (TWO.replace('baseline = "a"', 'baseline = "a"\nmargn = 0.1'), 10, "margn",
     ["unknown key 'margn'", "did you mean 'margin'"]),
    (TWO.replace('baseline = "a"', 'baseline = "a"\ndiffers = "big"'), 10, "differs", ["differs = 'big'"]),
    (TWO.replace('baseline = "a"', 'baseline = "a"\nmargin = 1.5'), 10, "margin", ["up to (not including) 1"]),
    (TWO.replace('baseline = "a"', 'baseline = "a"\nmeter_size = 8'), 10, "meter_size", ["from 16"]),
    (TWO + 'claim = "x"\nexpect = ["more-stlye"]\n', 17, "expect", ["'more-stlye'", "did you mean 'more-style'"]),
    (TWO + 'claim = "x"\nexpect = ["differs-from:c"]\n', 17, "expect", ["no variant 'c'"]),
    (TWO + 'claim = "x"\nexpect = ["differs-from:b"]\n', 17, "expect", ["with itself"]),
    (TWO + 'claim = "x"\nexpect = ["differs-from"]\n', 17, "expect", ["names no variant", "differs-from:NAME"]),
    (TWO + 'claim = "x"\nexpect = "more-style, less-content"\n', 17, "expect", ["not a word"]),
    (TWO + 'claim = "x"\nexpect = [1]\n', 17, "expect", ["give a list of words"]),
    (TWO + 'expect = ["differs"]\n', 16, "expect", ["without claim"]),
    (TWO + 'claim = ""\n', 16, "claim", ["non-empty string"]),
    (TWO + "report_losses = [1, -2]\n", 16, "report_losses", ["numbers >= 0"]),
    (TWO + 'report_losses = "15159387"\n', 16, "report_losses", ["a list of numbers"]),
    (TWO + "report_losses = [true]\n", 16, "report_losses", ["a list of numbers"]),
    (TWO + 'claims = [{ claim = "x", expct = [] }]\n', 16, "claims", ["unknown key 'expct'"]),
    (TWO + 'claims = [{ claim = "x", expect = ["smoother"] }]\n', 16, "claims", ["'smoother'"]),
    (TWO + 'claims = "x"\n', 16, "claims", ["a list of tables"]),
    (TWO.replace('name = "a"\n', 'name = "a"\nclaim = "x"\nexpect = ["differs"]\n'), 14, "expect",
     ["the baseline 'a' with itself"]),
    (BASE + '\n[[variant]]\nname = "a"\nclaim = "x"\n', 10, "claim", ["no [findings] table", "baseline ="]),
    (BASE + '\n[findings]\nbaseline = "base"\n', 9, "baseline", ["no [[variant]] tables"]),
    ("findings = 3\n" + BASE, 1, "findings", ["findings must be a table"]),
])
def test_bad_findings_keys_are_one_line_naming_the_key(tmp_path: Path, text: str, line: int, key: str | None,
                                                       words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(impasto.ConfigError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: ") and "\n" not in msg, msg
    assert e.value.key == key
    for w in words:
        assert w in msg, msg


def test_claims_parse(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, KNOWN))
    spec = exp.findings
    assert spec is not None and spec.baseline == "photo" and spec.margin == 0.02 and spec.report_every == 2
    painting = spec.claims["painting"]
    assert [c.by for c in painting] == ["report", "a sceptic"] and painting[1].expect == ("similar", "more-content")
    assert spec.report_losses == {"photo": (12.0, 11.0)} and "copy" not in spec.report_losses
    assert exp["painting"].config.seed == 2 and "claim" not in exp["painting"].overrides
    again = exp.with_overrides(steps=2)
    assert again.findings == spec and again["painting"].origin == "painting" and again["painting"].config.steps == 2


# -- a real sweep, end to end -------------------------------------------------------------------------------------
def test_a_tiny_real_sweep_bears_out_what_its_pictures_must_show(tmp_path: Path, inputs: dict[str, Path]) -> None:
    """Three Adam steps with a learning rate too small to move a pixel: each picture stays its initial image, so
    a run started from the style image must read more stylised than one started from the photo."""
    text = BASE.replace("steps = 3", "steps = 3\nlr = 1e-9") + f"""
[findings]
baseline = "photo"
meter_size = 32

[[variant]]
name = "photo"

[[variant]]
name = "again"
seed = 5
claim = "not much changing"
expect = ["similar"]

[[variant]]
name = "painting"
init = "{inputs['style'].as_posix()}"
claim = "stronger style, less content detail"
expect = ["more-style", "more-style14", "less-content", "differs"]
"""
    result = impasto.sweep(write(tmp_path, text), content=inputs["content"], styles=[inputs["style"]],
                           output=tmp_path / "out", progress=False, plots=False)
    assert result.status == "done"
    got = verdicts(result)
    assert got[("again", "report")][0] == "borne out"
    assert got[("painting", "report")] == ("borne out", dict.fromkeys(
        ["more-style", "more-style14", "less-content", "differs"], True))
    photo = np.asarray(result["photo"].image, dtype=np.float64)
    assert np.abs(photo - np.asarray(result["again"].image, dtype=np.float64)).max() <= 1


def test_the_docs_findings_example_parses(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "how-to" / "sweeps.md").read_text(encoding="utf-8")
    snippet = text.split("## Findings", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    exp = load_experiment(write(tmp_path, BASE + '[[variant]]\nname = "train1"\n' + snippet))
    assert exp.findings is not None and exp.findings.baseline == "train1"
    assert [c.by for c in exp.findings.claims["train3"]] == ["report", "issue 11"]
    words = text.split("The words of `expect`", 1)[1].split("\n\n", 2)[1]
    from impasto.experiments.claims import WORDS

    listed = {w.strip("` ") for row in words.splitlines()[2:] for w in row.split("|")[1].split(",")}
    assert listed == set(WORDS)  # the docs' table is the vocabulary, no more and no less
