"""Invisible watermarks of the Stable Diffusion reference pipelines (DWT-DCT, no torch).

The CompVis/Stability scripts and diffusers mark their output with the ``dwtDct``
method of the ``invisible-watermark`` package (imwatermark/maxDct.py). Its decoder,
restated here with numpy only:

1. BGR -> YUV with OpenCV's 8-bit fixed-point formula; only the U channel carries
   the mark (scales = [0, 36, 36], but the loop visits channels 0 and 1 only).
2. The image is cropped to multiples of 4 and a one-level Haar DWT taken; only
   the approximation band cA ~ (a + b + c + d) / 2 of each 2x2 cell is used.
3. cA is cut into 4x4 blocks in row-major order; block ``k`` votes for bit
   ``k mod L``. Despite the module's name no DCT is computed: the block's largest
   magnitude coefficient other than [0, 0] is taken, and the vote is 1 when
   ``|v| mod 36 > 18``.
4. A bit is 1 when the mean of its votes exceeds 127/255.

Block votes do not depend on the payload, so they are computed once and regrouped
for each payload length (136, 32 and 48 bits).

The mark does not survive 4:2:0 JPEG, resizing or cropping: a missing or partial
match proves nothing, which the evidence facts and the analyzer's explanation say.
Files whose encoding cannot carry it are not searched (:func:`unsuitable`): the
report lists the watermark under "not checked" with the reason.
"""

from __future__ import annotations

import ctypes
import io
import math
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import DecodeError
from ..report.provenance import Evidence
from ..sniff import damaged_pixels, libtiff_reason, quiet_pillow

if TYPE_CHECKING:
    from PIL.Image import Image

    from .context import ImageContext

SCALE = 36
BLOCK = 4
MIN_PIXELS = 256 * 256  # the reference decoder refuses smaller images
_HAAR = 0.7071067811865476  # PyWavelets' haar filter tap, 1/sqrt(2) as a double

Level = Literal["none", "partial", "likely", "very likely"]


def _bits_of_bytes(b: bytes) -> tuple[int, ...]:
    return tuple(int(x) for x in np.unpackbits(np.frombuffer(b, dtype=np.uint8)))


def _bits_of_int(value: int, n: int) -> tuple[int, ...]:
    return tuple((value >> (n - 1 - i)) & 1 for i in range(n))


@dataclass(frozen=True)
class Payload:
    name: str  # short id used in facts, e.g. "sdxl"
    label: str  # shown to people
    bits: tuple[int, ...]
    # Highest matched-bit count still read as "none", "partial" and "likely";
    # anything above the last is "very likely".
    cuts: tuple[int, int, int]


# Stability's detector (generative-models, scripts/demo/detect.py) for its 48-bit
# SDXL mark: <= 27 matched bits no mark, <= 33 partial, <= 35 likely, more very
# likely. SD 1.x (136 bits) uses the same fractions. For SD 2.x's 32 bits the same
# fractions are too lax: unmarked photos decode to (nearly) all-zero bits, which
# already match 19 of the 32 bits of b"SDV2", and clean photos matched up to 21
# (bench/RESULTS.md, provenance), so its bands start above that.
PAYLOADS: tuple[Payload, ...] = (
    Payload("sd1", "Stable Diffusion 1.x", _bits_of_bytes(b"StableDiffusionV1"), (76, 93, 99)),
    Payload("sd2", "Stable Diffusion 2.x", _bits_of_bytes(b"SDV2"), (21, 25, 27)),
    Payload("sdxl", "Stable Diffusion XL", _bits_of_int(0xB3EC907BB19E, 48), (27, 33, 35)),
)


def level_for(matched: int, payload: Payload) -> Level:
    """Confidence band for ``matched`` bits of ``payload``."""
    none, partial, likely = payload.cuts
    if matched <= none:
        return "none"
    if matched <= partial:
        return "partial"
    if matched <= likely:
        return "likely"
    return "very likely"


@dataclass(frozen=True)
class WatermarkMatch:
    payload: Payload
    matched: int
    level: Level

    @property
    def total(self) -> int:
        return len(self.payload.bits)


# OpenCV's 8-bit BGR2YUV in fixed point (14-bit coefficients, round half up):
#   Y = (4899 R + 9617 G + 1868 B + 2^13) >> 14
#   U = clip(((B - Y) * 8061 + (128 << 14) + 2^13) >> 14, 0, 255)
# Pillow's matrix conversion computes each output as the float sum m0*c0 + m1*c1 + m2*c2
# + m3, adds 0.5 and truncates (clipped to 0..255). With the coefficients over 2^14
# every product and partial sum is a multiple of 2^-14 below 256, which a float holds
# exactly, so truncating the sum plus 0.5 is the shift above: both steps are bit-exact
# (tests/test_watermark.py checks all 2^24 colours against OpenCV). Two passes in C
# over the decoded image, ~3x cheaper than the same formula in numpy float32 on a
# busy machine (bench/RESULTS.md, scan throughput), and no RGB array copy.
_Y_MATRIX = (4899 / 16384, 9617 / 16384, 1868 / 16384, 0.0)
# applied to an image whose bands are (B, Y, Y): (B - Y) * 8061 / 2^14 + 128 (+ 0.5)
_U_MATRIX = (8061 / 16384, -8061 / 16384, 0.0, 128.0)


def u_channel(rgb: np.ndarray) -> np.ndarray:
    """The U plane OpenCV's cvtColor(BGR2YUV) computes for 8-bit pixels."""
    from PIL import Image as PILImage

    return u_plane(PILImage.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), "RGB"))


def u_plane(im: Image) -> np.ndarray:
    """u_channel of an RGB PIL image, as an H x W uint8 array."""
    from PIL import Image as PILImage

    if "transparency" in im.info:  # a PNG tRNS colour, which convert() would try to convert too
        im = im.copy()
        del im.info["transparency"]
    y = im.convert("L", matrix=_Y_MATRIX)
    return np.asarray(PILImage.merge("RGB", (im.getchannel("B"), y, y)).convert("L", matrix=_U_MATRIX))


def block_votes(rgb: np.ndarray, compiled: bool | None = None) -> np.ndarray:
    """One 0/1 vote per 4x4 block of the U channel's Haar approximation, in the
    order the reference encoder assigns bits (row-major over blocks); ``compiled`` as
    in image_votes."""
    from PIL import Image as PILImage

    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an H x W x 3 RGB array, got shape {rgb.shape}")
    return image_votes(PILImage.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), "RGB"), compiled)


# A block row covers 8 pixel rows; strips of whole block rows (of ~4 MP, at least 1,024
# rows) keep the temporaries (a 4-byte-per-pixel copy among them) small on huge images
# without changing the order. Images of fewer pixels are converted whole.
STRIP_PIXELS = 1 << 22
STRIP_MIN_ROWS = 8 * 128

# Two passes give the same votes: Pillow's matrix conversions (u_plane) and the compiled
# pass of _wm_kernel over Pillow's own memory, ~3x less CPU a pixel in a scan (~1.3 against
# ~4 ms a megapixel; bench/RESULTS.md, scan throughput, fourth pass). The compiled pass
# needs numba, whose import and start-up cost a process ~0.4 s of CPU once, as much as
# searching ~100 MP the Pillow way: a process searches with Pillow until it has searched
# COMPILED_AFTER pixels, and then (or at once when the kernel is already loaded) with the
# compiled pass. A one-file command never pays for numba; a scan's worker pays once,
# after its first few dozen images.
COMPILED_AFTER = 16_000_000
_searched_pixels = 0


def _use_compiled(pixels: int) -> bool:
    global _searched_pixels
    _searched_pixels += pixels
    return "assay.provenance._wm_kernel" in sys.modules or _searched_pixels > COMPILED_AFTER


def preload() -> None:
    """Load the compiled pass now: what a scan's parent does before forking workers that
    will search many images (scan/pipeline.py), so that they share it."""
    from ._wm_kernel import votes

    rgbx = np.zeros((8, 32), np.uint8)
    rgbx.flags.writeable = False  # as _rgbx_rows hands rows over: the same specialisation
    votes(rgbx, 1, 1)


def image_votes(im: Image, compiled: bool | None = None) -> np.ndarray:
    """block_votes of a PIL image (RGB; any other mode is converted, alpha dropped).
    ``compiled``: force one pass or the other (None: as _use_compiled decides)."""
    w, h = im.size
    bh, bw = h // 4 * 4 // 2 // BLOCK, w // 4 * 4 // 2 // BLOCK
    if compiled is None:
        compiled = _use_compiled(bh * bw * 64)
    if im.mode != "RGB" and not (compiled and im.mode in _FOUR_BYTES):
        im = im.convert("RGB")
    rows = max(STRIP_MIN_ROWS, STRIP_PIXELS // max(w, 1) // 8 * 8)
    if compiled:
        return np.concatenate([_compiled_votes(im, y, min(y + rows, bh * 8), bw)
                               for y in range(0, bh * 8, rows)] or [np.zeros(0)])
    if bh * 8 <= rows:
        return _pillow_votes(im, bh, bw)
    return np.concatenate([_pillow_votes(im.crop((0, y, w, min(y + rows, bh * 8))), min(rows, bh * 8 - y) // 8, bw)
                           for y in range(0, bh * 8, rows)])


def _pillow_votes(im: Image, bh: int, bw: int) -> np.ndarray:
    """Votes of the top ``bh`` x ``bw`` blocks of ``im`` from u_plane."""
    return _strip_votes(u_plane(im)[: bh * 8, : bw * 8])


# Modes Pillow stores as R, G, B and a fourth byte, which the compiled pass skips: an RGBA
# image is searched in place, as the RGB image convert() would make (alpha dropped).
_FOUR_BYTES = ("RGB", "RGBA", "RGBX")


def _compiled_votes(im: Image, y0: int, y1: int, bw: int) -> np.ndarray:
    """Votes of the blocks of rows ``y0`` to ``y1`` (whole blocks) of an image of one of
    the _FOUR_BYTES modes, from the compiled pass over the image's own pixels."""
    from ._wm_kernel import votes

    with _rgbx_rows(im, y0, y1) as rgbx:
        return votes(rgbx, (y1 - y0) // 8, bw)  # type: ignore[no-any-return]


@contextmanager
def _rgbx_rows(im: Image, y0: int, y1: int) -> Iterator[np.ndarray]:
    """Rows ``y0`` to ``y1`` of an image of one of the _FOUR_BYTES modes as Pillow stores
    them (R, G, B and a fourth byte),
    as a (rows, 4 x width) uint8 array, valid inside the ``with`` block. Pillow's memory
    itself where it exports it through the Arrow C data interface (an image whose rows
    are one block, up to 16 MB), else a copy by its raw encoder: copying costs more than
    the compiled pass itself, mostly in page faults on the fresh memory."""
    from PIL import Image as PILImage

    im.load()
    w = im.width
    try:
        schema, array = im.__arrow_c_array__()
    except ValueError:  # rows in several blocks
        pass
    else:
        pixels = _arrow_bytes(schema, array, 4 * w * im.height)
        if pixels is not None:  # valid while the capsules live (they keep the image exported)
            rows = pixels.reshape(im.height, 4 * w)[y0:y1]
            rows.flags.writeable = False  # as the copy: one compiled specialisation, not two
            yield rows
            return
    encoder = PILImage._getencoder(im.mode, "raw", ("RGBX" if im.mode == "RGB" else im.mode,))
    encoder.setimage(im.im, (0, y0, w, y1))
    pieces = []
    while True:
        _, status, data = encoder.encode(max(4 * w * (y1 - y0), 65536))
        pieces.append(data)
        if status:
            break
    if status < 0:
        raise ValueError(f"Pillow's raw encoder failed ({status})")
    yield np.frombuffer(pieces[0] if len(pieces) == 1 else b"".join(pieces), np.uint8).reshape(y1 - y0, 4 * w)


def _arrow_bytes(schema: object, array: object, size: int) -> np.ndarray | None:
    """The ``size`` bytes of an image Pillow exports as a fixed-size list of bytes (format
    ``+w:4`` of ``C``), as a uint8 array over its memory; None for any other layout."""
    from ._arrow import ArrowArray, ArrowSchema, capsule_pointer

    sch = ArrowSchema.from_address(capsule_pointer(schema, b"arrow_schema"))
    arr = ArrowArray.from_address(capsule_pointer(array, b"arrow_array"))
    if sch.format != b"+w:4" or sch.n_children != 1 or sch.children[0].contents.format != b"C":
        return None
    if arr.n_children != 1 or arr.offset != 0:
        return None
    child = arr.children[0].contents
    if child.n_buffers != 2 or child.offset != 0 or child.length != size or not child.buffers[1]:
        return None
    return np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(child.buffers[1]))


def _haar_ca(u: np.ndarray) -> np.ndarray:
    """The Haar approximation as PyWavelets rounds it (columns first, products rounded
    before the sum), from U planes of even height and width, in float64."""
    u = u.astype(np.float64)
    v = u[..., 0::2, :] * _HAAR + u[..., 1::2, :] * _HAAR
    return v[..., 0::2] * _HAAR + v[..., 1::2] * _HAAR


def _strip_votes(u: np.ndarray) -> np.ndarray:
    # The reference takes, per 4x4 block of the Haar approximation cA, the coefficient
    # of largest magnitude other than [0, 0] and votes 1 when |v| mod 36 > 18. cA of a
    # 2x2 cell is its U sum S over 2, up to float rounding in the last bits: so the
    # vote follows from the block's largest whole-number S (max S mod 72 > 36), except
    # where S/2 lies exactly on 0 or 18 (mod 36). There the rounding decides, and those
    # blocks (about one in 36) are recomputed in float64 exactly as the reference does.
    # ``u``: the U plane (uint8) of whole blocks, 8 pixels each way.
    s = u[0::2].astype(np.uint16)
    s += u[1::2]
    s = s[:, 0::2] + s[:, 1::2]  # S of each 2x2 cell, at most 1020
    bh, bw = s.shape[0] // BLOCK, s.shape[1] // BLOCK
    blocks = s.reshape(bh, BLOCK, bw, BLOCK)
    best = blocks[:, 0, :, 1].copy()
    for k in range(2, BLOCK * BLOCK):
        np.maximum(best, blocks[:, k // BLOCK, :, k % BLOCK], out=best)
    rest = best % (2 * SCALE)
    votes = (rest > SCALE).ravel()
    edge = np.flatnonzero(((rest == 0) | (rest == SCALE)).ravel())
    if edge.size:
        by, bx = np.divmod(edge, bw)
        rows = (by * 8)[:, None] + np.arange(8)
        cols = (bx * 8)[:, None] + np.arange(8)
        # the U of each edge block's 8x8 pixels: (n, 8, 8)
        cells = u[rows[:, :, None], cols[:, None, :]]
        mags = np.abs(_haar_ca(cells)).reshape(-1, BLOCK * BLOCK)[:, 1:]
        votes[edge] = np.mod(mags.max(axis=1), SCALE) > 0.5 * SCALE
    return votes.astype(np.float64)


def decode_bits(votes: np.ndarray, length: int) -> np.ndarray:
    """Majority of the votes of blocks ``k`` with ``k mod length == bit``."""
    if len(votes) < length:
        raise ValueError(f"{len(votes)} blocks cannot carry {length} bits")
    n = len(votes)
    whole = n // length * length  # blocks in complete rounds of the payload, then the rest
    sums = votes[:whole].reshape(-1, length).sum(axis=0)
    sums[: n - whole] += votes[whole:]
    counts = np.full(length, n // length, np.int64)
    counts[: n - whole] += 1
    return (sums / counts) * 255 > 127


def match_payloads(rgb: np.ndarray) -> list[WatermarkMatch]:
    """Matched bits of every known payload; empty when the image is too small."""
    if rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
        return []
    return _matches(block_votes(rgb))


def match_image(im: Image) -> list[WatermarkMatch]:
    """match_payloads of a PIL image (first frame; alpha dropped)."""
    if im.width * im.height < MIN_PIXELS:
        return []
    return _matches(image_votes(im))


def _matches(votes: np.ndarray) -> list[WatermarkMatch]:
    out: list[WatermarkMatch] = []
    for p in PAYLOADS:
        if len(votes) < len(p.bits):
            continue
        bits = decode_bits(votes, len(p.bits))
        matched = int(np.sum(bits == np.array(p.bits, dtype=bool)))
        out.append(WatermarkMatch(p, matched, level_for(matched, p)))
    return out


def rgb_array(im: Image) -> np.ndarray:
    """First frame as an H x W x 3 uint8 array; alpha is dropped, not composited,
    as cv2.imread does for the reference detector."""
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


@lru_cache(maxsize=512)
def chance_at_most(payload: Payload, matched: int) -> float:
    """An upper bound on how often an UNMARKED image matches ``matched`` or more bits.

    The reference bands (``level_for``) are Stability's detector's, made to flag its own
    outputs, not to bound false matches: 36 of SDXL's 48 bits ("very likely") happen by
    chance about once in 2,000 images, and an unmarked 4:2:0 JPEG was measured reading
    26 of SD 2.x's 32 bits ("likely"). The bound models an unmarked image's decoded bits
    as independent, each reading 1 with the same unknown probability q (unmarked photos
    decode to nearly all-zero bits, so q is far from 1/2), and takes the worst q: the
    tail of Binomial(ones, q) + Binomial(zeros, 1 - q) at ``matched``, maximised over q."""
    ones = sum(payload.bits)
    zeros = len(payload.bits) - ones
    q = np.linspace(0.0, 1.0, 1001)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        def pmf(n: int, p: np.ndarray) -> np.ndarray:
            k = np.arange(n + 1)[None, :]
            log_comb = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                                 for j in range(n + 1)])[None, :]
            return np.nan_to_num(np.exp(log_comb + k * np.log(p) + (n - k) * np.log1p(-p)), nan=0.0) \
                if n else np.ones((len(p), 1))
        a = pmf(ones, q)  # ones read as 1
        b = pmf(zeros, 1.0 - q)  # zeros read as 0
    a[0, 0] = a[-1, -1] = 1.0  # q = 0 and q = 1 exactly: all bits 0, all bits 1
    b[0, -1] = b[-1, 0] = 1.0
    tails = [float(np.convolve(a[i], b[i])[matched:].sum()) for i in range(len(q))]
    return min(1.0, max(tails))


# Evidence strength from that bound: a strong claim should be wrong less than once in a
# billion unmarked images, a moderate one less than once in a million; weaker matches
# (chance up to 1 in 1,000) are weak evidence, and anything likelier is no evidence at all.
_STRENGTH_BY_CHANCE: tuple[tuple[float, str], ...] = ((1e-9, "strong"), (1e-6, "moderate"), (1e-3, "weak"))


def strength_for(m: WatermarkMatch) -> str | None:
    if m.level not in ("likely", "very likely"):
        return None
    chance = chance_at_most(m.payload, m.matched)
    return next((s for limit, s in _STRENGTH_BY_CHANCE if chance <= limit), None)


def evidence_from_matches(matches: list[WatermarkMatch]) -> list[Evidence]:
    """Evidence for payloads matched at 'likely' or better that chance does not explain
    (``chance_at_most``), best match first."""
    out: list[Evidence] = []
    ranked = sorted(matches, key=lambda m: (-m.matched / m.total, m.payload.name))
    for m in ranked:
        strength = strength_for(m)
        if strength is None:
            continue
        chance = chance_at_most(m.payload, m.matched)
        out.append(
            Evidence(
                source="watermark",
                claim="ai-generated",
                strength=strength,  # type: ignore[arg-type]
                summary=(
                    f"The pixels carry the invisible DWT-DCT watermark of the "
                    f"{m.payload.label} reference pipeline ({m.level}: {m.matched} of "
                    f"{m.total} bits match; an unmarked image matches this many at most "
                    f"about once in {_one_in(chance)})."
                ),
                facts={
                    "method": "invisible-watermark dwtDct",
                    "payload": m.payload.name,
                    "matched_bits": m.matched,
                    "total_bits": m.total,
                    "confidence": m.level,
                    "chance_at_most": float(f"{chance:.3g}"),
                    "all_payloads": {x.payload.name: x.matched for x in matches},
                    "note": "the mark is lost by 4:2:0 JPEG, resizing and cropping; "
                    "its absence proves nothing",
                },
            )
        )
    return out


def _one_in(chance: float) -> str:
    n = 1.0 / chance if chance > 0 else float("inf")
    if n == float("inf") or n >= 1e15:
        return "more than 10^15 images"
    if n >= 1e12:
        return f"10^{int(math.log10(n))} images"
    if n >= 1e6:
        return f"{n / 1e6:,.0f} million images" if n < 1e9 else f"{n / 1e9:,.0f} billion images"
    return f"{n:,.0f} images"


def watermark_evidence(im: Image) -> list[Evidence]:
    """Decode the Stable Diffusion watermarks from a (not yet decoded) PIL image."""
    return evidence_from_matches(match_image(im))


def unsuitable(ctx: ImageContext) -> str | None:
    """Why the mark cannot have survived this file's encoding, or None when it can.

    The mark lives in the U (chroma) channel at full resolution. 4:2:0 chroma
    subsampling (most JPEGs, every lossy WebP) averages it away, and a greyscale
    image has no chroma at all: searching such files costs most of a scan's time and
    can only say "not found" (tests/test_watermark.py shows a freshly marked image so
    encoded never decodes above "partial"). 4:2:2 JPEG at high quality keeps it, and
    so does any size, so neither is skipped."""
    im = ctx.pil()
    w, h = im.size
    if w * h < MIN_PIXELS:
        return f"{w}x{h} pixels is smaller than any image the pipelines mark"
    if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return f"a greyscale image ({im.mode}) has no chroma channel to carry the mark"
    if ctx.format == "jpeg":
        from PIL import JpegImagePlugin

        if JpegImagePlugin.get_sampling(im) == 2:
            return "JPEG with 4:2:0 chroma subsampling, which removes the mark"
    if ctx.format == "webp" and _webp_bitstream(ctx.data) == b"VP8 ":
        return "lossy WebP (4:2:0 chroma), which removes the mark"
    return None


def _webp_bitstream(data: bytes) -> bytes | None:
    """The fourcc of a WebP file's image chunk: ``VP8 `` (lossy) or ``VP8L`` (lossless)."""
    pos = 12
    for _ in range(64):  # VP8X, ICCP, ANIM, EXIF ... come first; a real file has few
        if pos + 8 > len(data):
            return None
        fourcc, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc
        if fourcc == b"ANMF":  # animation frame: its own sub-chunks follow its 16-byte header
            pos += 8 + 16
            continue
        pos += 8 + size + (size & 1)
    return None


# Above this many pixels a PNG or a baseline JPEG is searched in its top rows only
# (BAND_PIXELS of them): blocks carry the payload's bits cyclically from the top-left
# block on, so the top rows hold every bit, with fewer votes each (16 MP of rows: ~5,000
# votes a bit for the 48-bit mark). The pipelines mark images of 0.25-4 MP, searched whole.
BAND_PIXELS = 16_000_000


def band_rows(ctx: ImageContext) -> int | None:
    """Rows of the top band to search, or None for the whole image: a PNG (not
    interlaced) or a baseline JPEG over BAND_PIXELS, whose rows are decoded in order
    (a progressive JPEG or an interlaced PNG needs the whole file for any row)."""
    im = ctx.pil()
    w, h = im.size
    if w * h <= BAND_PIXELS:
        return None
    if ctx.format == "png" and not im.info.get("interlace"):
        pass
    elif ctx.format == "jpeg" and not im.info.get("progressive") and not im.info.get("progression"):
        pass
    else:
        return None
    return max(8, BAND_PIXELS // w // 8 * 8)


def _top_rows(ctx: ImageContext, rows: int) -> Image:
    """The first ``rows`` rows of a non-interlaced PNG or a baseline JPEG, decoded
    without the rest."""
    from PIL import Image as PILImage

    im = PILImage.open(io.BytesIO(ctx.data), formats=["PNG", "JPEG"])
    w = im.size[0]
    if len(im.tile) != 1:
        raise ValueError(f"unexpected {ctx.format.upper()} layout ({len(im.tile)} tiles)")
    if ctx.format == "png":
        im.tile = [im.tile[0]._replace(extents=(0, 0, w, rows))]
        im._size = (w, rows)
        im.load()
        return im
    return _jpeg_top_rows(im, ctx.data, rows)


def _jpeg_top_rows(im: Image, data: bytes, rows: int) -> Image:
    """Pillow's own JPEG decoder (as ``Image.load`` drives it) on an image of ``rows``
    rows: libjpeg writes scanlines in order and the data after them is never read.
    Stopping early makes libjpeg's finish step fail ("too few scanlines"), which is
    expected once the band is full; data that ends before the band is an error."""
    from PIL import Image as PILImage

    tile = im.tile[0]
    w = im.size[0]
    core = PILImage.core.new(im.mode, (w, rows))
    decoder = PILImage._getdecoder(im.mode, tile.codec_name, tile.args, im.decoderconfig)
    decoder.setimage(core, (0, 0, w, rows))
    pos, pending = tile.offset, b""
    try:
        while True:  # Pillow's ImageFile.load loop
            chunk = data[pos:pos + 65536]
            pos += len(chunk)
            if not chunk:
                raise ValueError("the JPEG data ends before the rows searched")
            pending += chunk
            n, _err = decoder.decode(pending)
            if n < 0:
                break
            pending = pending[n:]
    finally:
        decoder.cleanup()
    return PILImage.Image()._new(core)


def pixels_searched(ctx: ImageContext) -> int:
    """How many pixels ``evidence`` decodes for this image."""
    w, h = ctx.pil().size
    rows = band_rows(ctx)
    return w * (h if rows is None else rows)


def evidence(ctx: ImageContext) -> list[Evidence]:
    """Watermark evidence for an image; undecodable pixels raise DecodeError."""
    im = ctx.pil()
    if im.width * im.height < MIN_PIXELS:
        return []
    rows = band_rows(ctx)
    libtiff: list[str] = []
    try:
        with quiet_pillow() as libtiff:
            searched = im if rows is None else _top_rows(ctx, rows)
            if searched.mode not in ("RGB", "RGBA"):  # RGBA: image_votes drops alpha, converting if it must
                searched = searched.convert("RGB")
            else:
                searched.load()
    except (OSError, ValueError, SyntaxError, struct.error, MemoryError) as exc:
        raise DecodeError(
            ctx.path, f"pixels cannot be decoded for the watermark check: {exc}{libtiff_reason(libtiff)}"
        ) from exc
    if (damage := damaged_pixels(libtiff)) is not None:
        raise DecodeError(ctx.path, f"pixels cannot be decoded for the watermark check: damaged image data (libtiff: {damage})")
    found = evidence_from_matches(match_image(searched))
    if rows is not None:
        for e in found:
            e.facts["rows_searched"] = f"top {rows} of {im.height}"
    return found
