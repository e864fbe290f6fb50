"""``impasto blend``: a finished result at another strength, without a new run.

The result's recipe names the photo (an absolute path), the settings that sized it and the strength it was made
at; the photo is loaded and resized as the run did (``inputs.prepare``), checked against the recipe's fingerprint,
and blended with the result in OKLab (``core/colour.py``). Every way this can fail is one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .config import StyleConfig, from_dict
from .core import colour
from .core.targets import style_size
from .errors import ConfigError, ImageError
from .inputs import fingerprint, fit_photo
from .io.fetch import is_url
from .io.files import SAVE_FORMATS, check_not_input, check_output
from .io.images import load_image, pil_to_tensor, resize_exact, tensor_to_pil
from .io.recipe import read_recipe, save_image
from .outputs import check_format
from .result import print_dpi


def check_strength(strength: Any) -> float:
    """A strength as given (a number or text) → a float in [0, 1], or the config's one-line ConfigError."""
    return StyleConfig(strength=strength).strength


def blend_images(photo: Image.Image, result: Image.Image, strength: float) -> Image.Image:
    """``result`` at ``strength`` (0: ``photo``, 1: ``result``), blended in OKLab; the photo is resized to the result."""
    strength = check_strength(strength)
    p = pil_to_tensor(resize_exact(photo.convert("RGB"), result.height, result.width))
    return tensor_to_pil(colour.blend_strength(p, pil_to_tensor(result.convert("RGB")), strength))


def default_output(result: str | os.PathLike[str], strength: float) -> Path:
    """``NAME-strength60.png`` beside ``NAME.png``."""
    p = Path(result)
    return p.with_name(f"{p.stem}-strength{round(strength * 100)}{p.suffix}")


def _photo(recipe: dict[str, Any], cfg: StyleConfig, where: Path, size: tuple[int, int]) -> Image.Image:
    """The run's photo at the result's (h, w), as the run resized it, checked against the recipe's fingerprint."""
    inputs = recipe.get("inputs") if isinstance(recipe.get("inputs"), dict) else {}
    name = inputs.get("content")
    if not isinstance(name, str) or name.startswith("<"):
        raise ImageError(f"{where}: its photo was not a file ({name or 'not recorded'}), so it cannot be found again; "
                         "blend it in Python: impasto.blend_images(photo, result, strength)")
    if not is_url(name) and not os.path.isfile(name):
        raise ImageError(f"{where}: its photo {name} is gone (moved or deleted); put it back there, or blend it in "
                         "Python: impasto.blend_images(photo, result, strength)")
    # the run's size, from its settings and this photo, and the part of it a print keeps
    cropped, made, _ = fit_photo(load_image(name, max_pixels=cfg.max_pixels), cfg)
    photo = resize_exact(cropped.image, *made)
    expected = recipe.get("content_fingerprint")
    if expected:
        same = fingerprint(photo) == expected
    else:  # a recipe from before content_fingerprint: the run's fingerprint also covers its styles
        styles = inputs.get("styles") or []
        if not all(isinstance(s, str) and (is_url(s) or os.path.isfile(s)) for s in styles):
            raise ImageError(f"{where}: its recipe predates 'impasto blend' and its style images are gone, so its "
                             f"photo {name} cannot be checked; run stylize again with --strength")
        pils = [load_image(s, max_pixels=cfg.max_pixels).image for s in styles]
        pils = [resize_exact(s, *style_size((s.height, s.width), made, cfg.style_scale, cfg.style_fit,
                                            cfg.size_side, least=8)) for s in pils]
        same = fingerprint(photo, *pils) == recipe.get("inputs_fingerprint")
    if not same:
        raise ImageError(f"{where}: its photo {name} has changed since the run; blend it with the photo it was made "
                         "from, or run stylize again with --strength")
    if made != size:
        raise ImageError(f"{where}: is {size[1]}x{size[0]} pixels but its run made {made[1]}x{made[0]}: it was resized "
                         "or cropped since; blend the image the run wrote")
    return photo


def blend_file(result: str | os.PathLike[str], strength: Any, output: str | os.PathLike[str] | None = None, *,
               force: bool = False) -> Path:
    """Write ``result`` (a picture impasto wrote, its recipe inside) at ``strength`` to ``output`` [default:
    NAME-strength60.EXT beside it], with its recipe updated, its bit depth, DPI and alpha kept; the photo is the one
    its recipe names. Returns the path written."""
    strength = check_strength(strength)
    where = Path(result)
    recipe = read_recipe(where)
    try:
        cfg = from_dict(recipe.get("config") or {})
    except ConfigError as e:
        raise ImageError(f"{where}: its recipe's settings do not load here ({e})") from None
    out = check_output(output if output is not None else default_output(where, strength), force=force)
    check_not_input(out, {"result being blended": where, "photo": (recipe.get("inputs") or {}).get("content")})
    if cfg.strength == 0 and strength > 0:
        raise ImageError(f"{where}: was made at strength 0 (the photo alone), so the painting is not in it; "
                         "run stylize again")
    shown_img = load_image(where, max_pixels=cfg.max_pixels)  # RGB over white, and its alpha if transparent
    # a print asked for at 16 bits stays 16 bits (what a print workflow expects), though read back at 8
    deep = out.suffix.lower() in (".png", ".tif", ".tiff")
    check_format(out, SAVE_FORMATS[out.suffix.lower()], bit_depth=cfg.bit_depth if deep else 8,
                 transparent=shown_img.alpha is not None, source=str(where))
    photo = _photo(recipe, cfg, where, (shown_img.image.height, shown_img.image.width))
    shown = pil_to_tensor(shown_img.image)
    blended = colour.restrength(pil_to_tensor(photo), shown, cfg.strength, strength) if cfg.strength else shown
    picture = blended[0].permute(1, 2, 0).numpy()  # (H, W, 3) floats: quantised once, by the writer
    if shown_img.alpha is not None:  # a transparent result stays so: the blend was of both over white (as the
        a = np.asarray(shown_img.alpha, dtype=np.float32)[..., None] / 255  # loader gives them), taken off here
        straight = np.where(a > 0, (picture - (1 - a)) / np.maximum(a, 1e-6), picture).clip(0, 1)
        picture = np.concatenate([straight, a], axis=2)
    new_cfg = cfg.replace(strength=strength, bit_depth=cfg.bit_depth if deep else 8)
    save_image(picture, out, {**recipe, "config": new_cfg.to_dict(), "config_key": new_cfg.key(),
                              "blended_from": {"image": os.path.abspath(where), "strength": cfg.strength}},
               bit_depth=cfg.bit_depth if deep else 8, dpi=print_dpi(cfg))
    return out

