"""The independent Stable Diffusion watermark encoder, shared by tests and bench.

invisible-watermark's ``maxDct.py`` is loaded straight from its file, so that
the package ``__init__`` (which imports torch through RivaGAN) never runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np


def load_maxdct() -> ModuleType:
    spec = importlib.util.find_spec("imwatermark")
    if not spec or not spec.submodule_search_locations:
        raise ModuleNotFoundError("invisible-watermark is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "maxDct.py"
    mspec = importlib.util.spec_from_file_location("_imwatermark_maxdct", path)
    assert mspec and mspec.loader
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """A benign generated RGB pattern: gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + 2 * y) % 256], -1) + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def embed(maxdct: ModuleType, rgb: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Mark an RGB image the way the SD reference scripts do (BGR in, BGR out)."""
    out = maxdct.EmbedMaxDct(list(bits), wmLen=len(bits)).encode(np.ascontiguousarray(rgb[:, :, ::-1]))
    return np.ascontiguousarray(out[:, :, ::-1])
