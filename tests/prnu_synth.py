"""Synthetic camera photos for the PRNU tests and bench/bench_prnu.py (no real-camera
data is shipped): scenes times a per-camera sensor pattern, with shot and read noise,
vignetting, a pattern shared by every camera of a "model" (row/column read-out and a
periodic component, which a fingerprint must not match on), and JPEG re-compression.

A camera is ``Camera(seed, model_seed, shape)``; ``camera.photo(scene, quality)`` gives a
uint8 RGB array as decoded from the JPEG it would have written (``quality=None``: the raw
pixels, no JPEG). Scenes are generated
(``scene(seed, shape)``) or any RGB array of the camera's size (bench: shared test photos).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


def scene(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """A natural-looking RGB scene (float 0-255): smooth shading, blobs, edges, texture."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    base = rng.uniform(40, 170, 3)
    img += base + 50 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)[..., None]
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.25)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-70, 70, 3)
    for _ in range(4):  # hard edges, anywhere (through a random point, at a random angle)
        t = rng.uniform(0, np.pi)
        py, px = rng.uniform(0, h / max(h, w)), rng.uniform(0, w / max(h, w))
        img += ((np.cos(t) * (x - px) + np.sin(t) * (y - py)) > 0)[..., None] * rng.uniform(-35, 35, 3)
    img += rng.normal(0, 3, (h, w, 1)) * rng.uniform(0.5, 2)  # texture
    return np.clip(img, 5, 245)


@dataclass
class Camera:
    seed: int
    model_seed: int
    shape: tuple[int, int]
    sigma: float = 0.01
    vignetting: float = 0.25
    k: np.ndarray = field(init=False, repr=False)
    shared: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        h, w = self.shape
        self.k = np.random.default_rng(self.seed).normal(0, self.sigma, (h, w))
        m = np.random.default_rng(10_000 + self.model_seed)
        rows, cols = m.normal(0, 1.0, (h, 1)), m.normal(0, 1.0, (1, w))
        period = np.zeros((h, w))
        period[::8, :] += 0.8
        period[:, ::8] += 0.8
        self.shared = rows + cols + period  # additive, in grey levels: the model's own artefacts

    def photo(self, sc: np.ndarray, quality: int | None = 90, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 7919, seed])  # noise of its own: per camera and photo
        h, w = self.shape
        y, x = np.mgrid[0:h, 0:w]
        r2 = ((y - h / 2) ** 2 + (x - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
        vignette = 1 - self.vignetting * r2
        signal = sc * vignette[..., None] * (1 + self.k[..., None])
        shot = rng.normal(0, 1, signal.shape) * np.sqrt(np.maximum(signal, 0) * 0.05)
        read = rng.normal(0, 1.0, signal.shape)
        raw = np.clip(signal + shot + read + self.shared[..., None], 0, 255).astype(np.uint8)
        if quality is None:  # as the sensor wrote it, no JPEG (no encoder version in the pixels)
            return raw
        buf = io.BytesIO()
        Image.fromarray(raw).save(buf, "JPEG", quality=quality)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    def jpeg(self, sc: np.ndarray, quality: int = 90, seed: int = 0) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(self.photo(sc, quality, seed)).save(buf, "PNG")
        return buf.getvalue()


def reference_set(size: int, n_cams: int, n_enrol: int, n_tests: int, quality: int | None
                  ) -> tuple[list[Camera], list[list[np.ndarray]], list[np.ndarray], list[int]]:
    """The photos bench/compare_prnu.py gives assay and prnu-python (and
    tests/test_prnu_reference.py regenerates): cameras in two models, pattern sigma
    0.008-0.015; enrolment photos per camera, test photos with the camera of each."""
    shape = (size, size)
    cams = [Camera(500 + i, i % 2, shape, sigma=float(np.linspace(0.008, 0.015, n_cams)[i])) for i in range(n_cams)]
    enrol = [[c.photo(scene(60_000 * c.seed + j, shape), quality, j) for j in range(n_enrol)] for c in cams]
    tests, owner = [], []
    for ci, c in enumerate(cams):
        for j in range(n_tests):
            tests.append(c.photo(scene(61_000 * c.seed + j, shape), quality, 900 + j))
            owner.append(ci)
    return cams, enrol, tests, owner
