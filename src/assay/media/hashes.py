"""Hashes of one image: PDQ (with quality, optionally the 8 dihedral variants),
MD5 and SHA-256 of the file bytes. The file is read once; pixels are decoded
from those bytes in memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import Limits
from ..errors import InputError, TooLarge
from . import crops, decode, embedded, tilt, trim
from .pdq import PdqResult, fast_pdq, fast_pdq_and_mirror, fast_pdq_boxes, hamming, reference_pdq
from .trim import Box, content_boxes

PdqMode = Literal["fast", "reference"]
PDQ_MODES: tuple[str, ...] = ("fast", "reference")
DEFAULT_LIMITS = Limits()  # frozen, so one shared default is safe
LOW_QUALITY = 50  # below this PDQ bits are unstable; the record says so, matching decides
# Key of the decoded full-size PIL image (stored mode, EXIF orientation not applied) that
# hash_image_bytes leaves in its ``share`` dict; the scan passes it on in Subject.cache.
SHARED_IMAGE = "image.decoded"


@dataclass
class ImageHashes:
    format: str
    width: int  # as stored, before any EXIF transpose
    height: int
    mode: str  # Pillow mode as stored
    frames: int
    exif_orientation: int | None
    exif_transposed: bool  # pixels were rotated/flipped before hashing (never for 1)
    pdq: str  # 64 hex digits
    quality: int  # PDQ quality 0-100
    pdq_mode: str  # "fast" | "reference"
    md5: str
    sha256: str
    dihedral: dict[str, str] | None  # variant name -> PDQ hex, when asked for
    # PDQ of the content inside uniform borders/bars (media/trim.py), when there are any:
    # variant name ("trimmed", "trimmed+rot90" ...) -> (hex, quality)
    trimmed: dict[str, tuple[str, int]] | None = None
    # variant -> share of the height/width cut from top, bottom, left, right
    trim_margins: dict[str, tuple[float, float, float, float]] | None = None
    # PDQ of regions queried beside the whole image (media/crops.py: small centred crops,
    # the upper region, the picture beside a caption band): variant -> (hex, quality)
    regions: dict[str, tuple[str, int]] | None = None
    # PDQ of regions banked beside the whole image (``bank_variants``: centred crops, the
    # upper region): variant -> (hex, quality)
    bank_regions: dict[str, tuple[str, int]] | None = None

    @property
    def low_quality(self) -> bool:
        return self.quality < LOW_QUALITY


# A later frame this close to the first or to a frame kept already adds no query.
SAME_FRAME = 8

# EXIF orientation -> (turn of a stored plane as it displays, the turn back): Pillow's
# transposes of media/decode.py on a numpy (rows, columns) plane.
_TURNS: dict[int, tuple[Any, Any]] = {
    2: (lambda a: a[:, ::-1],) * 2,
    3: (lambda a: a[::-1, ::-1],) * 2,
    4: (lambda a: a[::-1],) * 2,
    5: (lambda a: a.T,) * 2,
    6: (lambda a: np.rot90(a, -1), lambda a: np.rot90(a, 1)),
    7: (lambda a: np.rot90(a, 2).T,) * 2,
    8: (lambda a: np.rot90(a, 1), lambda a: np.rot90(a, -1)),
}


# The EXIF orientations that are plain turns -> the quarter turns (np.rot90's k,
# counter-clockwise) of their _TURNS entries (as displayed, back to stored).
_QUARTERS = {3: (2, 2), 6: (3, 1), 8: (1, 3)}
# The EXIF orientations that are flips other than the mirror -> the flipped-* variant they
# equal (each its own inverse: as displayed or back to stored alike).
_FLIPS = {4: "flipped-vertical", 5: "flipped-diagonal", 7: "flipped-antidiagonal"}


def file_digests(data: bytes) -> tuple[str, str]:
    """(md5, sha256) hex of the bytes."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


def hash_image_bytes(
    data: bytes,
    *,
    path: str = "<bytes>",
    mode: PdqMode | str = "fast",
    exif_transpose: bool = False,
    dihedral: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    variants: bool = True,
    bank_variants: bool = False,
    share: dict[str, Any] | None = None,
    bank_kinds: Collection[str] | None = None,
    fine_budget: int | None = None,
) -> ImageHashes:
    """Hash an image held in memory. Raises UnsupportedFormat, DecodeError or TooLarge
    (each naming ``path`` and the reason); never anything else for bad input.
    ``variants`` adds the PDQ of the content inside uniform borders, if there are any,
    and of the regions a query is looked up by (``regions``); ``bank_variants`` the
    regions an image being banked is stored with (``bank_regions``). ``bank_kinds``: the
    kinds of variant hashes the banks to be searched hold (Store.pdq_variant_kinds); query
    variants that only such hashes can match (anchored regions: ``region``, the upper
    region: ``upper``) are not computed when their kind is absent (None: every one).
    ``share`` receives, under SHARED_IMAGE, the decoded full-size image when hashing
    decoded one (PNG, WebP, BMP, small JPEGs), so that later analyses of the same
    file need not decode it again. ``fine_budget``: at most this many pixels for the finer
    decode of a bordered image (decode.FineOverBudget beyond; None: no bound)."""
    if mode not in PDQ_MODES:
        raise ValueError(f"unknown PDQ mode {mode!r} (use 'fast' or 'reference')")
    opened = decode.open_image(data, path, limits)
    result: PdqResult
    trimmed: dict[str, PdqResult] = {}
    boxes: dict[str, Box] = {}
    regions: dict[str, PdqResult] = {}
    bank_regions: dict[str, PdqResult] = {}
    if mode == "reference":
        pixels, oriented = decode.reference_pixels(opened, exif_transpose)
        result = reference_pdq(pixels, dihedral=dihedral)
        del pixels  # ~36 MB for a 12-MP photo: not kept while the variants are hashed
        if variants or bank_variants:
            # Only the plain hash is Meta's to the bit; the variants come from the reduced
            # plane as in fast mode (~57 full-resolution hashes took ~7 CPU s a 12-MP photo;
            # the matches found are the same: bench/RESULTS.md).
            reduced, _ = decode.reduced_luma_again(data, opened, limits, exif_transpose)
    else:
        reduced, oriented = decode.reduced_luma(opened, exif_transpose)
        if variants:  # the mirror shares the plain hash's row pass
            result, mirrored = fast_pdq_and_mirror(reduced.luma, reduced.orig_size, reduced.block, dihedral=dihedral)
        else:
            result = fast_pdq(reduced.luma, reduced.orig_size, reduced.block, dihedral=dihedral)
    if variants:
        shape = reduced.luma.shape
        if mode == "reference":
            mirrored = fast_pdq(reduced.luma[:, ::-1], reduced.orig_size, reduced.block)
        boxes = content_boxes(reduced.luma)
        # A picture pasted onto noise or onto another picture (media/embedded.py)
        pasted = on_noise = embedded.noise_canvas_box(reduced.luma)
        if pasted is None:
            pasted = embedded.picture_box(reduced.luma, gap=2 if reduced.block[0] > 1 else 1)
        fine = None
        if reduced.block[0] > 1 and (boxes or pasted or crops.may_hold_caption(reduced.luma)):
            # A reduced pixel is several original ones (8 in a 1/8 JPEG): an edge one
            # off moves PDQ by up to ~40 bits, and a caption's letters average away. The
            # edges go on a finer plane, decoded only now that there is a border or a
            # band to place.
            fine = decode.fine_luma(data, opened, reduced, limits, exif_transpose, fine_budget)
        trim_plane = reduced
        if boxes and fine is not None and (fine_boxes := content_boxes(fine.luma)):
            boxes, shape, trim_plane = fine_boxes, fine.luma.shape, fine
        # Hashed from the plane the edges were placed on: a reduced pixel across the
        # edge mixes border and picture (JPEG's 1/8 scale averages 8x8 blocks).
        px, py = trim_plane.block
        for name, box in boxes.items():
            sub = trim_plane.luma[box.top:box.bottom, box.left:box.right]
            # the kept region in original pixels (a block at the far edge may be partial)
            size = (min(sub.shape[1] * px, reduced.orig_size[0]), min(sub.shape[0] * py, reduced.orig_size[1]))
            trimmed[name] = fast_pdq(sub, size, (px, py), dihedral=dihedral)
        if pasted is not None:
            # its edges placed on the finer plane too, where there is one
            paste_plane = reduced
            if fine is not None:
                fine_pasted = embedded.noise_canvas_box(fine.luma) if on_noise is not None \
                    else embedded.place_on_finer(fine.luma, pasted, reduced.luma.shape)
                if fine_pasted is not None:
                    pasted, paste_plane = fine_pasted, fine
            px, py = paste_plane.block
            sub = paste_plane.luma[pasted.top:pasted.bottom, pasted.left:pasted.right]
            size = (min(sub.shape[1] * px, reduced.orig_size[0]), min(sub.shape[0] * py, reduced.orig_size[1]))
            inside = fast_pdq(sub, size, (px, py))
            # A picture on a uniform canvas is also found as trimmed: not looked up twice
            if all(hamming(inside.hex, t.hex) > SAME_FRAME for n, t in trimmed.items() if n != "trimmed-blur"):
                regions[embedded.VARIANT] = inside
        if (turned := tilt.tilt(reduced.luma)) is not None:
            # Turned by a small angle, its corners filled (media/tilt.py): turned back, from
            # the finer plane where there is one (the angle measured again there).
            tilt_plane = reduced
            if reduced.block[0] > 1:
                if fine is None:
                    fine = decode.fine_luma(data, opened, reduced, limits, exif_transpose, fine_budget)
                tilt_plane = fine
                turned = tilt.tilt(fine.luma) or turned
            if (sub := tilt.untilted(tilt_plane.luma, turned)) is not None:
                px, py = tilt_plane.block
                regions[tilt.VARIANT] = fast_pdq(sub, (sub.shape[1] * px, sub.shape[0] * py), (px, py))
        caption_plane = fine if fine is not None else reduced
    if variants or bank_variants:
        ow, oh = reduced.orig_size
        wanted = _region_boxes(reduced.luma, reduced.block, oh, ow, variants, bank_variants, bank_kinds,
                               caption_plane.luma if variants else None)
        # Each region once (both sides hash the anchored regions), all in one batch; the
        # picture beside a caption band from the plane its edge was placed on.
        captions = {box4 for name, box4 in wanted[0].items() if name.startswith("uncaptioned")} \
            if variants and caption_plane is not reduced else set()
        distinct = list(dict.fromkeys(box4 for named in wanted for box4 in named.values() if box4 not in captions))
        hashed = dict(zip(distinct, fast_pdq_boxes(reduced.luma, reduced.orig_size, reduced.block, distinct),
                          strict=True))
        if captions:
            fine_boxes4 = list(captions)
            hashed.update(zip(fine_boxes4, fast_pdq_boxes(caption_plane.luma, reduced.orig_size,
                                                          caption_plane.block, fine_boxes4), strict=True))
        for out, named in zip((regions, bank_regions), wanted, strict=True):
            for name, box4 in named.items():
                out[name] = hashed[box4]
    if variants:
        # the other frames of an animation (pages of a TIFF), each unlike those kept
        kept = [result.hex]
        for index, plane in decode.later_frames(opened, limits, exif_transpose):
            frame = fast_pdq(plane.luma, plane.orig_size, plane.block)
            if frame.quality >= LOW_QUALITY and all(hamming(frame.hex, k) > SAME_FRAME for k in kept):
                kept.append(frame.hex)
                regions[f"frame-{index}"] = frame
    if (variants or bank_variants) and oriented.orientation in _TURNS:
        # The other way up: the picture as displayed when its pixels are hashed as stored
        # (a copy turned in its pixels with an EXIF orientation turning it back looks the
        # same to anyone and hashed ~110 bits away), or as stored under --exif-transpose.
        turn = _TURNS[oriented.orientation][1 if oriented.transposed else 0]
        ow, oh = reduced.orig_size
        size = (oh, ow) if oriented.orientation >= 5 else (ow, oh)
        other_way = fast_pdq(np.ascontiguousarray(turn(reduced.luma)), size, reduced.block)
        name = "stored" if oriented.transposed else "displayed"
        if variants:
            regions[name] = other_way
        if bank_variants:
            bank_regions[name] = other_way
    if (variants or bank_variants) and opened.format == "tga":
        # One header bit says whether a TGA's rows run from the bottom or the top, and
        # writers disagree (ImageMagick 6 writes the top row first under a bottom-up bit):
        # the picture with its rows the other way is queried (and banked) too.
        other_rows = fast_pdq(np.ascontiguousarray(reduced.luma[::-1]), reduced.orig_size, reduced.block)
        if variants:
            regions["rows-flipped"] = other_rows
        if bank_variants:
            bank_regions["rows-flipped"] = other_rows
    if variants and (grey := decode.scaled_grey_luma(opened, exif_transpose)) is not None:
        # 16-bit grey: the picture as it shows (the plain hash clips it white, as Meta's does)
        regions = {"scaled": fast_pdq(grey.luma, grey.orig_size, grey.block), **regions}
    if variants and not dihedral:
        # A left-right mirror is the commonest flip, and a quarter, half or three-quarter
        # turn (rotated-90, -180, -270: counter-clockwise) the commonest rewrite after it
        # (each moves PDQ ~128 bits): queried by default, each hashed from the turned
        # pixels (PDQ's sampling is not quite symmetric: its DCT-domain flip, "flipy" of
        # ``dihedral``, lands up to 68 bits from the mirror's own hash on 256-px photos).
        # The other three flips (upside down: ``flipped-vertical``; across a diagonal:
        # ``flipped-diagonal``, ``flipped-antidiagonal``) likewise: each hashed ~106 bits
        # from the original on the shared photos and matched nothing.
        # A turn or flip an EXIF orientation makes was hashed above as "displayed"/"stored"
        # (a TGA's upside-down reading as "rows-flipped"): not again.
        ow, oh = reduced.orig_size
        done = _QUARTERS.get(oriented.orientation, (0, 0))[1 if oriented.transposed else 0]
        turned = {f"rotated-{90 * k}": fast_pdq(np.ascontiguousarray(np.rot90(reduced.luma, k)),
                                                (oh, ow) if k % 2 else (ow, oh), reduced.block)
                  for k in (1, 2, 3) if k != done}
        flips = {"flipped-vertical": (lambda a: a[::-1], (ow, oh)), "flipped-diagonal": (lambda a: a.T, (oh, ow)),
                 "flipped-antidiagonal": (lambda a: np.rot90(a, 2).T, (oh, ow))}
        skip = {_FLIPS.get(oriented.orientation), "flipped-vertical" if opened.format == "tga" else None}
        flipped = {name: fast_pdq(np.ascontiguousarray(flip(reduced.luma)), size, reduced.block)
                   for name, (flip, size) in flips.items() if name not in skip}
        regions = {"mirror": mirrored, **regions, **turned, **flipped}
    if variants:
        # A negative (colours inverted: any viewer turns it back) negates every DCT
        # coefficient PDQ compares with their median: its hash is the complement, bit for
        # bit but the DC term. One more lookup, no hashing; none of ~950,000 pairs of
        # unrelated pictures came within 80 bits that way (bench/RESULTS.md).
        regions["inverted"] = PdqResult(hex=f"{int(result.hex, 16) ^ ((1 << 256) - 1):064x}", quality=result.quality)
    md5, sha256 = file_digests(data)
    if share is not None and (full := decode.full_image(opened)) is not None:
        share[SHARED_IMAGE] = full
    return ImageHashes(
        format=opened.format,
        width=opened.width,
        height=opened.height,
        mode=opened.mode,
        frames=decode.frame_count(opened),
        exif_orientation=oriented.orientation,
        exif_transposed=oriented.transposed,
        pdq=result.hex,
        quality=result.quality,
        pdq_mode=mode,
        md5=md5,
        sha256=sha256,
        dihedral=result.dihedral,
        trimmed=_trimmed_variants(trimmed),
        trim_margins={n: b.margins(*shape) for n, b in boxes.items()} or None,
        # Regions of low quality are left out: flat parts match loosely (never matched,
        # not even with --include-low-quality, and not worth a line in a report).
        regions={n: (r.hex, r.quality) for n, r in regions.items() if r.quality >= LOW_QUALITY} or None,
        bank_regions={n: (r.hex, r.quality) for n, r in bank_regions.items() if r.quality >= LOW_QUALITY} or None,
    )


def _region_boxes(
    luma: object, block: tuple[int, int], height: int, width: int, variants: bool, bank_variants: bool,
    bank_kinds: Collection[str] | None = None, caption_luma: object = None,
) -> tuple[dict[str, crops.PixelBox], dict[str, crops.PixelBox]]:
    """(query regions, bank regions) in pixels of an image ``height`` x ``width`` (``luma``
    its plane, reduced by ``block``; ``caption_luma`` the plane caption bands are found on):
    both sides also hash the anchored regions (the query side only when the banks hold
    some: ``bank_kinds``)."""
    if min(height, width) < 4 * trim.MIN_LINE or luma is None:  # nothing worth cutting
        return {}, {}
    plane = np.asarray(luma)
    query_regions = variants and (bank_kinds is None or "region" in bank_kinds)
    anchored = crops.anchored_boxes(plane, block, (width, height)) if query_regions or bank_variants else {}
    query: dict[str, crops.PixelBox] = {}
    if variants:
        captions = crops.caption_boxes(np.asarray(caption_luma if caption_luma is not None else plane), height, width)
        query = {**crops.query_boxes(height, width, bank_kinds), **captions, **(anchored if query_regions else {})}
    bank = {**crops.bank_boxes(height, width), **anchored} if bank_variants else {}
    return query, bank


def _trimmed_variants(results: dict[str, PdqResult]) -> dict[str, tuple[str, int]] | None:
    out: dict[str, tuple[str, int]] = {}
    for base, res in results.items():
        out[base] = (res.hex, res.quality)
        for name, value in (res.dihedral or {}).items():
            if name != "original":
                out[f"{base}+{name}"] = (value, res.quality)
    return out or None


def read_limited(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The whole file in one read, refusing files over ``max_bytes`` without reading them."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise TooLarge(p, f"{size} bytes exceeds the image limit of {max_bytes} bytes")
            # The size found and one byte more (a buffer of the limit's size for every file
            # cost more than the read: fresh pages of 512 MB mapped each time); a file
            # growing under us is read on, up to one byte past the limit, and caught.
            data = f.read(size + 1)
            if len(data) > size:
                data += f.read(max_bytes + 1 - len(data))
    except IsADirectoryError:
        raise InputError(p, "is a directory, not an image file") from None
    except FileNotFoundError:
        raise InputError(p, "file not found") from None
    except PermissionError:
        raise InputError(p, "permission denied") from None
    except OSError as exc:
        raise InputError(p, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise TooLarge(p, f"file exceeds the image limit of {max_bytes} bytes")
    return data


def hash_image_file(
    path: str | os.PathLike[str],
    *,
    mode: PdqMode | str = "fast",
    exif_transpose: bool = False,
    dihedral: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    variants: bool = True,
    bank_variants: bool = False,
    bank_kinds: Collection[str] | None = None,
) -> ImageHashes:
    """Hash an image file: one bounded read, then everything from memory."""
    data = read_limited(path, limits.max_image_bytes)
    return hash_image_bytes(
        data,
        path=str(path),
        mode=mode,
        exif_transpose=exif_transpose,
        dihedral=dihedral,
        limits=limits,
        variants=variants,
        bank_variants=bank_variants,
        bank_kinds=bank_kinds,
    )
