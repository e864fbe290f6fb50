"""The objective is a list of named terms: a new term is one class in that list, and the history and the CSV pick it
up from there (the seam that video's temporal term and the masks' guided style term plug into)."""

from __future__ import annotations

import csv

import torch

import impasto
from impasto.config import StyleConfig
from impasto.core import objective as objective_module
from impasto.core.terms import TERMS, Term


class Brightness(Term):
    """A stand-in term: the squared distance of each image's mean brightness from 0.5 (a pixel term)."""

    name = "brightness"
    description = "mean brightness away from 0.5"
    kind = "pixels"

    @staticmethod
    def weight(cfg):  # a real term reads its own config field (e.g. cfg.temporal_weight)
        return 2.0

    @classmethod
    def build(cls, ctx, device):
        return cls()

    def forward(self, feats, img):
        return (img.mean(dim=(1, 2, 3)) - 0.5).pow(2)


def test_a_new_term_is_one_class_in_the_list(monkeypatch, content_img, style_img, tmp_path):
    monkeypatch.setattr(objective_module, "TERMS", (*TERMS, Brightness))
    cfg = StyleConfig(size=32, start_size=None, steps=3, precision="fp32")
    out = tmp_path / "out.png"
    result = impasto.stylize(content_img, style_img, cfg, progress=False, output=out)
    last = result.history[-1]
    assert "brightness" in last
    # It is weighted into the total like every other term: total = Σ weight · term.
    expected = (cfg.content_weight * last["content"] + cfg.style_weight * last["style"] + cfg.tv_weight * last["tv"]
                + 2.0 * last["brightness"])
    assert abs(last["total"] - expected) <= 1e-5 * last["total"]
    with open(out.with_suffix(".losses.csv")) as f:
        rows = list(csv.DictReader(f))
    assert abs(float(rows[-1]["brightness"]) - last["brightness"]) < 1e-9
    # Its gradient reaches the pixels: with only this term the image moves towards mean brightness 0.5.
    obj = objective_module.Objective(impasto.api.load_vgg("bundled"), torch.zeros(1, 3, 32, 32) + 0.2,
                                     [torch.rand(1, 3, 32, 32)], [cfg.replace(style_weight=0.0, content_weight=0.0)])
    x = (torch.zeros(1, 3, 32, 32) + 0.2).requires_grad_(True)
    obj(x)["total"].sum().backward()
    assert bool((x.grad < 0).all())  # d/dx 2·(mean − 0.5)² < 0 below 0.5: every pixel is pushed up
