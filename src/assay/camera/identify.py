"""Enrolment and matching: photos in, a fingerprint or a decision out.

An enrolment takes photos of one size and one orientation: mixed ones are refused with
the odd files named (averaging photos whose sensor positions differ would blur the
fingerprint), and so is a set smaller than ``min_images`` (a fingerprint from few photos
carries their scenes). A photo that cannot be read is listed and left out.
"""

from __future__ import annotations

import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Limits
from ..errors import AssayError, InvalidBankInput
from .photos import load_photo
from .prnu import DEFAULT_THRESHOLD, Detection, Estimator, Fingerprint, Probe, detect, probe

MIN_IMAGES = 10


@dataclass
class Enrolment:
    fingerprint: Fingerprint
    meta: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # "path: reason" of photos left out


def enroll(paths: list[Path], *, min_images: int = MIN_IMAGES, limits: Limits | None = None) -> Enrolment:
    from ..media.decode import open_image

    limits = limits or Limits()
    skipped: list[str] = []
    sizes: dict[Path, tuple[int, int]] = {}
    for p in paths:  # headers first: sizes are checked before any pixel is decoded
        try:
            st = p.stat()
            if not stat.S_ISREG(st.st_mode):  # a folder, or a pipe or device that would block or never end
                raise AssayError(f"{p}: not a regular file")
            if st.st_size > limits.max_image_bytes:
                raise AssayError(f"{p}: larger than the image limit of {limits.max_image_bytes} bytes")
            opened = open_image(p.read_bytes(), str(p), limits)
            sizes[p] = (opened.width, opened.height)
        except AssayError as exc:
            skipped.append(str(exc))
        except OSError as exc:
            skipped.append(f"{p}: {exc.strerror or exc}")
    by_size = Counter(sizes.values())
    if len(by_size) > 1:
        (main, n), *others = by_size.most_common()
        odd = [f"{w}x{h}: " + ", ".join(str(p) for p, s in sizes.items() if s == (w, h))[:300]
               for (w, h), _ in others]
        rotated = any((h, w) == main for (w, h), _ in others)
        raise InvalidBankInput(
            f"photos of mixed {'orientations' if rotated else 'sizes'}: {n} at {main[0]}x{main[1]}, and "
            + "; ".join(odd),
            hint="enrol photos of one size and one orientation (as stored, before EXIF rotation) per fingerprint")
    if len(sizes) < min_images:
        raise InvalidBankInput(
            f"{len(sizes)} readable photo{'s' if len(sizes) != 1 else ''}; a fingerprint needs at least "
            f"{min_images}" + (f" ({len(skipped)} could not be read: " + "; ".join(skipped[:5])
                               + ("; ..." if len(skipped) > 5 else "") + ")" if skipped else ""),
            hint="add photos (20 or more of flat or natural scenes is typical), or lower --min-images")
    est = Estimator()
    photos: list[dict[str, Any]] = []
    cameras: Counter[tuple[tuple[str, str], ...]] = Counter()
    for p in sizes:
        try:
            photo = load_photo(p, limits)
        except AssayError as exc:
            skipped.append(str(exc))
            continue
        est.add(photo.pixels)
        photos.append(photo.facts())
        cameras[tuple(sorted(photo.camera.items()))] += 1
    if est.images < min_images:
        raise InvalidBankInput(f"{est.images} photos decoded; a fingerprint needs at least {min_images}")
    meta: dict[str, Any] = {"photos": photos, "skipped": skipped}
    exif = [dict(c) for c in cameras if c]
    if exif:
        meta["exif"] = exif  # more than one: the photos name several cameras (said in the output)
    return Enrolment(est.fingerprint(), meta, skipped)


@dataclass
class Result:
    camera: str  # bank/name
    detection: Detection | None
    threshold: float
    why_not: str | None = None

    @property
    def match(self) -> bool:
        return self.detection is not None and self.detection.pce >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"camera": self.camera, "match": self.match, "threshold": self.threshold}
        if self.detection is None:
            d["not_compared"] = self.why_not
            return d
        det = self.detection
        d.update(pce=round(det.pce, 2), peak={"row": det.peak[0], "column": det.peak[1]},
                 rotation=det.rotation, positions=det.positions, false_alarm=det.false_alarm())
        return d


def compare(photo: Any, camera: str, fp: Fingerprint, threshold: float = DEFAULT_THRESHOLD) -> Result:
    """``photo``: pixels, or their Probe (computed once for many cameras)."""
    pr = photo if isinstance(photo, Probe) else probe(photo)
    h, w = pr.turns[0].shape
    det = detect(pr, fp)
    if det is None:
        return Result(camera, None, threshold, f"the photo ({w}x{h}) is larger than the fingerprint "
                      f"({fp.shape[1]}x{fp.shape[0]}) in every orientation; resized photos are not searched")
    return Result(camera, det, threshold)
