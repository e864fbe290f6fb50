"""Reliability v2 (issue 12), the file side: a full disk, two processes on one folder, an unwritable stderr, crafted
files read back, diagnoses that name the real problem, and the temporary files a killed writer leaves.

Corpus: 143 cases in all. Full disk (18): 3 OS calls × 3 errnos at ``atomic_write``, a real 256 KiB tmpfs (full,
then read-only), and 7 write paths (the CSV after the PNG, Ctrl-C's checkpoint-then-PNG and the resume, a snapshot
mid-run, the sweep's report, a stopped sweep's variant, a web job's inputs (and its 507), a web job's result). Folder
locks (10): a second process, the same process twice, a killed owner, a stale lock file, the exclusive-file fallback
(stale, live, another host's), a second sweep and a second server through the CLI, serve holding its folder.
Streams (5): stderr /dev/full and closed in a real run, a raising stderr under the API's bar, stdout /dev/full,
SafeStream. Crafted files (67): 19 recipe chunks (13 contents, 3 damaged chunks, escape sequences, uncompressed, an
oversized raw chunk), 22 checkpoints (21 fields, and one through the CLI), 14 sweep records, histories and
manifests, 10 job.json files (7 fields, 2 bodies, a linked result), escapes in a file name and in a lock file.
Diagnoses (26): 7 path kinds as the content image, FIFO and loop for configs, weights and recipes, a FIFO
checkpoint, permission denied (2), a 20 MB ICC profile and a 3 MB text chunk, 8 outputs. Stale temporaries (17): 10
name/age/pid kinds, a folder, a real SIGKILL, 3 sweep folders and a web job's, a 240-character output name.

Every error must be one line on stderr (``impasto: error: ...``), no traceback, the documented exit code, nothing
half-written; most CLI calls run in-process (``impasto.cli.main``), the ones about real processes and real
descriptors run ``python -m impasto``.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, PngImagePlugin

import impasto.api
import impasto.core.optimize
from impasto.cli import main
from impasto.errors import ConfigError, ImageError, OutputError
from impasto.io import files
from impasto.samples import sample_content, sample_style

FAST = ["--size", "32", "--start-size", "none", "--first-steps", "none", "--steps", "1",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "-q"]
FIVE = [*FAST[:6], "--steps", "5", *FAST[8:]]  # five steps: room to stop in the middle
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TEMP = re.compile(r"^\.(?P<target>.+)\.\d+-[0-9a-f]{8}-[0-9a-f]{8}\.(?:part|probe)$")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("inputs")
    sample_content(48, 36, seed=1).save(d / "content.png")
    sample_style(40, 40, seed=2).save(d / "style.png")
    return {"content": str(d / "content.png"), "style": str(d / "style.png")}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def one_line(err: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("impasto: note:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("impasto: error: "), err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def no_temps(*folders: Path) -> None:
    for folder in folders:
        left = [p.name for p in folder.iterdir() if p.name.endswith((".part", ".probe"))]
        assert not left, left


class Disk:
    """A disk that fills up for some files: writing a file whose name is in ``names`` (or any, with "*") fails at
    the OS call ``at`` (``fsync`` of the temporary file, or its ``replace``) with ``err``, as a full disk (or a
    read-only remount) does, after ``skip`` such writes have gone through. Everything else is written."""

    def __init__(self, monkeypatch, names=("*",), err=errno.ENOSPC, at="fsync", skip=0) -> None:
        if not os.path.isdir("/proc/self/fd"):
            pytest.skip("needs /proc/self/fd to name the file being written")
        self.names, self.err, self.skip, self.hits = set(names), err, skip, []
        real = getattr(os, at)

        def failing(first, *rest):
            path = os.readlink(f"/proc/self/fd/{first}") if isinstance(first, int) else os.fspath(first)
            m = TEMP.match(os.path.basename(path))
            if m and ("*" in self.names or m["target"] in self.names):
                if self.skip:
                    self.skip -= 1
                else:
                    self.hits.append(m["target"])
                    raise OSError(self.err, os.strerror(self.err))
            return real(first, *rest)

        monkeypatch.setattr(os, at, failing)


# == 1. a full disk ====================================================================================================
@pytest.mark.parametrize("at", ["fsync", "replace", "write"])
@pytest.mark.parametrize("err, words", [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk is full"),
                                        (errno.EROFS, "read-only")])
def test_atomic_write_failure_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, at, err, words):
    from impasto.errors import WriteError

    target = tmp_path / "out.png"
    target.write_bytes(b"old picture")
    if at == "write":  # the bytes themselves: through the file object's own os-level write
        real_fdopen = os.fdopen

        class Full(io.RawIOBase):
            def __init__(self, fd):
                self.fd = fd

            def writable(self):
                return True

            def write(self, b):
                raise OSError(err, os.strerror(err))

            def close(self):
                os.close(self.fd)
                super().close()

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: io.BufferedWriter(Full(fd)) if "w" in a[0]
                            else real_fdopen(fd, *a, **k))
    else:
        Disk(monkeypatch, err=err, at=at)
    with pytest.raises(WriteError) as info:
        files.atomic_write(target, b"new picture", what="the image")
    assert str(info.value).startswith(f"{target}: cannot write the image: ") and words in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 1
    assert target.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.fixture
def tmpfs(tmp_path):
    """A real 256 KiB file system (root and a kernel that allows mounting; else skipped, saying why)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if run.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here ({run.stderr.decode().strip()[:80]})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_full_and_read_only_disk(tmpfs):
    from impasto.errors import WriteError

    files.atomic_write(tmpfs / "small.bin", b"x" * 1000)
    with pytest.raises(WriteError, match=r"big\.bin: cannot write it: the disk is full; free some space"):
        files.atomic_write(tmpfs / "big.bin", os.urandom(400 * 1024))
    assert sorted(p.name for p in tmpfs.iterdir()) == ["small.bin"]  # no half file, no temporary
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with pytest.raises(WriteError, match="the file system is read-only"):
        files.atomic_write(tmpfs / "small.bin", b"y")
    assert (tmpfs / "small.bin").read_bytes() == b"x" * 1000


def test_csv_on_a_full_disk_keeps_the_png(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.png"
    Disk(monkeypatch, names={"o.losses.csv"})
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(out), *FAST], capsys)
    assert code == 1
    one_line(err, "o.losses.csv", "the loss history", "the disk is full")
    assert out.is_file() and not (tmp_path / "o.losses.csv").exists()
    no_temps(tmp_path)


def _interrupt_at(monkeypatch, call: int, sig=signal.SIGINT) -> None:
    """Send ``sig`` to this process during the ``call``-th objective evaluation (the CLI's handler stops the run)."""
    original = impasto.core.optimize.Objective.__call__
    calls = [0]

    def interrupting(self, img):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), sig)
        return original(self, img)

    monkeypatch.setattr(impasto.core.optimize.Objective, "__call__", interrupting)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ctrl_c_on_a_full_disk_writes_the_checkpoint_first_and_resumes(inputs, tmp_path, capsys, monkeypatch):
    from impasto.io.checkpoint import load_checkpoint
    from impasto.io.recipe import read_recipe

    out, ckpt = tmp_path / "o.png", tmp_path / "o.png.ckpt"
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        disk = Disk(m, names={"o.png", "o.losses.csv"})
        code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(out), *FIVE], capsys)
    assert code == 1 and disk.hits == ["o.png"]
    one_line(err, "o.png: cannot write the image: the disk is full", "o.png.ckpt was written before it", "--resume")
    assert load_checkpoint(ckpt)["state"]["step"] == 3 and not out.exists()
    no_temps(tmp_path)
    # Room again: the same command with --resume finishes the run.
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(out), *FIVE, "--resume"], capsys)
    assert code == 0, err
    assert read_recipe(out)["steps_done"] == 5 and not ckpt.exists()


def test_a_snapshot_on_a_full_disk_stops_the_run_and_keeps_it(inputs, tmp_path, capsys, monkeypatch):
    from impasto.io.checkpoint import load_checkpoint

    out = tmp_path / "o.png"
    Disk(monkeypatch, names={"o.step00002.png"})
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(out), *FIVE, "--save-every", "1"],
                        capsys)
    assert code == 1
    one_line(err, "o.step00002.png", "the disk is full", "stopped after that step", "checkpoint were saved")
    assert load_checkpoint(tmp_path / "o.png.ckpt")["state"]["step"] == 2  # stopped there: no work after it lost
    assert out.is_file() and (tmp_path / "o.step00001.png").is_file()
    no_temps(tmp_path)


SWEEP = """\
[base]
size = 32
start_size = "none"
first_steps = "none"
steps = 3
device = "cpu"
content_layers = ["relu2_1"]
style_layers = ["relu1_1", "relu2_1"]

[[variant]]
name = "plain"
"""


def _sweep_argv(tmp_path: Path, inputs, out: Path) -> list[str]:
    exp = tmp_path / "exp.toml"
    exp.write_text(SWEEP)
    return ["sweep", str(exp), "--content", inputs["content"], "--style", inputs["style"], "-o", str(out), "-q"]


def test_sweep_report_on_a_full_disk_keeps_the_variants(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    argv = _sweep_argv(tmp_path, inputs, out)
    with monkeypatch.context() as m:
        Disk(m, names={"report.html"}, skip=1)  # the first report (before any work) is written, then the disk fills
        code, err = run_cli(argv, capsys)
    assert code == 1
    one_line(err, "report.html", "the disk is full")
    assert json.loads((out / "runs" / "plain.json").read_text())["status"] == "done"
    no_temps(out, out / "runs")
    code, err = run_cli(argv, capsys)  # room again: nothing is run twice
    assert code == 0 and "0 run, 1 already done" in err, err


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_stopped_sweep_on_a_full_disk_keeps_its_checkpoint(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    argv = _sweep_argv(tmp_path, inputs, out)
    with monkeypatch.context() as m:
        _interrupt_at(m, 2)
        Disk(m, names={"plain.png"})
        code, err = run_cli(argv, capsys)
    assert code == 1
    one_line(err, "plain.png", "the disk is full")
    record = json.loads((out / "runs" / "plain.json").read_text())
    assert record["status"] == "cancelled" and (out / "runs" / "plain.ckpt").is_file()
    code, err = run_cli(argv, capsys)  # room again: it continues from the checkpoint
    assert code == 0, err
    assert json.loads((out / "runs" / "plain.json").read_text())["steps_done"] == 3
    assert not (out / "runs" / "plain.ckpt").exists()


def _web_queue(root: Path):
    pytest.importorskip("fastapi")
    from impasto.web.jobs import JobQueue

    return JobQueue(root, "cpu", preview_every=100)


def _loaded():
    from impasto.io.images import LoadedImage

    return LoadedImage(sample_content(48, 36, seed=1), "photo.png"), [LoadedImage(sample_style(40, 40), "s.png")]


def test_web_job_inputs_on_a_full_disk_leave_nothing_and_say_507(tmp_path, monkeypatch):
    from impasto.config import from_dict
    from impasto.errors import WriteError

    queue = _web_queue(tmp_path / "results")
    content, styles = _loaded()
    with monkeypatch.context() as m:
        Disk(m, names={"input-1.png"})
        with pytest.raises(WriteError, match="^the server cannot store the job: the disk is full$"):
            queue.submit(content, styles, from_dict({"size": 32}))
    assert [p for p in queue.root.iterdir() if not p.name.startswith(".")] == []  # no half-stored job
    import warnings

    with warnings.catch_warnings():  # newer Starlette prefers httpx2 and warns once when it falls back (test_web)
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    from impasto.web.app import create_app

    with TestClient(create_app(tmp_path / "r2", "cpu", start_worker=False)) as client:
        buf = io.BytesIO()
        content.image.save(buf, "PNG")
        png = buf.getvalue()
        Disk(monkeypatch, names={"input-0.png"})
        resp = client.post("/api/jobs", files=[("content", ("c.png", png, "image/png")),
                                               ("style", ("s.png", png, "image/png"))],
                           data={"config": json.dumps({"size": 32})})
    assert resp.status_code == 507 and resp.json()["detail"] == "the server cannot store the job: the disk is full"


def test_web_job_result_on_a_full_disk_fails_the_job_and_keeps_the_image(tmp_path, monkeypatch):
    from impasto.config import from_dict

    queue = _web_queue(tmp_path / "results")
    content, styles = _loaded()
    job = queue.submit(content, styles, from_dict({"size": 32, "start_size": None, "first_steps": None, "steps": 2,
                                                   "content_layers": "relu2_1", "style_layers": "relu1_1"}))
    Disk(monkeypatch, names={"result.losses.csv"})
    queue.start()
    end = time.monotonic() + 120
    while job.status in ("queued", "running") and time.monotonic() < end:
        time.sleep(0.05)
    queue.close()
    assert job.status == "failed" and job.message == "the result could not be saved on the server: the disk is full"
    assert job.has_result and job.result_path.is_file()


# == 4. one owner per folder ===========================================================================================
HOLD = ("import sys, time\nfrom impasto.io.locks import lock_folder\nlock = lock_folder(sys.argv[1], sys.argv[2])\n"
        "print('held', flush=True)\ntime.sleep(300)\n")


@pytest.fixture
def holder(tmp_path):
    """A real second process holding ``tmp_path/held``'s lock as "impasto serve"."""
    folder = tmp_path / "held"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "impasto serve"], stdout=subprocess.PIPE,
                            env=ENV)
    assert proc.stdout.readline().strip() == b"held"
    yield folder, proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_process_is_refused_naming_the_owner_until_it_ends(holder):
    from impasto.io.locks import lock_folder

    folder, proc = holder
    with pytest.raises(OutputError) as info:
        lock_folder(folder, "impasto sweep")
    text = str(info.value)
    assert f"is in use by impasto serve (pid {proc.pid} on {socket.gethostname()}, since 20" in text
    assert "\n" not in text and info.value.exit_code == 2
    proc.kill()
    proc.wait()  # SIGKILL: the system releases its lock, the file stays behind and is taken over
    with lock_folder(folder, "impasto sweep") as lock:
        assert lock.taken_over["pid"] == proc.pid
        assert json.loads((folder / ".impasto.lock").read_text())["pid"] == os.getpid()
    assert not (folder / ".impasto.lock").exists()


def test_the_same_process_twice_and_a_stale_lock_file(tmp_path):
    from impasto.io.locks import lock_folder

    with lock_folder(tmp_path, "impasto serve"):
        with pytest.raises(OutputError, match=f"pid {os.getpid()}"):
            lock_folder(tmp_path, "impasto serve")
    dead = _dead_pid()
    (tmp_path / ".impasto.lock").write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "since": 0,
                                                        "command": "impasto sweep"}))
    with lock_folder(tmp_path, "impasto serve") as lock:
        assert lock.taken_over["pid"] == dead


def test_without_flock_the_exclusive_file_and_its_stale_check(tmp_path, monkeypatch, holder):
    import impasto.io.locks as locks

    monkeypatch.setattr(locks, "fcntl", None)
    lockfile = tmp_path / ".impasto.lock"
    lockfile.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "since": 0}))
    with locks.lock_folder(tmp_path, "impasto sweep"):  # stale: its pid has ended on this host
        assert json.loads(lockfile.read_text())["pid"] == os.getpid()
    assert not lockfile.exists()
    _, proc = holder
    lockfile.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "since": 0}))
    with pytest.raises(OutputError, match=f"pid {proc.pid}"):  # alive
        locks.lock_folder(tmp_path, "impasto sweep")
    lockfile.write_text(json.dumps({"pid": 1, "host": "elsewhere\x1b[2J", "since": 0, "command": "x\ny"}))
    with pytest.raises(OutputError) as info:  # another host's: it cannot be checked from here, so it stands
        locks.lock_folder(tmp_path, "impasto sweep")
    assert "on elsewhere?[2J" in str(info.value) and "\x1b" not in str(info.value) and "\n" not in str(info.value)


def test_a_second_sweep_and_a_second_server_are_refused(inputs, holder, tmp_path, capsys):
    folder, proc = holder
    code, err = run_cli(_sweep_argv(tmp_path, inputs, folder), capsys)
    assert code == 2
    one_line(err, f"{folder}: is in use by impasto serve (pid {proc.pid}")
    assert not list((folder / "runs").iterdir())  # nothing run, nothing cleared
    pytest.importorskip("uvicorn")
    code, err = run_cli(["serve", "--results", str(folder), "--device", "cpu"], capsys)
    assert code == 2
    one_line(err, "is in use by impasto serve", f"pid {proc.pid}")


def test_serve_holds_its_folder_while_it_serves(tmp_path, monkeypatch, capsys):
    uvicorn = pytest.importorskip("uvicorn")
    from impasto.io.locks import lock_folder

    seen = {}

    def run(self, sockets=(), **kw):
        for sock in sockets:
            sock.close()
        with pytest.raises(OutputError) as info:
            lock_folder(tmp_path / "r", "impasto sweep")
        seen["refusal"] = str(info.value)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "--results", str(tmp_path / "r"), "--device", "cpu", "--port", "0"]) == 0
    assert f"impasto serve (pid {os.getpid()}" in seen["refusal"]
    assert not (tmp_path / "r" / ".impasto.lock").exists()  # given back when the server stops


# == 5. an unwritable stderr or stdout =================================================================================
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_run_with_stderr_full_or_closed_finishes(inputs, tmp_path):
    from impasto.io.recipe import read_recipe

    argv = [sys.executable, "-m", "impasto", "stylize", inputs["content"], inputs["style"], *FIVE[:-1]]
    with open("/dev/full", "w") as full:
        run = subprocess.run([*argv, "-o", str(tmp_path / "full.png")], stderr=full, env=ENV, timeout=300)
    assert run.returncode == 0 and read_recipe(tmp_path / "full.png")["steps_done"] == 5
    # Closed: Python has no sys.stderr, and the first file opened would take descriptor 2.
    run = subprocess.run([*argv, "-o", str(tmp_path / "closed.png")], preexec_fn=lambda: os.close(2), env=ENV,
                         timeout=300, stdout=subprocess.PIPE)
    assert run.returncode == 0 and run.stdout == b""  # nothing meant for stderr went to stdout
    assert read_recipe(tmp_path / "closed.png")["steps_done"] == 5  # and nothing to the image


def test_the_api_progress_bar_on_a_failing_stderr(inputs, monkeypatch):
    class Full(io.StringIO):
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stderr", Full())
    result = impasto.api.stylize(inputs["content"], inputs["style"], size=32, start_size=None, first_steps=None,
                                 steps=2, content_layers="relu2_1", style_layers="relu1_1", progress=True)
    assert result.status == "done"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_one_line_exit_1(tmp_path):
    im = tmp_path / "r.png"
    _recipe_png(im, json.dumps({"impasto": "0.1", "config": {"size": 32}}))
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "impasto", "recipe", str(im)], stdout=full,
                             stderr=subprocess.PIPE, env=ENV, timeout=120)
    assert run.returncode == 1
    one_line(run.stderr.decode(), "standard output: cannot write: the disk is full")


def test_safe_stream():
    from impasto.io.streams import SafeStream

    class Broken(io.StringIO):
        def write(self, s):
            raise OSError(errno.EIO, "Input/output error")

    s = SafeStream(Broken())
    assert s.write("x") == 1 and s.broken and s.write("y") == 1 and not s.isatty()
    none = SafeStream(None)
    none.write("x")
    none.flush()
    assert none.encoding == "utf-8"


# == 7. crafted files read back ========================================================================================
def _recipe_png(path: Path, text: str | None = None, *, zip_: bool = True, raw_chunk: bytes | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_itxt("impasto", text, zip=zip_)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG", pnginfo=info)
    data = buf.getvalue()
    if raw_chunk is not None:  # a hand-made chunk right after IHDR
        data = data[:33] + raw_chunk + data[33:]
    path.write_bytes(data)
    return path


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


RECIPES = {
    "not JSON": ("hello", "not valid JSON"),
    "JSON list": ("[1, 2]", "a JSON list, not an object"),
    "JSON string": ('"x"', "a JSON str"),
    "nested 100000 deep": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "over 1 MB": (json.dumps({"notes": ["x" * 2_000_000]}), "over 1 MB"),
    "steps_done text": (json.dumps({"steps_done": "many"}), "'steps_done' is a str"),
    "steps_done true": (json.dumps({"steps_done": True}), "'steps_done' is a bool"),
    "config a list": (json.dumps({"config": [1]}), "'config' is a list"),
    "config weights text": (json.dumps({"config": {"style_layers": {"relu1_1": "x"}}}), "config 'style_layers'"),
    "config deep": (json.dumps({"config": {"size": [[[1]]]}}), "config 'size'"),
    "losses text": (json.dumps({"final_losses": {"total": "low"}}), "final_losses"),
    "5000 digits": ('{"steps_done": ' + "9" * 5000 + "}", "not valid JSON"),
    "not UTF-8": (None, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(RECIPES))
def test_crafted_recipe_chunks_are_one_line(case, tmp_path, capsys):
    from impasto.io.recipe import read_recipe

    text, words = RECIPES[case]
    im = tmp_path / "crafted.png"
    if text is None:
        raw = b"impasto\x00\x00\x00\x00\x00\xff\xfe{}"
        _recipe_png(im, raw_chunk=_chunk(b"iTXt", raw))
    else:
        _recipe_png(im, text)
    with pytest.raises(ImageError, match=re.escape(words)):
        read_recipe(im)
    code, err = run_cli(["recipe", str(im)], capsys)
    assert code == 2
    one_line(err, "crafted.png")


@pytest.mark.parametrize("raw, words", [
    (_chunk(b"iTXt", b"impasto\x00\x01\x00\x00\x00not zlib"), "damaged"),
    (_chunk(b"iTXt", b"impasto\x00\x00\x00\x00\x00{}", crc=0), "checksum"),
    (_chunk(b"iTXt", b"impasto\x00"), "cut short"),
], ids=["bad zlib", "bad crc", "cut short"])
def test_damaged_recipe_chunks(raw, words, tmp_path):
    from impasto.io.recipe import read_recipe

    with pytest.raises(ImageError, match=words):
        read_recipe(_recipe_png(tmp_path / "d.png", raw_chunk=raw))


def test_recipe_never_prints_escape_sequences(tmp_path, capsys):
    evil = "\x1b]0;owned\x07\x1b[2J\u202ereversed\r\nfake line\ud800"
    im = _recipe_png(tmp_path / "evil.png", json.dumps({"impasto": evil, "status": evil, "inputs": {"content": evil},
                                                        "config": {"init": evil, "size": 32}}))
    for argv in (["recipe", str(im)], ["recipe", "--json", str(im)]):
        capsys.readouterr()
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 or c in "\u202e" for c in out), out
        assert "owned" in out
    # Uncompressed and huge chunks of other names are skipped unread; an impasto chunk over 1 MB is refused.
    from impasto.io.recipe import read_recipe

    assert read_recipe(_recipe_png(tmp_path / "plain.png", '{"a": 1}', zip_=False)) == {"a": 1}
    big = _chunk(b"iTXt", b"impasto\x00\x00\x00\x00\x00" + b" " * (2**20 + 10))
    with pytest.raises(ImageError, match="over 1 MB"):
        read_recipe(_recipe_png(tmp_path / "big.png", raw_chunk=big))


def test_file_names_with_escape_sequences_are_escaped_in_errors(inputs, tmp_path, capsys):
    bad = str(tmp_path / "a\x1b[31m\nb.png")
    code, err = run_cli(["stylize", bad, inputs["style"], "-o", str(tmp_path / "o.png"), *FAST], capsys)
    assert code == 2
    line = one_line(err, "a\\x1b[31m\\x0ab.png", "no such file")
    assert "\x1b" not in line


@pytest.fixture(scope="module")
def checkpoint(inputs, tmp_path_factory) -> tuple[Path, dict]:
    """A real checkpoint of a 5-step run stopped after step 2 (the base the crafted ones are made from)."""
    from impasto.api import StopToken, save_run_checkpoint
    from impasto.config import from_dict

    cfg = from_dict({"size": 32, "start_size": None, "first_steps": None, "steps": 5, "content_layers": "relu2_1",
                     "style_layers": "relu1_1,relu2_1"})
    stop = StopToken()
    result = impasto.api.stylize(inputs["content"], inputs["style"], cfg, stop=stop, progress=False,
                                 callback=lambda s: stop.stop("test") if s.step == 2 else None)
    path = tmp_path_factory.mktemp("ckpt") / "base.ckpt"
    save_run_checkpoint(path, result)
    return path, cfg


NAN = torch.full((1, 3, 24, 32), float("nan"))
SMALL, IMG = [torch.zeros(1, 3, 5, 5)], torch.zeros(1, 3, 24, 32)
CHECKPOINTS = {  # the fields changed → words of the refusal
    "step 1e9": ({"step": 1e9}, "step is 1000000000.0, not a count of steps"),
    "step 10**9": ({"step": 10**9}, "step 1000000000 (2 of scale 1) is not a step of its 5-step schedule"),
    "step -1": ({"step": -1}, "not a count"),
    "scale 7": ({"scale": 7}, "scale 8 of a schedule of 1"),
    "scale_step past the scale": ({"scale_step": 9}, "is not a step of its"),
    "images 5x5": ({"images": SMALL, "params": SMALL}, "its images are 5x5, scale 1 is 32x24"),
    "images 3-D": ({"images": [torch.zeros(3, 24, 32)]}, "not (1, 3, H, W)"),
    "images NaN": ({"images": [NAN]}, "finite"),
    "images text": ({"images": "abc"}, "not (1, 3, H, W)"),
    "images int": ({"images": [torch.zeros(1, 3, 24, 32, dtype=torch.int64)]}, "not (1, 3, H, W)"),
    "two images": ({"images": [IMG, IMG], "params": [IMG, IMG], "history": [[], []], "opt_state": None},
                   "it holds 2 images for 1 run(s)"),
    "opt_state garbage": ({"opt_state": "garbage"}, "optimiser state"),
    "opt_state state 5": ({"opt_state": {"state": 5, "param_groups": []}}, "optimiser state"),
    "opt_state moments": ({"opt_state": {"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"params": [0]}]}},
                          "'exp_avg'"),
    "history rows": ({"history": [[{"step": "one"}]]}, "history"),
    "history 5": ({"history": 5}, "history"),
    "params 5x5": ({"params": SMALL}, "params"),
    "ema numbers": ({"ema": [1, 2]}, "ema"),
    "diverged": ({"diverged": {5: "x"}}, "diverged"),
    "unknown field": ({"brush": 1}, "unknown fields ['brush']"),
    "elapsed text": ({"elapsed": "soon"}, "elapsed is 'soon'"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_crafted_checkpoints_are_refused_never_trusted(case, checkpoint, inputs, tmp_path):
    from impasto.api import resume_state

    base, cfg = checkpoint
    changes, words = CHECKPOINTS[case]
    data = torch.load(base, weights_only=True)
    data["state"].update(changes)
    crafted = tmp_path / "o.png.ckpt"
    torch.save(data, crafted)
    with pytest.raises(ConfigError) as info:
        resume_state(crafted, cfg, inputs["content"], [inputs["style"]])
    assert words in str(info.value) and "delete it and start afresh" in str(info.value) and "\n" not in str(info.value)


def test_a_crafted_checkpoint_through_the_cli(checkpoint, inputs, tmp_path, capsys):
    base, _ = checkpoint
    data = torch.load(base, weights_only=True)
    data["state"]["step"] = 1e9  # not "done": not a checkpoint of this run
    torch.save(data, tmp_path / "o.png.ckpt")
    (tmp_path / "o.png").write_bytes(b"the interrupted run's image")
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(tmp_path / "o.png"), *FIVE,
                         "--resume"], capsys)
    assert code == 2
    one_line(err, "o.png.ckpt", "not a count of steps")
    assert (tmp_path / "o.png").read_bytes() == b"the interrupted run's image"
    # The untouched checkpoint resumes.
    torch.save(torch.load(base, weights_only=True), tmp_path / "o.png.ckpt")
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(tmp_path / "o.png"), *FIVE,
                         "--resume"], capsys)
    assert code == 0, err


RECORDS = {
    "a list": [1],
    "status a list": {"format": 1, "key": "k", "status": ["done"]},
    "status unknown": {"format": 1, "key": "k", "status": "finished"},
    "no key": {"format": 1, "status": "done"},
    "elapsed text": {"format": 1, "key": "k", "status": "done", "elapsed": "long"},
    "steps_done float": {"format": 1, "key": "k", "status": "done", "steps_done": 1e9},
    "deep": "[" * 100_000 + "]" * 100_000,
    "huge": {"format": 1, "key": "k", "status": "done", "message": "x" * (2**20 + 1)},
}


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_crafted_sweep_records_are_not_trusted(case, tmp_path):
    from impasto.experiments.store import RunFolder

    folder = RunFolder(tmp_path)
    folder.create()
    value = RECORDS[case]
    folder.record("v").write_text(value if isinstance(value, str) else json.dumps(value))
    assert folder.read_record("v") is None


def test_crafted_histories_and_manifests(tmp_path):
    from impasto.config import StyleConfig
    from impasto.experiments.report import read_manifest
    from impasto.experiments.results import VariantResult
    from impasto.experiments.store import RunFolder

    folder = RunFolder(tmp_path)
    folder.create()
    sample_content(32, 24).save(folder.image("v"))
    folder.history("v").write_text("step,total\n" + "1," + "9" * 200_000 + "\n")  # over csv's field limit
    rec = VariantResult("v", StyleConfig(), {}, "k", "v")
    assert folder.restore(rec, {"status": "done"}) is False
    folder.image("v").write_bytes(b"not a png")
    folder.history("v").write_text("step,total\n1,2\n")
    assert folder.restore(rec, {"status": "done"}) is False
    for text in ("[1]", '{"variants": 5}', '{"status": "done", "variants": [1]}', "[" * 100_000):
        (tmp_path / "sweep.json").write_text(text)
        with pytest.raises(ConfigError, match="not a sweep manifest"):
            read_manifest(tmp_path / "sweep.json")


JOBS = {
    "created text": {"created": "yesterday"},
    "styles a string": {"inputs": {"content": "c", "styles": "s"}},
    "no styles": {"inputs": {"content": "c", "styles": []}},
    "history numbers": {"history": [5]},
    "losses text": {"losses": {"total": "low"}},
    "step float": {"step": 1e9},
    "status a list": {"status": ["done"]},
}


def test_crafted_job_files_are_skipped_and_the_rest_served(tmp_path):
    from impasto.web.jobs import new_id

    root = tmp_path / "results"
    queue = _web_queue(root)
    content, styles = _loaded()
    from impasto.config import from_dict

    good = queue.submit(content, styles, from_dict({"size": 32}))
    template = json.loads((good.folder / "job.json").read_text())
    for change in JOBS.values():
        folder = root / new_id()
        folder.mkdir()
        (folder / "job.json").write_text(json.dumps({**template, **change}))
    for text in ("[" * 100_000, "[1]"):
        folder = root / new_id()
        folder.mkdir()
        (folder / "job.json").write_text(text)
    linked = root / new_id()  # a result.png that is a link is not served
    linked.mkdir()
    (linked / "job.json").write_text(json.dumps({**template, "status": "done", "has_result": True}))
    (linked / "result.png").symlink_to("job.json")
    again = _web_queue(root)
    listed = again.jobs()
    assert sorted(j.id for j in listed) == sorted([good.id, linked.name])
    assert all(again.describe(j)["status"] in ("queued", "done") for j in listed)
    assert not again.get(linked.name).has_result


# == 9. diagnoses that name the real problem ===========================================================================
@pytest.fixture
def odd_paths(tmp_path) -> dict[str, Path]:
    d = tmp_path / "odd"
    d.mkdir()
    os.mkfifo(d / "fifo.png")
    os.symlink("loop2.png", d / "loop1.png")
    os.symlink("loop1.png", d / "loop2.png")
    os.symlink("gone.png", d / "dangling.png")
    (d / "afile").write_text("x")
    (d / "folder.png").mkdir()
    return {"fifo": d / "fifo.png", "loop": d / "loop1.png", "dangling": d / "dangling.png",
            "under a file": d / "afile" / "x.png", "folder": d / "folder.png", "device": Path("/dev/zero"),
            "missing": d / "missing.png"}


INPUT_WORDS = {"fifo": "is a named pipe (FIFO), not a regular file", "loop": "is a symbolic link loop",
               "dangling": "is a broken symbolic link (to 'gone.png'", "under a file": "afile is a file, not a folder",
               "folder": "is a directory", "device": "is a device file, not a regular file",
               "missing": "no such file"}


@pytest.mark.parametrize("kind", sorted(INPUT_WORDS))
def test_an_odd_input_path_is_named_for_what_it_is(kind, odd_paths, inputs, tmp_path, capsys):
    path = str(odd_paths[kind])
    code, err = run_cli(["stylize", path, inputs["style"], "-o", str(tmp_path / "o.png"), *FAST], capsys)
    assert code == 2
    one_line(err, path, INPUT_WORDS[kind])
    assert "empty (0 bytes)" not in err and not (tmp_path / "o.png").exists()


def test_odd_paths_for_the_other_files_impasto_reads(odd_paths, inputs, tmp_path, capsys):
    from impasto.config import from_toml
    from impasto.errors import WeightsError
    from impasto.io.recipe import read_recipe
    from impasto.weights import load_state_dict

    fifo, loop = str(odd_paths["fifo"]), str(odd_paths["loop"])
    for path, words in ((fifo, "named pipe"), (loop, "symbolic link loop")):
        with pytest.raises(ConfigError, match=words):
            from_toml(path)  # a FIFO would block the read forever
        with pytest.raises(WeightsError, match=words):
            load_state_dict(path)
        with pytest.raises(ImageError, match=words):
            read_recipe(path)
    out = tmp_path / "o.png"
    out.write_bytes(b"x")
    os.mkfifo(tmp_path / "o.png.ckpt")
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(out), *FAST, "--resume"], capsys)
    assert code == 2
    one_line(err, "o.png.ckpt: is a named pipe (FIFO), not a regular file")


def test_permission_denied_is_not_broken_or_truncated(inputs, monkeypatch):
    from impasto.io.images import load_image

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == inputs["content"] else real(p, mode))
    with pytest.raises(ImageError, match="permission denied"):
        load_image(inputs["content"])
    monkeypatch.undo()

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)  # what a file whose mode changes after the check does
    with pytest.raises(ImageError, match=r"cannot be read \(permission denied\)"):
        load_image(inputs["content"])


def test_a_png_with_a_20_mb_colour_profile_or_text_is_read(tmp_path):
    from impasto.io.images import load_image

    im = sample_content(48, 36, seed=4)
    im.save(tmp_path / "icc.png", icc_profile=b"\x00\x01" * 10_000_000)  # 20 MB, over Pillow's 1 MB cap
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 3_000_000, zip=True)
    im.save(tmp_path / "text.png", pnginfo=info)
    for name in ("icc.png", "text.png"):
        loaded = load_image(tmp_path / name)
        assert loaded.image.tobytes() == im.tobytes()
        assert any("larger than Pillow reads" in n for n in loaded.notes), loaded.notes


@pytest.fixture
def odd_outputs(tmp_path) -> dict[str, Path]:
    d = tmp_path / "outs"
    d.mkdir()
    (d / "afile").write_text("x")
    os.mkfifo(d / "fifo.png")
    os.symlink("/dev/null", d / "null.png")
    os.symlink("nowhere.png", d / "dangling.png")
    os.symlink("loopb", d / "loopa")
    os.symlink("loopa", d / "loopb")
    return {"parent a file": d / "afile" / "o.png", "ancestor a file": d / "afile" / "sub" / "o.png",
            "no folder": d / "nope" / "o.png", "parent a loop": d / "loopa" / "o.png", "a fifo": d / "fifo.png",
            "a device": d / "null.png", "broken link": d / "dangling.png"}


OUTPUT_WORDS = {
    "parent a file": ("the folder", "afile is a file, not a folder"),
    "ancestor a file": ("afile is a file, not a folder",),
    "no folder": ("nope does not exist; create it first",),
    "parent a loop": ("symbolic link loop",),
    "a fifo": ("is a named pipe (FIFO), not a regular file",),
    "a device": ("is a device file, not a regular file",),  # --force would have replaced /dev/null as root
    "broken link": ("already exists (is a broken symbolic link",),
}


@pytest.mark.parametrize("kind", sorted(OUTPUT_WORDS))
def test_an_odd_output_is_named_for_what_it_is(kind, odd_outputs, inputs, capsys):
    force = ["--force"] if kind in ("a fifo", "a device") else []
    code, err = run_cli(["stylize", inputs["content"], inputs["style"], "-o", str(odd_outputs[kind]), *FAST, *force],
                        capsys)
    assert code == 2
    one_line(err, *OUTPUT_WORDS[kind])
    assert "does not exist; create it first" not in err or kind == "no folder"
    assert "read-only" not in err


def test_a_broken_link_is_replaced_with_force(odd_outputs):
    link = odd_outputs["broken link"]
    assert files.check_output(link, force=True) == link
    files.atomic_write(link, b"picture")
    assert not link.is_symlink() and link.read_bytes() == b"picture"


# == 11. stale hidden temporary files ==================================================================================
def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead, me, host = _dead_pid(), os.getpid(), files.HOST_TAG
    old = time.time() - files.STALE_AFTER - 60
    names = {
        f".o.png.{dead}-{host}-0badc0de.part": ("dead writer", True, None),
        f".o.png.{dead}-{host}-0badc0de.probe": ("dead prober", True, None),
        f".o.png.{me}-{host}-00c0ffee.part": ("live writer", False, None),
        f".o.png.{me}-{host}-0ddba11e.part": ("live pid, but old: a reused pid", True, old),
        f".o.png.{dead}-0000beef-00000001.part": ("another host's, fresh", False, None),
        f".o.png.{dead}-0000beef-00000002.part": ("another host's, old", True, old),
        ".o.png.deadbeef.part": ("the old naming, old", True, old),
        ".o.png.feedface.part": ("the old naming, fresh", False, None),
        ".gitignore": ("not ours", False, old),
        ".o.png.notes": ("not ours", False, old),
    }
    for name, (_, _, mtime) in names.items():
        (tmp_path / name).write_bytes(b"half")
        if mtime:
            os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / f".d.png.{dead}-{host}-00000000.part").mkdir()  # a folder is never removed
    files.check_output(tmp_path / "o.png")
    left = {p.name for p in tmp_path.iterdir()}
    for name, (why, stale, _) in names.items():
        assert (name not in left) == stale, why


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_writer_killed_outright_leaves_nothing_for_the_next_run(tmp_path):
    child = ("import sys, time\nfrom pathlib import Path\nfrom impasto.io import files\n"
             "fd, tmp = files._create_temp(Path(sys.argv[1]) / 'o.png', '.part')\nprint(tmp, flush=True)\n"
             "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path)], stdout=subprocess.PIPE, env=ENV)
    tmp = Path(proc.stdout.readline().decode().strip())
    assert tmp.exists() and tmp.name.startswith(f".o.png.{proc.pid}-")
    files.check_output(tmp_path / "other.png")  # the writer is alive: its file stays
    assert tmp.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    files.check_output(tmp_path / "other.png")  # the next run in that folder
    assert not tmp.exists()


def test_sweep_and_server_folders_are_cleaned(tmp_path):
    from impasto.experiments.store import RunFolder

    dead, host = _dead_pid(), files.HOST_TAG
    folder = RunFolder(tmp_path / "study")
    folder.create()
    stale = [folder.runs / f".v.json.{dead}-{host}-00000001.part", tmp_path / "study" / f".sheet.png.{dead}-{host}-"
             "00000002.part", tmp_path / "study" / "plots" / f".loss-total.svg.{dead}-{host}-00000003.part"]
    for p in stale:
        p.write_bytes(b"half")
    folder.clean()
    assert not any(p.exists() for p in stale)
    queue = _web_queue(tmp_path / "results")
    content, styles = _loaded()
    from impasto.config import from_dict

    job = queue.submit(content, styles, from_dict({"size": 32}))
    left = job.folder / f".result.png.{dead}-{host}-00000004.part"
    left.write_bytes(b"half")
    _web_queue(tmp_path / "results")  # a restart
    assert not left.exists()


def test_temporary_names_leave_room_for_long_output_names(tmp_path):
    long = tmp_path / ("x" * 240 + ".png")  # a valid name (under 255 bytes); the temporary's must fit too
    files.check_output(long)
    files.atomic_write(long, b"data")
    assert long.read_bytes() == b"data" and math.isfinite(long.stat().st_mtime)
