"""Sensor fingerprints (PRNU): noise residuals, fingerprint estimation and PCE.

Written from the literature, not from any implementation:

- J. Lukas, J. Fridrich, M. Goljan, "Digital camera identification from sensor pattern
  noise", IEEE TIFS 2006: the noise residual W = I - F(I) of a wavelet denoiser F
  (Mihcak, Kozintsev, Ramchandran 1999: locally adaptive Wiener filtering of the detail
  sub-bands, the local variance the smallest of the estimates over 3, 5, 7 and 9 pixel
  windows).
- M. Chen, J. Fridrich, M. Goljan, J. Lukas, "Determining image origin and integrity
  using sensor noise", IEEE TIFS 2008: the maximum-likelihood estimate of the
  multiplicative factor K = sum(W_i I_i) / sum(I_i^2); zero-mean rows and columns (on each
  of the four 2x2 colour-filter sub-lattices) and Wiener filtering in the Fourier domain
  to remove the artefacts that all cameras of a model share; the peak-to-correlation
  energy (PCE) as the detection statistic.
- M. Goljan, J. Fridrich, "Camera identification from cropped and scaled images", SPIE
  2008: a translation search through an FFT cross-correlation.

Images are arrays in [0, 255], (H, W) or (H, W, 3); everything is computed in float32
(sums of squares in float64). Residuals and fingerprints are float32 (H, W): colour
residuals are combined with the luma weights; a photo being matched is denoised on its
luma (PROBE_CHANNELS). The wavelet transform extends the borders symmetrically.

The PCE is the peak of the cross-correlation of (test residual x test intensity) with K,
squared, over the mean square of the surface outside the 5 x 5 neighbourhood of the peak
(circular): one definition for whole and cropped photos. prnu-python correlates the residual
with (K x intensity) and leaves out a smaller block; on the same residuals and fingerprints
its definition gives PCE values 0.7-1.07 times assay's (bench/RESULTS.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WAVELET = "db4"
LEVELS = 4
SIGMA = 5.0  # assumed std of the noise the denoiser removes, in grey levels
WINDOWS = (3, 5, 7, 9)  # camera/_kernel.py has them compiled in
LUMA = (0.299, 0.587, 0.114)
SATURATION = 250.0  # pixels at or above this (in any channel) say nothing of the sensor
# The estimate's denominator is sum(I^2) + FULL_SCALE^2: one fully lit photo's worth of
# regularisation, which shrinks K where few photos were bright (dark pixels carry little of
# the pattern and much noise). The reference implementations normalise I to [0, 1] and add 1.
FULL_SCALE = 252.0
PCE_RADIUS = 2  # the peak's neighbourhood left out of the correlation energy: 5x5
DEFAULT_THRESHOLD = 60.0
# A photo being matched is denoised on its luma (residual(channels=...)): a third of the
# work of denoising each channel, for PCE values within a few per cent on synthetic cameras.
# Fingerprints, made once per camera, denoise each channel as the literature does.
PROBE_CHANNELS = "luma"


# -- transforms -------------------------------------------------------------------------
# Spectra are unitary (norm="ortho") and float32/complex64: numpy >= 2 transforms float32 in
# single precision only when the transform is scaled; unscaled ("backward" forward
# transforms, "forward" inverse ones) it runs the double-precision loop through casting
# buffers (numpy 2.4, a 12-MP photo: 0.08 CPU s scaled against 0.17-0.28 unscaled, either
# direction). A unitary pair is scaled both ways, and the Wiener filter wants the spectrum's
# magnitude over sqrt(N) anyway.
# With numpy >= 2 (``out=``), the transform along the columns is done in place: every new
# image-sized array is memory the kernel must fault in and zero (~0.02-0.03 CPU s per 48 MB
# on the bench machine), as much as a tenth of a 12-MP photo's CPU in all.
_FFT_OUT = int(np.__version__.split(".")[0]) >= 2


def _rfft2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if not _FFT_OUT:
        return np.fft.rfft2(x, norm="ortho").astype(np.complex64, copy=False)
    f = np.fft.rfft(x, axis=-1, norm="ortho")
    return np.fft.fft(f, axis=0, norm="ortho", out=f)


def _irfft2(f: np.ndarray, shape: tuple[int, ...], *, overwrite: bool = False) -> np.ndarray:
    """The inverse of _rfft2 (``overwrite``: ``f`` may be destroyed)."""
    f = f.astype(np.complex64, copy=False)
    if not _FFT_OUT:
        return np.fft.irfft2(f, s=shape, norm="ortho").astype(np.float32, copy=False)
    g = np.fft.ifft(f, axis=0, norm="ortho", out=f if overwrite else None)
    return np.fft.irfft(g, n=shape[-1], axis=-1, norm="ortho")


def _dwt_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of the wavelet transform along the last axis (approximation, detail)."""
    import pywt

    return pywt.dwt(x, WAVELET, mode="symmetric", axis=-1)  # type: ignore[no-any-return]


def _idwt_rows(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    import pywt

    return pywt.idwt(a, d, WAVELET, mode="symmetric", axis=-1)  # type: ignore[no-any-return]


@functools.cache
def _filters() -> tuple[np.ndarray, ...]:
    import pywt

    w = pywt.Wavelet(WAVELET)
    return tuple(np.asarray(f, dtype=np.float32) for f in (w.dec_lo, w.dec_hi, w.rec_lo, w.rec_hi))


def _dwt_cols(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level along the first of the last two axes (camera/_kernel.py: rows of memory at a
    time; PyWavelets along that axis gathers strided columns, 4x the time of a row pass)."""
    from ._kernel import dwt_cols

    dec_lo, dec_hi = _filters()[:2]
    x = np.ascontiguousarray(x, dtype=np.float32)
    shape = (*x.shape[:-2], (x.shape[-2] + len(dec_lo) - 1) // 2, x.shape[-1])
    lo, hi = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for xs, ls, hs in zip(x.reshape(-1, *x.shape[-2:]), lo.reshape(-1, *shape[-2:]), hi.reshape(-1, *shape[-2:]),
                          strict=True):
        dwt_cols(xs, dec_lo, dec_hi, ls, hs)
    return lo, hi


def _idwt_cols(a: np.ndarray | None, d: np.ndarray) -> np.ndarray:
    """The inverse of _dwt_cols; ``a`` None: an approximation of zeros."""
    from ._kernel import idwt_cols

    rec_lo, rec_hi = _filters()[2:]
    d = np.ascontiguousarray(d, dtype=np.float32)
    a = d if a is None else np.ascontiguousarray(a, dtype=np.float32)
    shape = (*d.shape[:-2], 2 * d.shape[-2] - len(rec_lo) + 2, d.shape[-1])
    out = np.empty(shape, np.float32)
    for as_, ds, os_ in zip(a.reshape(-1, *a.shape[-2:]), d.reshape(-1, *d.shape[-2:]), out.reshape(-1, *shape[-2:]),
                            strict=True):
        idwt_cols(as_, ds, rec_lo, rec_hi, os_, a is not d)
    return out


def _wavedec2(x: np.ndarray, levels: int) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """pywt.wavedec2 (symmetric extension) over the last two axes: each level along the rows
    by PyWavelets, along the columns by the compiled pass (same coefficients up to float32
    rounding: the filters of the two axes commute; tested)."""
    details = []
    a = x
    for _ in range(levels):
        lo, hi = _dwt_rows(a)
        a, lh = _dwt_cols(lo)
        hl, hh = _dwt_cols(hi)
        details.append((lh, hl, hh))
    return a, details


def _waverec2(a: np.ndarray | None, details: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """The inverse of _wavedec2 (pywt.waverec2's: an approximation one sample longer than the
    details at the next level is cut to theirs); ``a`` None: an approximation of zeros."""
    for lh, hl, hh in reversed(details):
        if a is not None:
            a = a[..., : lh.shape[-2], : lh.shape[-1]]
        a = _idwt_rows(_idwt_cols(a, lh), _idwt_cols(hl, hh))
    assert a is not None
    return a


# -- residuals --------------------------------------------------------------------------
def _noise_part(band: np.ndarray, noise_var: float, *, in_place: bool = False) -> np.ndarray:
    """What the adaptive Wiener filter removes from a sub-band: band * s0^2 / (s^2 + s0^2),
    the local signal variance s^2 the smallest over the windows (camera/_kernel.py);
    ``in_place``: written over ``band`` when it is a contiguous float32 array."""
    from ._kernel import noise_part, noise_part_stack

    band = np.ascontiguousarray(band, dtype=np.float32)
    out = band if in_place else np.empty_like(band)
    (noise_part if band.ndim == 2 else noise_part_stack)(band, float(noise_var), out)
    return out


def _channel_residual(x: np.ndarray, sigma: float) -> np.ndarray:
    """The denoiser's residual of one channel (H, W), or of a stack of channels (C, H, W)
    in one pass: the transforms and the filter take the stack in a call each."""
    h, w = x.shape[-2:]
    x = np.asarray(x, dtype=np.float32)
    # Symmetric extension at the borders (PyWavelets' and MATLAB's default): periodic
    # extension wraps the far border in, and the coarse levels then see an edge that is not
    # in the photo (residuals correlated at 0.97 with prnu-python's instead of 0.9999).
    _, details = _wavedec2(x, LEVELS)
    noise_var = sigma * sigma
    # the approximation holds the scene, not noise: reconstructed from zeros (None)
    filtered = [tuple(_noise_part(b, noise_var, in_place=True) for b in detail) for detail in details]
    return _waverec2(None, filtered)[..., :h, :w]


def zero_mean(x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rows and columns of zero mean, on each of the four 2x2 sub-lattices (colour filter
    array and row/column read-out artefacts are shared by cameras of a model): each
    column less its mean, then each row (camera/_kernel.py)."""
    from ._kernel import zero_mean_2x2

    x = np.ascontiguousarray(x, dtype=np.float32)
    return zero_mean_2x2(x, x if in_place else np.empty_like(x))  # type: ignore[no-any-return]


def wiener_dft(x: np.ndarray) -> np.ndarray:
    """Keep what is flat in the Fourier magnitude, suppress its peaks (periodic patterns:
    JPEG blocks, demosaicing), with the same adaptive filter as the denoiser. The filter
    runs on the half-plane of the real transform: the spectrum of a real array is
    symmetric, and the windows see the other half only at the Nyquist column."""
    from ._kernel import variance, wiener_spectrum

    x = np.ascontiguousarray(x, dtype=np.float32)
    noise_var = float(variance(x))
    if noise_var == 0.0:
        return x.copy()
    # unitary: the magnitude is on the scale of x's values, as the filter wants; the filter's
    # output over its input is one factor per element, applied to the complex spectrum itself
    f = _rfft2(x)
    wiener_spectrum(f, noise_var)
    return _irfft2(f, x.shape, overwrite=True)


def _gray(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        return x
    if x.dtype == np.uint8 and x.shape[2] == 3:
        from ._kernel import luma_u8

        out = np.empty(x.shape[:2], np.float32)
        luma_u8(np.ascontiguousarray(x), *LUMA, out)
        return out
    return x[..., 0] * LUMA[0] + x[..., 1] * LUMA[1] + x[..., 2] * LUMA[2]


def _stack(img: np.ndarray) -> np.ndarray:
    """(H, W, C) -> float32 (C, H, W), each channel contiguous."""
    return np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32)


def _luma_of_stack(x: np.ndarray) -> np.ndarray:
    return x[0] * LUMA[0] + x[1] * LUMA[1] + x[2] * LUMA[2]


def residual(img: np.ndarray, *, sigma: float = SIGMA, channels: str = "each") -> np.ndarray:
    """The noise residual of one photo, ready to correlate with a fingerprint.

    ``channels="each"`` denoises every colour channel and combines the residuals with the
    luma weights (the literature, and prnu-python); ``"luma"`` denoises the photo's luma
    once: a third of the work, and on the synthetic cameras a residual correlated at 0.994
    with the other, PCE within -10%/+3% of it (median 0.995; bench/RESULTS.md)."""
    if channels not in ("each", "luma"):
        raise ValueError(f"channels must be 'each' or 'luma', not {channels!r}")
    img = np.asarray(img)
    if channels == "luma" and img.ndim == 3:
        w = _channel_residual(_gray(img if img.dtype == np.uint8 else img.astype(np.float32, copy=False)), sigma)
    elif img.ndim == 2:
        w = _channel_residual(img.astype(np.float32, copy=False), sigma)
    else:
        w = _luma_of_stack(_channel_residual(_stack(img), sigma))
    return wiener_dft(zero_mean(w, in_place=True))


def _weights(img: np.ndarray) -> np.ndarray:
    """Per-pixel weight of a photo in the estimate: dark pixels carry less of the
    multiplicative pattern (the I^2 in the estimate says so), saturated ones none."""
    sat = (img >= SATURATION) if img.ndim == 2 else (img >= SATURATION).any(axis=-1, keepdims=True)
    return (~sat).astype(np.float32)


# -- fingerprints ---------------------------------------------------------------------
@dataclass
class Fingerprint:
    """A camera's sensor fingerprint K (H, W), estimated from ``images`` photos."""

    k: np.ndarray
    images: int
    _spectrum: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.k.shape[0]), int(self.k.shape[1])

    def spectrum(self) -> np.ndarray:
        """The (unitary) real FFT of K less its mean, computed once for every photo compared:
        less its mean is the transform with its value at the origin set to 0."""
        if self._spectrum is None:
            f = _rfft2(self.k)
            f[0, 0] = 0
            self._spectrum = f
        return self._spectrum


class Estimator:
    """Accumulates photos of one camera (all of one size and orientation) into the
    maximum-likelihood fingerprint, one photo at a time (memory: two arrays)."""

    def __init__(self, *, sigma: float = SIGMA) -> None:
        self.sigma = sigma
        self._num: np.ndarray | None = None
        self._den: np.ndarray | None = None
        self.images = 0

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self._num is None else self._num.shape

    def add(self, img: np.ndarray) -> None:
        img = np.asarray(img, dtype=np.float32)
        if self._num is not None and img.shape != self._num.shape:
            raise ValueError(f"image of size {img.shape[1]}x{img.shape[0]}, the others are "
                             f"{self._num.shape[1]}x{self._num.shape[0]}")
        mask = _weights(img)
        if img.ndim == 2:
            noise = _channel_residual(img, self.sigma)
        else:
            noise = np.moveaxis(_channel_residual(_stack(img), self.sigma), 0, -1)
        num, den = noise * img * mask, img * img * mask
        if self._num is None:
            self._num, self._den = num, den
        else:
            self._num += num
            self._den += den
        self.images += 1

    def fingerprint(self) -> Fingerprint:
        if self._num is None or self._den is None:
            raise ValueError("no photos")
        k = self._num / (self._den + np.float32(FULL_SCALE * FULL_SCALE))
        k = k if k.ndim == 2 else _gray(k)
        return Fingerprint(wiener_dft(zero_mean(k, in_place=True)), self.images)


def estimate(images: list[np.ndarray], *, sigma: float = SIGMA) -> Fingerprint:
    est = Estimator(sigma=sigma)
    for img in images:
        est.add(img)
    return est.fingerprint()


# -- detection ------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    pce: float
    peak: tuple[int, int]  # (row, column) of the photo's top-left corner in the fingerprint
    rotation: int  # degrees counter-clockwise the photo was turned to match (0, 90, 180, 270)
    positions: int  # translations searched (over every rotation tried)

    def false_alarm(self) -> float:
        """Probability that an unrelated photo reaches this PCE somewhere in the search:
        under no match the normalised peak is ~N(0, 1) at each position, and PCE is its
        square (signed)."""
        if self.pce <= 0:
            return 1.0
        one = 0.5 * math.erfc(math.sqrt(self.pce / 2.0))
        return min(1.0, self.positions * one)


def pce(cc: np.ndarray, at: tuple[int, int] | None = None, radius: int = PCE_RADIUS) -> tuple[float, tuple[int, int]]:
    """Signed peak-to-correlation energy of a cross-correlation surface at ``at`` (default:
    its maximum): peak^2 over the mean square of the surface outside the peak's
    neighbourhood."""
    if at is None:
        r = np.unravel_index(int(np.argmax(cc)), cc.shape)
        at = (int(r[0]), int(r[1]))
    h, w = cc.shape
    rows = np.unique([(at[0] + d) % h for d in range(-radius, radius + 1)])
    cols = np.unique([(at[1] + d) % w for d in range(-radius, radius + 1)])
    near = cc[np.ix_(rows, cols)].astype(np.float64)
    total = float(np.sum(np.square(cc), dtype=np.float64))
    rest = cc.size - near.size
    energy = (total - float(np.sum(near * near))) / rest if rest else 0.0
    peak = float(cc[at])
    if energy <= 0.0:
        return 0.0, at
    return math.copysign(peak * peak / energy, peak), at


def _correlate(test: np.ndarray, fp: Fingerprint | np.ndarray) -> np.ndarray:
    """cc[u, v] = sum test(x, y) * k(x + u, y + v), ``test`` (less its mean) padded to k's
    size; circular, through real FFTs (the fingerprint's computed once)."""
    if not isinstance(fp, Fingerprint):
        fp = Fingerprint(np.asarray(fp), 0)
    shape = fp.shape
    a = np.zeros(shape, dtype=np.float32)
    a[:test.shape[0], :test.shape[1]] = test - np.float32(test.mean(dtype=np.float64))
    # unitary spectra: the product is the surface's spectrum over sqrt(N) twice, and the
    # unitary inverse gives it back over sqrt(N) once more
    cc = _irfft2(np.conj(_rfft2(a)) * fp.spectrum(), shape, overwrite=True)
    cc *= np.float32(math.sqrt(cc.size))
    return cc


def _spectrum(test: np.ndarray) -> np.ndarray:
    """The (unitary) real FFT of a photo's weighted residual. Its mean needs no removing: K's spectrum
    is zero at the origin, so the mean never enters a correlation with K."""
    return _rfft2(test)


def _near_peak(p: np.ndarray, shape: tuple[int, int], at: tuple[int, int], radius: int) -> tuple[np.ndarray, float]:
    """The values of the correlation surface whose spectrum is ``p`` (the product of two
    unitary spectra: the surface is sum p e^(2 pi i ...), no 1/N) in the (2 radius + 1)^2
    block around ``at`` (circular; fewer on a surface smaller than the block) and the value
    at ``at``, from the half-plane ``p`` by two small matrix products instead of an inverse
    transform of the whole surface: a real surface is the real part of the sum over the
    half-plane with its inner columns counted twice."""
    h, w = shape
    rows, cols, e_rows, e_cols = _phases(h, w, p.shape[1], at, radius, p.dtype.str)
    # columns first: a product along the contiguous axis (six times faster than rows first);
    # on one BLAS thread: waking a second one cost 6x the arithmetic at 256 x 256 on a busy
    # machine, and was slower at 12 MP too (0.137 against 0.092 CPU s)
    with _one_blas_thread():
        near = (e_rows @ (p @ e_cols).astype(np.complex128)).real
    return near, float(near[int(np.searchsorted(rows, at[0])), int(np.searchsorted(cols, at[1]))])


@functools.lru_cache(maxsize=32)
def _phases(h: int, w: int, half: int, at: tuple[int, int], radius: int,
            dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows and columns of the block around ``at`` and the DFT phases that give them
    (the same for every photo of a size: kept). Phases from exact integer products, reduced
    before the float conversion."""
    rows = np.unique([(at[0] + d) % h for d in range(-radius, radius + 1)])
    cols = np.unique([(at[1] + d) % w for d in range(-radius, radius + 1)])
    e_rows = np.exp((2j * np.pi / h) * (np.outer(rows, np.arange(h)) % h))
    e_cols = np.exp((2j * np.pi / w) * (np.outer(np.arange(half), cols) % w))
    e_cols *= _half_plane_weights(w, half)[:, None]
    return rows, cols, e_rows, e_cols.astype(dtype)


_BLAS: list[Any] = []  # threadpoolctl's controller, made on first use (it inspects the loaded libraries)


def _one_blas_thread() -> Any:
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _half_plane_weights(w: int, half: int) -> np.ndarray:
    """How many times each column of a real FFT's half-plane stands in the full plane."""
    weights = np.full(half, 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


def _conj_product(t: np.ndarray, k: np.ndarray, w: int) -> tuple[np.ndarray, float]:
    """conj(t) k, the spectrum of the surface that correlates the photo with K, and the sum
    of squares over that whole surface (as in _near_peak): N times the spectrum's energy over
    the full plane (Parseval), in float64; one compiled pass, no temporary arrays."""
    from ._kernel import conj_product_energy

    p = np.empty_like(t)
    energy = conj_product_energy(t, k, p, w % 2 == 0)
    return p, float(energy) * (p.shape[0] * w)


def _pce_from_spectrum(p: np.ndarray, shape: tuple[int, int], at: tuple[int, int], total: float,
                       radius: int = PCE_RADIUS) -> float:
    """pce() of the surface whose spectrum is ``p`` (as in _near_peak) at ``at``, without the
    inverse transform: the peak and its neighbourhood from _near_peak, the surface's energy
    ``total`` from _conj_product."""
    near, peak = _near_peak(p, shape, at, radius)
    rest = shape[0] * shape[1] - near.size
    energy = (total - float(np.sum(near * near))) / rest if rest else 0.0
    if energy <= 0.0:
        return 0.0
    return math.copysign(peak * peak / energy, peak)


def _whole_pces(test: np.ndarray | None, fp: Fingerprint, spectrum: np.ndarray | None = None,
                turned: bool = True) -> tuple[float, float | None]:
    """PCE of a photo of the fingerprint's size as it is and turned 180 degrees, from one
    transform of the photo and no inverse transform. The turned photo's spectrum is the
    conjugate of the photo's up to a one-sample shift, so its correlation surface is the
    circular convolution of photo and K, shifted by one sample in each axis (its aligned
    value at the last row and column, with the same neighbours); both surfaces have the
    same energy. Equal to pce() of the surfaces _correlate() computes (tested)."""
    shape = fp.shape
    t = _spectrum(test) if spectrum is None else spectrum
    k = fp.spectrum()
    p, total = _conj_product(t, k, shape[1])
    as_is = _pce_from_spectrum(p, shape, (0, 0), total)
    if not turned:
        return as_is, None
    np.multiply(t, k, out=p)
    return as_is, _pce_from_spectrum(p, shape, (shape[0] - 1, shape[1] - 1), total)


@dataclass
class Probe:
    """A photo ready to be compared with fingerprints: its intensity-weighted residual in
    each of the four 90-degree turns (computed once, whatever the number of cameras), and
    the spectra of the turns compared whole (one transform serves a turn and its opposite,
    and every camera of that size)."""

    turns: dict[int, np.ndarray]  # degrees counter-clockwise -> residual x intensity
    _spectra: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def spectrum(self, deg: int) -> np.ndarray:
        s = self._spectra.get(deg)
        if s is None:
            s = self._spectra[deg] = _spectrum(self.turns[deg])
        return s


def probe(img: np.ndarray, *, rotations: bool = True, sigma: float = SIGMA,
          channels: str = PROBE_CHANNELS) -> Probe:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = img.astype(np.float32, copy=False)
    gray = _gray(img)
    w = residual(gray if channels == "luma" else img, sigma=sigma, channels=channels)
    w *= gray
    turns = {0: w}
    if rotations:  # the residual of a turned photo is the turned residual (the filters are symmetric
        # up to boundary effects, which the correlation does not notice)
        turns.update({90 * k: np.rot90(w, k) for k in (1, 2, 3)})
    return Probe(turns)


def detect(img: np.ndarray | Probe, fp: Fingerprint, *, rotations: bool = True, translations: bool = True,
           sigma: float = SIGMA) -> Detection | None:
    """The best PCE of the photo against the fingerprint over the four 90-degree turns (those
    that fit inside the fingerprint) and, with ``translations``, every crop position; None
    if no turn of the photo fits. A turn of the fingerprint's own size has one position."""
    pr = img if isinstance(img, Probe) else probe(img, rotations=rotations, sigma=sigma)
    k = fp.k
    found: list[tuple[float, tuple[int, int], int, int]] = []  # (pce, peak, turn, positions)
    done: set[int] = set()
    for deg, test in pr.turns.items():
        if (deg and not rotations) or deg in done:
            continue
        h, w = test.shape
        if (h, w) == fp.shape:
            if rotations and (deg + 180) % 360 in pr.turns:  # this turn and the opposite one at once
                as_is, turned = _whole_pces(None, fp, pr.spectrum(deg))
                assert turned is not None
                found += [(as_is, (0, 0), deg, 1), (turned, (0, 0), (deg + 180) % 360, 1)]
                done.add((deg + 180) % 360)
            else:
                found.append((_whole_pces(None, fp, pr.spectrum(deg), turned=False)[0], (0, 0), deg, 1))
            continue
        if h > k.shape[0] or w > k.shape[1] or not translations:
            continue
        cc = _correlate(test, fp)
        # Only placements that keep the photo inside the fingerprint are positions.
        valid = cc[: k.shape[0] - h + 1, : k.shape[1] - w + 1]
        r = np.unravel_index(int(np.argmax(valid)), valid.shape)
        value, peak = pce(cc, (int(r[0]), int(r[1])))
        found.append((value, peak, deg, int(valid.size)))
    if not found:
        return None
    best = max(found, key=lambda f: f[0])
    return Detection(best[0], best[1], best[2], sum(f[3] for f in found))
