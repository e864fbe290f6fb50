"""Loss terms against hand-computed values, float64 gradchecks, and the Gram loss's defining invariance."""

from __future__ import annotations

import torch

from impasto.core.losses import ContentLoss, GramLoss, WassersteinLoss, gram_matrix, tv_loss


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    raw = torch.tensor([[30.0, 6.0], [6.0, 2.0]])  # rows · rows of the flattened channels
    torch.testing.assert_close(gram_matrix(f, "classic")[0], raw)
    torch.testing.assert_close(gram_matrix(f, "relative")[0], raw / 4)
    torch.testing.assert_close(gram_matrix(f, "jcjohnson")[0], raw / 8)


def test_content_loss_by_hand():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    feat = torch.tensor([[[[1.0, 0.0], [3.0, 6.0]]]])
    assert ContentLoss(target, "classic")(feat).item() == (4 + 4) / 4
    rel = ContentLoss(target, "relative")(feat).item()
    assert abs(rel - 8 / 30) < 1e-6


def test_gram_loss_formulas_by_hand():
    g = torch.Generator().manual_seed(0)
    t, f = torch.rand(1, 3, 4, 5, generator=g), torch.rand(1, 3, 4, 5, generator=g)
    gt, gf = t.reshape(3, 20) @ t.reshape(3, 20).T, f.reshape(3, 20) @ f.reshape(3, 20).T
    classic = GramLoss(gram_matrix(t, "classic"), "classic")(f).item()
    assert abs(classic - ((gf - gt) ** 2).mean().item() / (3 * 4 * 5)) < 1e-4 * classic
    jj = GramLoss(gram_matrix(t, "jcjohnson"), "jcjohnson")(f).item()
    assert abs(jj - ((gf / 60 - gt / 60) ** 2).mean().item()) < 1e-5 * max(jj, 1e-9)
    rel = GramLoss(gram_matrix(t), "relative")(f).item()
    assert abs(rel - ((gf - gt) ** 2).sum().item() / (gt**2).sum().item()) < 1e-5


def test_relative_losses_do_not_depend_on_activation_scale_or_size():
    g = torch.Generator().manual_seed(1)
    t, f = torch.rand(1, 8, 6, 6, generator=g), torch.rand(1, 8, 6, 6, generator=g)
    a = GramLoss(gram_matrix(t)).forward(f).item()
    b = GramLoss(gram_matrix(t * 50)).forward(f * 50).item()  # another weight source's scale
    assert abs(a - b) < 1e-4 * a
    big_t, big_f = t.repeat(1, 1, 2, 2), f.repeat(1, 1, 2, 2)  # same statistics on a larger image
    assert abs(GramLoss(gram_matrix(big_t))(big_f).item() - a) < 1e-4 * a
    assert abs(ContentLoss(t * 50)(f * 50).item() - ContentLoss(t)(f).item()) < 1e-5


def test_style_loss_is_invariant_to_spatial_shuffling():
    g = torch.Generator().manual_seed(2)
    target, feat = torch.rand(1, 6, 7, 9, generator=g), torch.rand(1, 6, 7, 9, generator=g)
    perm = torch.randperm(63, generator=g)
    shuffled = feat.reshape(1, 6, 63)[:, :, perm].reshape(1, 6, 7, 9)
    for cls, stats in ((GramLoss, gram_matrix(target)), (WassersteinLoss, WassersteinLoss.stats(target))):
        loss = cls(stats)
        torch.testing.assert_close(loss(feat), loss(shuffled), rtol=1e-4, atol=1e-6)
    # ...while the content loss is not.
    assert ContentLoss(target)(feat).item() != ContentLoss(target)(shuffled).item()


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64)
    feat = torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    for norm in ("relative", "classic", "jcjohnson"):
        gram = GramLoss(gram_matrix(target, norm), norm)
        content = ContentLoss(target, norm)
        assert torch.autograd.gradcheck(lambda x: gram(x).sum(), (feat,))
        assert torch.autograd.gradcheck(lambda x: content(x).sum(), (feat,))
    w2 = WassersteinLoss(WassersteinLoss.stats(target))
    assert torch.autograd.gradcheck(lambda x: w2(x).sum(), (feat,), atol=1e-5)
    img = torch.rand(1, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tv_loss(x).sum(), (img,))


def test_wasserstein_is_zero_for_the_same_statistics_and_positive_otherwise():
    g = torch.Generator().manual_seed(4)
    t = torch.rand(1, 4, 8, 8, generator=g, dtype=torch.float64)
    loss = WassersteinLoss(WassersteinLoss.stats(t))
    assert abs(loss(t).item()) < 1e-6
    assert loss(t * 2 + 1).item() > 0.1


def test_tv_by_hand():
    img = torch.zeros(1, 3, 2, 2)
    img[..., 0, 0] = 1.0
    # dx: 3 channels × 2 rows × 1 → one difference of 1 per channel → mean 3/6; dy likewise.
    assert abs(tv_loss(img).item() - 1.0) < 1e-6
    # neural-style: both differences over the top-left (H-1)×(W-1) crop, ½·Σ(dx² + dy²) on 0-255: ½·(3 + 3)·255².
    assert abs(tv_loss(img, "jcjohnson").item() - 3 * 255**2) < 1e-2


def test_jcjohnson_tv_gradient_is_neural_styles():
    """Oracle: neural_style.lua's TVLoss:updateGradInput, transcribed (on the 0-255 image, strength 1)."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    tv_loss(img, "jcjohnson").sum().backward()
    x = img.detach()[0] * 255
    x_diff = x[:, :-1, :-1] - x[:, :-1, 1:]
    y_diff = x[:, :-1, :-1] - x[:, 1:, :-1]
    grad = torch.zeros_like(x)
    grad[:, :-1, :-1] += x_diff + y_diff
    grad[:, :-1, 1:] -= x_diff
    grad[:, 1:, :-1] -= y_diff
    torch.testing.assert_close(img.grad[0], grad * 255)  # d/d(pixel in [0, 1]) = 255 · d/d(0-255 pixel)


def test_guide_weights_positions():
    g = torch.Generator().manual_seed(5)
    t, f = torch.rand(1, 4, 8, 8, generator=g), torch.rand(1, 4, 8, 8, generator=g)
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(GramLoss(gram_matrix(t))(f, ones), GramLoss(gram_matrix(t))(f))
    half = torch.zeros(1, 1, 8, 8)
    half[..., :4] = 1
    # Only the guided half counts: changing the other half changes nothing.
    f2 = f.clone()
    f2[..., 4:] = 0
    torch.testing.assert_close(ContentLoss(t)(f, half), ContentLoss(t)(f2, half))
