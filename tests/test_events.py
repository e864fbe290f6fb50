"""What flows out of a run and what flows in: Steps pickle to plain data, a shared StopToken reaches another process,
and a finished run's state seeds the next (warm start)."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import time

import pytest
import torch

from impasto.config import StyleConfig
from impasto.core.events import Step, StopToken
from impasto.core.objective import Objective
from impasto.core.optimize import ADAM_BETAS, optimize
from impasto.core.state import RunState, warm_start
from impasto.io.images import pil_to_tensor, resize_long
from impasto.weights import load_vgg

SMALL = dict(size=32, start_size=None, steps=3, first_steps=None, precision="fp32",
             style_layers="relu1_1,relu2_1", content_layers=("relu2_1",))


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


@pytest.fixture
def tensors(content_img, style_img):
    return pil_to_tensor(resize_long(content_img, 32)), pil_to_tensor(resize_long(style_img, 32))


# -- Step ------------------------------------------------------------------------------------------------------------
def test_a_step_with_a_renderer_pickles_to_plain_data():
    calls = []
    step = Step(step=3, total_steps=10, scale=1, scales=2, size=(24, 32), losses={"total": 1.5, "style": 1.0},
                elapsed=0.25, index=1, frame=7, render=lambda: calls.append(1) or "an image")
    assert step.image() == "an image" and calls == [1]  # in this process the renderer works

    back = pickle.loads(pickle.dumps(step))
    assert back == step and type(back) is Step
    assert (back.step, back.size, back.losses, back.index, back.frame) == (3, (24, 32), step.losses, 1, 7)
    assert back.render is None
    with pytest.raises(RuntimeError, match="carries no image"):
        back.image()
    assert calls == [1]  # unpickling did not call the renderer
    assert pickle.loads(pickle.dumps(Step(1, 1, 0, 1, (16, 16), {"total": 0.0}, 0.0))).frame is None


# -- StopToken -------------------------------------------------------------------------------------------------------
def _wait_for_stop(token: StopToken, back: StopToken, queue, timeout: float) -> None:
    """In a child process: report ready, wait until ``token`` is stopped (or time out), report what it saw, then
    stop ``back`` for the parent."""
    queue.put("ready")
    deadline = time.monotonic() + timeout
    while not token.stopped and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.put((token.stopped, token.reason))
    back.stop("from child")


def test_a_shared_stop_token_works_across_processes():
    ctx = multiprocessing.get_context("spawn")
    token, back = StopToken.shared(ctx), StopToken.shared(ctx)
    queue = ctx.Queue()
    child = ctx.Process(target=_wait_for_stop, args=(token, back, queue, 60.0))
    child.start()
    try:
        assert queue.get(timeout=120) == "ready"
        assert not token.stopped
        token.stop("from parent")
        assert queue.get(timeout=90) == (True, "from parent")
        child.join(timeout=30)
        assert child.exitcode == 0
        assert back.stopped and back.reason == "from child"  # and the other way round
    finally:
        if child.is_alive():
            child.kill()
            child.join()


def test_a_plain_stop_token_refuses_to_pickle():
    token = StopToken()
    with pytest.raises(TypeError, match=r"StopToken\.shared\(\)"):
        pickle.dumps(token)
    token.stop("here")
    assert token.stopped and token.reason == "here"


# -- warm start ------------------------------------------------------------------------------------------------------
def test_warm_start_begins_a_fresh_run_where_the_last_ended(vgg, tensors):
    content, style = tensors
    cfg = StyleConfig(**SMALL)
    prev = optimize(vgg, content, [style], [cfg])
    assert prev.status == "done" and prev.step == 3 and prev.opt_state is not None

    nxt = warm_start(prev)
    assert (nxt.step, nxt.scale, nxt.scale_step, nxt.status) == (0, 0, 0, "running")
    assert nxt.history == [[]] and nxt.params is None and nxt.ema is None and nxt.rescale_pending
    assert torch.equal(nxt.images[0], prev.images[0]) and nxt.images[0] is not prev.images[0]
    st, old = nxt.opt_state["state"][0], prev.opt_state["state"][0]
    assert torch.equal(st["exp_avg"], old["exp_avg"]) and torch.equal(st["exp_avg_sq"], old["exp_avg_sq"])
    st["exp_avg"].add_(1.0)  # a copy: the previous run's state is untouched
    assert not torch.equal(st["exp_avg"], old["exp_avg"])

    given = torch.full_like(prev.images[0], 0.5)
    assert torch.equal(warm_start(prev, [given]).images[0], given)
    cold = warm_start(prev, carry_optimizer=False)
    assert cold.opt_state is None and not cold.rescale_pending

    done = optimize(vgg, content, [style], [cfg], state=warm_start(prev))
    assert done.status == "done" and done.step == cfg.steps and len(done.history[0]) == cfg.steps


def test_a_warm_started_first_step_uses_the_carried_moments_rescaled(vgg, tensors):
    """Oracle: Adam by hand from the previous state_dict; before its first update the moments are matched to the
    current gradient (v × s², m × s with s² = mean(g²) / mean(v̂)), then the pixels are clamped to [0, 1]."""
    content, style = tensors
    cfg = StyleConfig(**SMALL, style_weight=100.0, lr=0.05)
    prev = optimize(vgg, content, [style], [cfg])
    saved = copy.deepcopy(prev.opt_state)
    one = optimize(vgg, content, [style], [cfg.replace(steps=1)], state=warm_start(prev))

    x = prev.images[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr, betas=ADAM_BETAS)
    opt.load_state_dict(saved)
    Objective(vgg, content, [style], [cfg])(x)["total"].sum().backward()
    st = opt.state[x]
    v_hat = st["exp_avg_sq"] / (1 - ADAM_BETAS[1] ** float(st["step"]))
    s2 = x.grad.pow(2).mean() / v_hat.mean()
    assert abs(float(s2) - 1) > 1e-3  # the rescaling is not a no-op here
    st["exp_avg_sq"].mul_(s2)
    st["exp_avg"].mul_(s2.sqrt())
    opt.step()
    expected = x.detach().clamp(0, 1)
    torch.testing.assert_close(one.images[0], expected, rtol=1e-5, atol=1e-6)
    assert not one.rescale_pending


def test_run_state_round_trips_and_refuses_unknown_fields(tensors):
    content, _ = tensors
    state = RunState(images=[content], history=[[]])
    again = RunState.from_dict(state.to_dict())
    assert again.to_dict().keys() == state.to_dict().keys() and torch.equal(again.images[0], content)
    with pytest.raises(ValueError, match="colour"):
        RunState.from_dict({**state.to_dict(), "colour": "red"})
