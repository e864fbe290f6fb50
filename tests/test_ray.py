"""The Ray executor on a local Ray instance (started once for the module): the same pictures as the local executor,
a stop that keeps checkpoints, a worker killed mid-batch (retried once elsewhere, then marked failed), batch jobs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.samples import sample_content, sample_style

if importlib.util.find_spec("ray") is None:  # CI installs it with impasto[all]; a platform without wheels skips
    pytest.skip("ray is not installed (pip install 'impasto[ray]'); it has no wheels for some platforms",
                allow_module_level=True)

from impasto.experiments.ray_executor import RayExecutor

STUDY = """\
[base]
size = 32
start_size = "none"
first_steps = "none"
steps = 16
device = "cpu"

[[variant]]
name = "plain"

[[variant]]
name = "heavy"
style_weight = 40

[[variant]]
name = "deep"
lr = 0.05
content_layers = ["relu5_2"]

[[variant]]
name = "late"
seed = 3
"""


@pytest.fixture(scope="module")
def ray_cluster():
    import torch

    import ray

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    executor = RayExecutor(cpus_per_worker=1)  # two workers of one core each: one torch thread each
    # On a CPU a convolution's sums are ordered by the threads that share them: the local runs compared with the
    # workers' use one thread too, so that equal pixels can be asked for.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield executor
    torch.set_num_threads(threads)
    executor.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ray-inputs")
    paths = {"content": d / "content.png", "style": d / "style.png", "style2": d / "style2.png",
             "study": d / "study.toml"}
    sample_content(48, 36).save(paths["content"])
    sample_style(40, 40).save(paths["style"])
    sample_style(40, 40, seed=3).save(paths["style2"])
    paths["study"].write_text(STUDY, encoding="utf-8")
    return paths


def _sweep(files: dict[str, Path], out: Path, **kw) -> impasto.SweepResult:
    return impasto.sweep(files["study"], content=files["content"], styles=[files["style"]], output=out,
                         progress=False, plots=False, max_batch=2, **kw)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_same_pictures_as_local_and_resume(ray_cluster: RayExecutor, files: dict[str, Path], tmp_path: Path) -> None:
    local = _sweep(files, tmp_path / "local")
    remote = _sweep(files, tmp_path / "ray", executor=ray_cluster)
    assert remote.status == "done" and [v.batch_size for v in remote.variants] == [2, 2, 2, 2]
    for a, b in zip(local.variants, remote.variants):
        assert np.array_equal(_pixels(a.path), _pixels(b.path)), a.name  # equal pixels, not merely close
        assert a.losses == b.losses and len(b.history) == 16
    assert {p.name for p in (tmp_path / "ray" / "runs").glob("*.png")} == {f"{n}.png" for n in
                                                                            ("plain", "heavy", "deep", "late")}

    # A stop: the running batches come back cancelled with their state; the driver writes the checkpoints.
    stop = impasto.StopToken()
    cut = _sweep(files, tmp_path / "cut", executor=ray_cluster, stop=stop,
                 callback=lambda e: stop.stop("test"))  # at the first step that arrives
    assert cut.status == "cancelled"
    assert any(v.status == "cancelled" for v in cut.variants)
    ckpts = {p.stem for p in (tmp_path / "cut" / "runs").glob("*.ckpt")}
    assert ckpts == {v.name for v in cut.variants if v.status == "cancelled"}
    where = {v.name: v.steps_done if v.status == "cancelled" else 0 for v in cut.variants if not v.finished}
    assert max(where.values()) >= 1
    first: dict[str, int] = {}
    again = _sweep(files, tmp_path / "cut", executor=ray_cluster,
                   callback=lambda e: first.setdefault(e.variant, e.step.step))
    assert again.status == "done" and not list((tmp_path / "cut" / "runs").glob("*.ckpt"))
    assert first == {name: done + 1 for name, done in where.items()}  # each went on from its checkpoint
    for a, b in zip(local.variants, again.variants):
        assert np.array_equal(_pixels(a.path), _pixels(b.path)), a.name


def test_a_killed_worker_loses_only_its_batch(ray_cluster: RayExecutor, files: dict[str, Path],
                                              tmp_path: Path) -> None:
    import ray

    kills: list[object] = []

    def kill(times: int):
        def callback(event: impasto.experiments.SweepStep) -> None:
            worker = ray_cluster.busy.get(event.batch)  # the worker running this batch now
            if event.variant == "deep" and len(kills) < times and worker is not None and worker not in kills:
                kills.append(worker)
                ray.kill(worker, no_restart=True)
        return callback

    # 24 steps: the batches run long enough that a kill always lands while the worker is still at it.
    once = _sweep(files, tmp_path / "once", executor=ray_cluster, callback=kill(1), steps=24)
    assert len(kills) == 1 and once.status == "done"  # retried elsewhere, and finished
    assert {v.status for v in once.variants} == {"done"}

    kills.clear()
    twice = _sweep(files, tmp_path / "twice", executor=ray_cluster, callback=kill(2), steps=24)
    assert len(kills) == 2 and twice.status == "failed"
    failed = [v for v in twice.variants if v.status == "failed"]
    assert {v.name for v in failed} == {"deep", "late"}  # the batch that was lost twice, and only it
    assert "lost" in failed[0].message and "twice" in failed[0].message
    assert {v.status for v in twice.variants if v not in failed} == {"done"}
    record = (tmp_path / "twice" / "runs" / "deep.json").read_text()
    assert '"failed"' in record
    rerun = _sweep(files, tmp_path / "twice", executor=ray_cluster, steps=24)  # a rerun runs only what failed
    assert rerun.status == "done" and sorted(rerun.ran) == ["deep", "late"]


def test_batch_job_fans_out(ray_cluster: RayExecutor, files: dict[str, Path], tmp_path: Path) -> None:
    tiny = {"size": 32, "steps": 4, "start_size": None, "first_steps": None, "device": "cpu"}
    styles = [files["style"], files["style2"]]
    batches: set[int] = set()
    remote = impasto.experiments.batch([files["content"]], styles, output=tmp_path / "ray", executor=ray_cluster,
                                       progress=False, callback=lambda e: batches.add(e.batch), **tiny)
    assert remote.status == "done" and batches == {1, 2}  # one content, two workers: a batch each
    local = impasto.experiments.batch([files["content"]], styles, output=tmp_path / "local", max_batch=1,
                                      progress=False, **tiny)
    for a, b in zip(local.pairs, remote.pairs):
        assert np.array_equal(_pixels(a.path), _pixels(b.path)), a.name


def test_cli_flags_choose_the_executor() -> None:
    from impasto.cli import build_parser
    from impasto.experiments.cluster import executor_from_args

    parse = build_parser().parse_args
    assert executor_from_args(parse(["sweep", "x.toml"])) is None
    ex = executor_from_args(parse(["sweep", "x.toml", "--address", "auto", "--workers", "3"]))
    assert isinstance(ex, RayExecutor) and ex.address == "auto" and ex.max_workers == 3
    ex = executor_from_args(parse(["batch", "a.png", "--style", "s.png", "-o", "out", "--executor", "ray",
                                   "--gpus-per-worker", "0.5"]))
    assert isinstance(ex, RayExecutor) and ex.address is None and ex.gpus_per_worker == 0.5



def test_the_cli_spreads_a_sweep_over_the_workers(ray_cluster: RayExecutor) -> None:
    from impasto.experiments.cluster import spread

    assert spread(ray_cluster, 4, None) == 2 and spread(ray_cluster, 5, None) == 3  # two workers: two batches
    assert spread(ray_cluster, 4, 1) == 1 and spread(None, 4, None) is None  # --batch, or the local executor
