"""The pictures a PDF holds compressed or encoded, rebuilt to pixels (pypdf) and scanned as members.

A PDF's JPEG photos are stored as they are (DCTDecode streams): the carver (carve.py) cuts
them out byte for byte, ``file.pdf!/carved@OFFSET.jpg``, and a copy of a known JPEG
matches exactly. Every other image XObject is stored compressed or encoded: Flate (what
most writers use for lossless pictures, img2pdf's PNGs with PNG predictors included),
LZW, RunLength, ASCIIHex and ASCII85 chains, CCITT fax, JPEG 2000 (JPXDecode), with 1 to
16 bits per component in grey, RGB, CMYK, ICC-based, calibrated, indexed or DeviceN colour
(a separation is read as ink coverage, as pypdf reads it, whatever its tint transform;
CIE Lab is not converted right). pypdf reads the document (classic and PDF 1.5 cross-reference and object
streams, an empty user password) and decodes each image; the pixels are scanned as a
member named after where the picture is::

    file.pdf!/page-3/Im1-obj12.png   shown on page 3 (counted from 1, as viewers count) under
                                     the resource name /Im1; PDF object 12 (``mutool show
                                     file.pdf 12``, ``qpdf --show-object=12``, the "object"
                                     column of ``pdfimages -list``)
    file.pdf!/page-3/inline-0.png    the first inline image (``BI ... ID <data> EI``, the picture
                                     written into the page's content stream itself) of page 3
    file.pdf!/page-3/Fm0-obj7/inline-0.png  one in form XObject 7, drawn on page 3 as /Fm0
    file.pdf!/obj-7/inline-0.png     an inline image in the content of object 7 that no page
                                     draws as a form: a pattern, a Type 3 glyph, an appearance
    file.pdf!/obj-40.png             an image object no page shows (it is in the file)
    file.pdf!/attachment-obj9/a.png  a file attached to the PDF (by name, by a file attachment
                                     annotation, or a typed stream no name points to): object 9,
                                     its filters undone, scanned as the file it is (exact hashes)

Inline images are read from the content streams pypdf parses (its operators, its search for
the EI that ends an image), their abbreviated keys and values written out (/W /H /CS /BPC /F
/DP, /RGB /G /CMYK /I, /Fl /AHx /A85 /LZW /RL /CCF /DCT, a colour space named in the
resources looked up), then decoded as an image XObject is, under the same bounds (and a
content stream parsed up to 16 MiB: pypdf's search for EI runs in Python). Where pypdf's
reading fails (it ends an image at an EI inside its data when what follows looks like
operators), Flate images are inflated to the end of their zlib stream, RunLength ones read
to their end run and unfiltered ones taken by their declared size, as a viewer reads them,
and handed out as ``page-3/inline@OFFSET.png`` (OFFSET: of the BI in the page's content)
unless pypdf read the same data right. Only the streams a search of the bytes finds the BI
operator in are parsed (the pre-check and the inline readers: pdfinline.py).

A PNG or TIFF of the decoded pixels is what is scanned: its PDQ is the picture's; its MD5
and SHA-256 are of that rebuilt file, which exists nowhere else: they match nothing. A JPEG or JPEG 2000 inside other filters (Flate around a
DCT stream, an encrypted PDF's JPEG) is handed over as its own bytes (``.jpg``, ``.jp2``):
exact hashes hold. A plain DCT image the carver found is not reported twice.

The PDF is hostile data: an image is decoded only when its declared size is within
``Limits.max_pixels`` and the bytes its filters may produce are bounded by what that size
needs (pypdf's own output limits set to it, a Flate bomb stops there); images whose
filters pypdf undoes in Python loops (LZW, ASCII85, TIFF predictors, PNG predictors
assay cannot hand to Pillow) at most ``_SLOW_BYTES`` each; at most
``Limits.max_document_images`` images and ``Limits.max_document_seconds`` of work a
document (inline images counted with the others), and the inflated total under the archive
ratio rule. A broken image is an error on its member's record (an inline image pypdf cannot
parse to its EI: an error on ``page-N/inline-K`` after the last one read); a broken document
an error on the PDF's own record. Nothing pypdf logs or warns reaches the terminal. Not
read: JBIG2 images (decoding needs an external program), documents that need a password.

This module is the walk over a document; the helpers over PDF objects both it and the inline
readers use are in pdfobjects.py, the inline-image pre-check and readers in pdfinline.py.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Limits
from .members import ArchiveError, Member
from .pdfinline import (
    _ID,
    _INLINE_CONTENT,
    _bi_at,
    _first_filter,
    _flate_end,
    _inline_hints,
    _inline_image,
    _rl_end,
    _TooLong,
)
from .pdfobjects import (
    _candidates,
    _components,
    _config,
    _direct,
    _encoded,
    _filters,
    _int,
    _name,
    _parms,
    _resolved,
    _subtype,
    _unpredict,
    _without,
    quiet_pypdf,
)

# Bytes a picture decodes to through pypdf's loops written in Python (LZW ~0.5 MB/s: 4 MB ~ 9 s).
_SLOW_BYTES = 4 * 1024**2
_FORM_DEPTH = 8  # form XObjects inside form XObjects followed for page images
_RESOURCE_STEPS = 200_000  # XObject entries looked at to tell which page shows an image
_SLOW = {"/LZWDecode", "/LZW", "/ASCII85Decode", "/A85"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class _Walk:
    """One document's images, one at a time, within its budgets."""

    def __init__(self, path: Path, limits: Limits, carved_jpegs: set[str]) -> None:
        self.path, self.limits, self.carved = path, limits, carved_jpegs
        try:
            self.size = max(path.stat().st_size, 1)
        except OSError:
            self.size = 1  # reported when it is read
        self.inflated = 0
        # Seconds spent here (not in the caller's analysis of the members handed out)
        self.spent = 0.0
        self.since = time.monotonic()

    def _over_time(self) -> bool:
        return self.spent + time.monotonic() - self.since > self.limits.max_document_seconds

    def members(self) -> Iterator[Member]:
        """The members, each made with pypdf kept quiet (not while the caller analyses one)."""
        try:
            self.inline, self.skipped = _inline_hints(self.path, self.limits.max_document_seconds / 4)
            self.objects = bool(_candidates(self.path, None))
            if not self.objects and self.inline == []:
                return  # no image dictionary and no BI anywhere: pypdf is not needed (text-only documents)
            f = open(self.path, "rb")  # noqa: SIM115 - read as needed: a document of scans is not held in memory
        except OSError as exc:
            raise ArchiveError(f"cannot read: {exc.strerror or exc}", code="bad-input") from None
        with f:
            yield from self._members(f)

    def _members(self, f: Any) -> Iterator[Member]:
        from pypdf import PdfReader

        with quiet_pypdf():
            try:
                reader = PdfReader(f, strict=False)
                if reader.is_encrypted and not reader.decrypt(""):
                    raise ArchiveError("encrypted PDF that needs a password: its images were not read",
                                       code="encrypted")
                self.attached: dict[int, tuple[int, str]] = {}
                self.masks: set[int] = set()
                self.broken: list[str] = []
                shown: dict[int, tuple[int, str]] = {}
                numbers: list[tuple[int, int]] = []
                if self.objects:  # else only inline images may be there: no page walk for image XObjects
                    shown = self._shown(reader)
                    numbers = self._image_numbers(reader)
                    self._named_files(reader)
            except ArchiveError:
                raise
            except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on malformed files
                raise ArchiveError(f"unreadable PDF ({type(exc).__name__}: {str(exc)[:200]}); "
                                   "its images were not read") from None
        images = [n for n in numbers if n[0] not in self.masks]
        for i, (num, gen) in enumerate(images):
            if i >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images; the rest not read",
                                   code="too-large")
            if self._over_time():
                raise ArchiveError(f"images still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not read", code="too-large")
            where = shown.get(num)
            base = f"page-{where[0]}/{where[1]}-obj{num}" if where else f"obj-{num}"
            with quiet_pypdf():
                member = self._member(reader, num, gen, base)
            if member is not None:
                yield from self._handed(member)
        self.count = min(len(images), self.limits.max_document_images)
        yield from self._inline_members(reader, {num for num, _ in numbers})
        for i, (num, (gen, filename)) in enumerate(sorted(self.attached.items()), self.count):
            if i >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images and attached files; "
                                   "the rest not read", code="too-large")
            if self._over_time():
                raise ArchiveError(f"attached files still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not read", code="too-large")
            with quiet_pypdf():
                member = self._attachment(reader, num, gen, filename)
            yield from self._handed(member)
        if self.broken:
            raise ArchiveError(f"{len(self.broken)} objects unreadable (first: {self.broken[0]}); any image among "
                               "them was not read", code="decode-error")

    def _inline_members(self, reader: Any, images: set[int]) -> Iterator[Member]:
        """The inline images of every content stream the byte search pointed at (every
        stream when it could not tell): a page's contents (its streams read as one, as a
        viewer reads them) page by page, ``page-3/inline-0.png``; then any other stream
        that holds the operator: a form XObject a page draws, ``page-3/Fm0-obj7/inline-0.png``,
        or a stream no page draws as a form (a pattern, a glyph, an appearance),
        ``obj-7/inline-0.png``."""
        import bisect

        from pypdf.generic import IndirectObject, StreamObject

        if self.inline == [] and not self.skipped:
            return
        offsets = {(num, gen): off for gen, table in reader.xref.items() for num, off in table.items()}
        order = sorted(offsets.items(), key=lambda kv: kv[1])
        starts = [off for _, off in order]

        def at(places: list[int]) -> set[tuple[int, int]]:
            return {order[i][0] for p in places if (i := bisect.bisect_right(starts, p) - 1) >= 0}

        # a stream that looked like an image or attached file and is neither is read too
        wanted = set(offsets) if self.inline is None else at(self.inline) | {
            key for key in at(self.skipped) if key[0] not in images and key[0] not in self.attached}
        if not wanted:
            return
        numbers = {num for num, _ in wanted}
        done: set[int] = set()
        try:
            with quiet_pypdf():
                pages = list(reader.pages)
        except Exception:  # noqa: BLE001 - a broken page tree: the streams are still read one by one
            pages = []
        for p, page in enumerate(pages, 1):
            self._in_time("inline images")
            try:
                with quiet_pypdf():
                    contents = page.raw_get("/Contents") if "/Contents" in page else None
                    refs = _resolved(contents) if isinstance(contents, IndirectObject) else contents
                    refs = [contents] if isinstance(refs, StreamObject) else list(refs or [])
                    nums = {r.idnum for r in refs if isinstance(r, IndirectObject)}
                    if not nums & (numbers - done) and not nums & images - done:  # an image as content: read
                        continue
                    done |= nums
                    with _config(_INLINE_CONTENT):
                        data = b"\n".join(_resolved(r).get_data() for r in refs
                                          if isinstance(_resolved(r), StreamObject))
                    if len(data) > _INLINE_CONTENT:
                        raise _TooLong(f"{len(data)} bytes")
            except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a broken page
                long = type(exc).__name__ in ("LimitReachedError", "_TooLong")
                yield from self._handed(Member(
                    name=f"page-{p}/inline-0.png", problem=(
                        f"page content over the {_INLINE_CONTENT} bytes assay parses for inline images "
                        if long else "page content not read ") + f"({type(exc).__name__}: "
                    f"{str(exc)[:200]}); any inline image on it was not read",
                    problem_code="too-large" if long else "decode-error", independent=True))
                continue
            if _bi_at(data, 1):
                with quiet_pypdf():
                    try:
                        resources = _resolved(page.get("/Resources"))
                    except Exception:  # noqa: BLE001 - broken resources: a named colour space is then unknown
                        resources = None
                yield from self._inline_in(data, f"page-{p}", resources, reader, True)
        rest = sorted(key for key in wanted if key[0] not in done and key[0] not in images)
        forms: dict[int, tuple[int, str, Any]] | None = None  # looked for once a stream holds BI
        for num, gen in rest:
            self._in_time("inline images")
            try:
                with quiet_pypdf():
                    obj = IndirectObject(num, gen, reader).get_object()
                    # Any other stream holding BI is parsed (a font's chance letters fail at
                    # once): a form, pattern or glyph may be marked as anything else
                    if not isinstance(obj, StreamObject) or _subtype(obj) == "/Image":
                        continue
                    with _config(_INLINE_CONTENT):
                        data = obj.get_data()
            except Exception:  # noqa: BLE001, S112 - a broken stream that is no page's content: no picture to report
                continue
            if len(data) > _INLINE_CONTENT:
                continue
            if _bi_at(data, 1):
                with quiet_pypdf():
                    try:
                        content = _subtype(obj) == "/Form" or "/PatternType" in obj
                        resources = _resolved(obj.get("/Resources"))
                    except Exception:  # noqa: BLE001 - as above
                        content, resources = False, None
                if forms is None:
                    forms = self._forms(pages)
                where = forms.get(num)
                if where is not None and not isinstance(resources, dict):
                    resources = where[2]  # a form without resources of its own uses its page's (PDF 1.1)
                base = f"page-{where[0]}/{where[1]}-obj{num}" if where else f"obj-{num}"
                yield from self._inline_in(data, base, resources, reader, content)

    def _forms(self, pages: list[Any]) -> dict[int, tuple[int, str, Any]]:
        """Form XObject number -> (page, resource name, page resources) of the first page that
        draws it (directly or through other forms): where its inline images are shown."""
        from pypdf.generic import IndirectObject

        found: dict[int, tuple[int, str, Any]] = {}
        steps = [0]

        def visit(resources: Any, page: int, top: Any, depth: int) -> None:
            xobjects = _resolved(resources.get("/XObject")) if isinstance(resources, dict) else None
            for key, ref in (xobjects.items() if isinstance(xobjects, dict) else ()):
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS or not isinstance(ref, IndirectObject) or ref.idnum in found:
                    continue
                obj = ref.get_object()
                if isinstance(obj, dict) and _subtype(obj) == "/Form":
                    found[ref.idnum] = (page, _SAFE_NAME.sub("_", str(key).lstrip("/"))[:40] or "form", top)
                    if depth < _FORM_DEPTH:
                        visit(_resolved(obj.get("/Resources")), page, top, depth + 1)

        with quiet_pypdf():
            for i, page in enumerate(pages, 1):
                if steps[0] > _RESOURCE_STEPS or self._over_time():
                    break
                try:
                    top = _resolved(page.get("/Resources"))
                    visit(top, i, top, 0)
                except Exception:  # noqa: BLE001, S112 - one broken page: its forms are still read, by number
                    continue
        return found

    def _in_time(self, what: str) -> None:
        if self._over_time():
            raise ArchiveError(f"{what} still unread after {self.limits.max_document_seconds} s; "
                               "the rest not read", code="too-large")

    def _inline_in(self, data: bytes, base: str, resources: Any, reader: Any, content: bool) -> Iterator[Member]:
        """The inline images of one content stream's operators (pypdf's parser, its work
        bounded). ``content``: the stream is known to be content, so that it cannot be read
        to its end is an error on a member; else (a stream of no known kind that happens to
        hold the letters BI) it is not reported."""
        from pypdf.generic import ContentStream

        cs = ContentStream(None, reader)
        cs.set_data(data)
        error = None
        # No buffer bound while parsing: pypdf would refuse a stream whose unfiltered inline
        # image declares more than it; the declared size is judged here, with the limits
        with quiet_pypdf(), _config(self.limits.max_image_bytes, 1 << 60):
            try:
                operations = cs.operations
            except Exception as exc:  # noqa: BLE001 - the operators parsed before the error are kept
                operations, error = cs._operations, exc  # noqa: SLF001
        k = 0
        good: set[bytes] = set()  # the Flate data of the pictures read
        rescue = False
        for operands, operator in operations:
            if operator != b"INLINE IMAGE":
                continue
            member = self._inline_member(operands["settings"], operands["data"], resources, f"{base}/inline-{k}")
            k += 1
            if _first_filter(operands["settings"]) in ("/FlateDecode", "/RunLengthDecode", ""):
                if member is None or member.problem is None:
                    end = self._known_end(operands["settings"], operands["data"], resources)
                    good.add(hashlib.sha256(operands["data"][:end]).digest())
                else:
                    rescue = True  # cut short, maybe: read again to where the data says it ends
            if member is not None:
                yield from self._handed(member)
        if rescue or error is not None:
            yield from self._rescued(data, base, resources, reader, good)
        if error is not None and content:
            yield from self._handed(Member(
                name=f"{base}/inline-{k}.png", problem=f"content stream not read to its end after {k} inline images "
                f"({type(error).__name__}: {str(error)[:200]}); a picture from there on was not read",
                problem_code="decode-error", independent=True))

    def _inline_member(self, settings: Any, data: bytes, resources: Any, name: str) -> Member | None:
        """One inline image (counted against the document's images and time) as the member
        ``name``.png, or a member with the reason it could not be read."""
        if self.count >= self.limits.max_document_images:
            raise ArchiveError(f"more than {self.limits.max_document_images} images; the rest not read",
                               code="too-large")
        self._in_time("inline images")
        self.count += 1
        with quiet_pypdf():
            try:
                image = _inline_image(settings, data, resources)
            except Exception as exc:  # noqa: BLE001 - settings pypdf parsed but assay cannot use
                return Member(name=f"{name}.png", problem=f"inline image not read ({type(exc).__name__}: "
                              f"{str(exc)[:200]})", problem_code="decode-error", independent=True)
            return self._image_member(image, name)

    def _known_end(self, settings: Any, data: bytes, resources: Any) -> int | None:
        """Where an inline image's data ends, known without looking for EI: the end of its
        zlib stream (Flate first), its end-of-data run (RunLength first), or the bytes its
        declared size needs (no filter); None for other filters (pypdf finds the ends of
        ASCIIHex, ASCII85 and DCT data by their own markers) or when unknown."""
        first = _first_filter(settings)
        if first == "/FlateDecode":
            return _flate_end(data, self.limits.max_image_bytes)
        if first == "/RunLengthDecode":
            return _rl_end(data)
        if first:
            return None
        try:
            image = _inline_image(settings, b"", resources)
            width, height = _int(image, "/Width"), _int(image, "/Height")
            mask = bool(image.get("/ImageMask"))
            colors = 1 if mask else _components(image.get("/ColorSpace"))
            bpc = 1 if mask else _int(image, "/BitsPerComponent", 8)
        except Exception:  # noqa: BLE001 - settings assay cannot use: no end known
            return None
        if not width or not height or width < 0 or height < 0 or not colors or bpc not in (1, 2, 4, 8, 16):
            return None
        n = height * math.ceil(width * colors * bpc / 8)  # type: ignore[operator]
        return n if n <= min(len(data), self.limits.max_image_bytes) else None

    def _rescued(self, content: bytes, base: str, resources: Any, reader: Any, good: set[bytes]) -> Iterator[Member]:
        """Inline images found where pypdf's search for EI stopped early or failed: data
        may hold the bytes ``EI`` followed by what looks like operators (pypdf then cuts
        the image there and parses the rest as operators); a viewer decodes Flate data to
        the end of its zlib stream and takes unfiltered data by its declared size, as done
        here. Named after where the BI is in the content, ``inline@OFFSET``; a picture
        pypdf read right is not handed out again."""
        from pypdf.generic import ContentStream

        for at in _bi_at(content):
            found = _ID.search(content, at + 2)
            if found is None:
                break
            try:  # the settings, as pypdf reads them, with a stand-in for the data
                head = ContentStream(None, reader)
                head.set_data(content[at:found.start()] + b"ID \x80 EI")  # 128: a RunLength end too
                with quiet_pypdf(), _config(self.limits.max_image_bytes):
                    (operands, operator), = head.operations
                settings = operands["settings"]
            except Exception:  # noqa: BLE001, S112 - no inline image there as pypdf reads one
                continue
            if operator != b"INLINE IMAGE":
                continue
            start = found.end()
            end = self._known_end(settings, content[start:], resources)
            if end is None or hashlib.sha256(content[start:start + end]).digest() in good:
                continue
            good.add(hashlib.sha256(content[start:start + end]).digest())
            member = self._inline_member(settings, content[start:start + end], resources, f"{base}/inline@{at}")
            if member is not None:
                yield from self._handed(member)

    def _handed(self, member: Member) -> Iterator[Member]:
        """``member`` handed out, the time until the next is asked for not counted."""
        self.spent += time.monotonic() - self.since
        yield member
        self.since = time.monotonic()

    def _image_numbers(self, reader: Any) -> list[tuple[int, int]]:
        """(number, generation) of every image XObject in the file, and the soft masks
        and masks they name (transparency, not pictures of their own) in ``self.masks``."""
        from pypdf.generic import IndirectObject, StreamObject

        found: list[tuple[int, int]] = []
        # Streams are never inside object streams (PDF 32000 7.5.7): the objects stored
        # on their own are where images are. Numbers in file order, newest version.
        entries = sorted((num, gen) for gen, table in reader.xref.items() for num in table)
        offsets = {(num, gen): off for gen, table in reader.xref.items() for num, off in table.items()}
        maybe = _candidates(self.path, offsets)
        for num, gen in entries:
            if (num, gen) not in maybe:
                continue
            if self._over_time():
                raise ArchiveError(f"objects still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not looked at", code="too-large")
            try:
                obj = IndirectObject(num, gen, reader).get_object()
            except Exception as exc:  # noqa: BLE001 - one broken object: the others are still read
                self.broken.append(f"object {num}: {type(exc).__name__}: {str(exc)[:100]}")
                continue
            if isinstance(obj, StreamObject) and _name(_resolved(obj.get("/Type"))) == "/EmbeddedFile":
                self.attached.setdefault(num, (gen, ""))
            if not isinstance(obj, StreamObject) or _subtype(obj) != "/Image":
                continue
            found.append((num, gen))
            for key in ("/SMask", "/Mask"):
                ref = obj.get(key)
                if isinstance(ref, IndirectObject):
                    self.masks.add(ref.idnum)
        return found

    def _named_files(self, reader: Any) -> None:
        """Files attached by name (the catalog's /EmbeddedFiles name tree) or by a file
        attachment annotation, into ``self.attached``: number -> (generation, file name)."""
        from pypdf.generic import IndirectObject

        steps = [0]

        def filespec(spec: Any) -> None:
            spec = _resolved(spec)
            ef = _resolved(spec.get("/EF")) if isinstance(spec, dict) else None
            if not isinstance(ef, dict):
                return
            name = _resolved(spec.get("/UF")) or _resolved(spec.get("/F"))
            for key in ("/F", "/UF"):
                ref = ef.get(key)
                if isinstance(ref, IndirectObject):
                    old = self.attached.get(ref.idnum, (ref.generation, ""))
                    self.attached[ref.idnum] = (ref.generation, old[1] or str(name or ""))

        def tree(node: Any, depth: int) -> None:
            node = _resolved(node)
            if not isinstance(node, dict) or depth > 32:
                return
            names = _resolved(node.get("/Names"))
            for i in range(1, len(names) if isinstance(names, list) else 0, 2):
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS:
                    return
                filespec(names[i])
            for kid in _resolved(node.get("/Kids")) or []:
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS:
                    return
                tree(kid, depth + 1)

        try:
            names = _resolved(_resolved(reader.trailer["/Root"]).get("/Names"))
            if isinstance(names, dict):
                tree(names.get("/EmbeddedFiles"), 0)
        except Exception as exc:  # noqa: BLE001 - a broken name tree: typed attachments are still found
            self.broken.append(f"the names of attached files: {type(exc).__name__}: {str(exc)[:100]}")
        try:
            for page in reader.pages:
                for annot in _resolved(page.get("/Annots")) or []:
                    steps[0] += 1
                    if steps[0] > _RESOURCE_STEPS:
                        return
                    annot = _resolved(annot)
                    if isinstance(annot, dict) and _subtype(annot) == "/FileAttachment":
                        filespec(annot.get("/FS"))
        except Exception as exc:  # noqa: BLE001 - as above
            self.broken.append(f"file attachment annotations: {type(exc).__name__}: {str(exc)[:100]}")

    def _attachment(self, reader: Any, num: int, gen: int, filename: str) -> Member:
        """An attached file, its filters undone: a member scanned like any file."""
        from pypdf.generic import IndirectObject, StreamObject

        safe = _SAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])[-80:].lstrip(".") or "file"
        name = f"attachment-obj{num}/{safe}"
        try:
            stream = IndirectObject(num, gen, reader).get_object()
            if not isinstance(stream, StreamObject):
                return Member(name=name, problem="attached file is no stream", problem_code="decode-error",
                              independent=True)
            limit = self.limits.max_image_bytes
            with _config(limit):
                data = stream.get_data()
            self._budget(len(data))
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf and zlib raise many kinds on a broken stream
            return Member(name=name, problem=f"attached file not decoded ({type(exc).__name__}: {str(exc)[:200]})",
                          problem_code="decode-error", independent=True)
        return Member(name=name, size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)

    def _shown(self, reader: Any) -> dict[int, tuple[int, str]]:
        """Object number -> (page, resource name) of the first page that shows the image
        (directly or through form XObjects)."""
        from pypdf.generic import IndirectObject

        shown: dict[int, tuple[int, str]] = {}
        steps = [0]

        def visit(resources: Any, page: int, depth: int, seen: set[int]) -> None:
            xobjects = resources.get_object().get("/XObject") if resources is not None else None
            xobjects = xobjects.get_object() if xobjects is not None else None
            if not isinstance(xobjects, dict):
                return
            for key, ref in xobjects.items():
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS or not isinstance(ref, IndirectObject) or ref.idnum in seen:
                    continue
                obj = ref.get_object()
                kind = _subtype(obj) if isinstance(obj, dict) else None
                if kind == "/Image":
                    name = _SAFE_NAME.sub("_", str(key).lstrip("/"))[:40] or "image"
                    shown.setdefault(ref.idnum, (page, name))
                elif kind == "/Form" and depth < _FORM_DEPTH:
                    visit(obj.get("/Resources"), page, depth + 1, seen | {ref.idnum})

        try:
            for i, page in enumerate(reader.pages, 1):
                if steps[0] > _RESOURCE_STEPS or self._over_time():
                    break
                try:
                    visit(page.get("/Resources"), i, 0, set())
                except Exception:  # noqa: BLE001, S112 - one broken page: its images are still found, unnamed
                    continue
        except Exception:  # noqa: BLE001 - a broken page tree: images are found by object number
            pass
        return shown

    def _member(self, reader: Any, num: int, gen: int, base: str) -> Member | None:
        from pypdf.generic import IndirectObject

        def problem(code: str, why: str, ext: str = "png") -> Member:
            return Member(name=f"{base}.{ext}", problem=why, problem_code=code, independent=True)

        try:
            image = IndirectObject(num, gen, reader).get_object()
        except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a broken object
            return problem("decode-error", f"image not decoded ({type(exc).__name__}: {str(exc)[:200]})")
        return self._image_member(image, base)

    def _image_member(self, image: Any, base: str) -> Member | None:
        """The member for one image stream (an XObject, or an inline image made into one)."""

        def problem(code: str, why: str, ext: str = "png") -> Member:
            return Member(name=f"{base}.{ext}", problem=why, problem_code=code, independent=True)

        try:
            filters = _filters(image)
            width, height = _int(image, "/Width"), _int(image, "/Height")
            if not width or not height or width < 0 or height < 0:
                return problem("decode-error", f"image declares no usable size ({width}x{height})")
            if width * height > self.limits.max_pixels:
                return problem("too-large", f"image declares {width}x{height} pixels, over the limit of "
                                            f"{self.limits.max_pixels}; not decoded")
            last = filters[-1] if filters else ""
            if last in ("/DCTDecode", "/DCT", "/JPXDecode"):
                return self._coded(image, filters, base, width, height)
            if last in ("/JBIG2Decode",):
                return problem("unsupported-format", "JBIG2 image: not decoded (that needs an external program)")
            return self._pixels(image, filters, base, width, height)
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf, Pillow and zlib raise many kinds on a broken image
            return problem("decode-error", f"image not decoded ({type(exc).__name__}: {str(exc)[:200]})")

    def _budget(self, n: int) -> None:
        """Count ``n`` more inflated bytes against the document's ratio rule."""
        self.inflated += n
        lim = self.limits
        if self.inflated > lim.max_ratio_floor and self.inflated > lim.max_compression_ratio * self.size:
            raise ArchiveError(f"images would inflate to over {self.inflated} bytes from a {self.size}-byte PDF "
                               f"(ratio over {lim.max_compression_ratio}:1): a compression bomb; the rest not read",
                               code="archive-bomb")

    def _coded(self, image: Any, filters: list[str], base: str, width: int, height: int) -> Member | None:
        """A JPEG or JPEG 2000 image: its own bytes (inside any other filters)."""
        jpeg = filters[-1] != "/JPXDecode"
        if len(filters) == 1:
            data = image._data  # noqa: SLF001 - the bytes as stored (decrypted)
            if jpeg and self._carved(data):
                return None  # cut out as it is by the carver: carved@OFFSET.jpg
        else:
            limit = min(self.limits.max_image_bytes, max(8 * len(image._data), 1 << 20))  # noqa: SLF001
            with _config(limit):
                data = image.get_data()
        if len(data) > self.limits.max_image_bytes:
            return Member(name=f"{base}.jpg", problem="image over the image size limit; not read",
                          problem_code="too-large", independent=True)
        ext = "jpg" if jpeg else "jp2"
        return Member(name=f"{base}.{ext}", size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)

    def _carved(self, data: bytes) -> bool:
        """Whether the carver cut these JPEG bytes out already: hashed as far as it cuts
        (to the end marker after the first scan; a stream may run on past it)."""
        from .carve import _jpeg_extent

        n = _jpeg_extent(io.BytesIO(data), 0, len(data), len(data)) if data.startswith(b"\xff\xd8\xff") else None
        return n is not None and hashlib.sha256(data[:n]).hexdigest() in self.carved

    def _samples(self, image: Any, filters: list[str], width: int, height: int, bpc: int, colors: int | None,
                 expected: int) -> bytes | str:
        """The image's samples, every filter undone (16 bits narrowed to their high byte),
        or why they were not decoded."""
        parms = _parms(image, len(filters) - 1) if filters else {}
        predictor = _int(parms, "/Predictor", 1) or 1
        if filters == ["/FlateDecode"] and predictor >= 10 and colors and not image.get("/ImageMask"):
            samples = _unpredict(image, width, height, bpc, colors)
            if samples is not None:
                return samples  # already 8 bits when 16
        slow = bool(set(filters) & _SLOW) or predictor != 1
        if slow and expected > _SLOW_BYTES:
            return (f"{'/'.join(f.lstrip('/') for f in filters)} image of {width}x{height}: over the "
                    f"{_SLOW_BYTES} bytes assay decodes with these filters; not decoded")
        with _config(expected + 4096, width * height, len(image._data)):  # noqa: SLF001
            samples = image.get_data()
        return samples[0::2] if bpc == 16 else samples

    def _pixels(self, image: Any, filters: list[str], base: str, width: int, height: int) -> Member:
        bpc = 1 if image.get("/ImageMask") else (_int(image, "/BitsPerComponent", 8) or 8)
        colors = 1 if image.get("/ImageMask") else _components(image.get("/ColorSpace"))
        if bpc not in (1, 2, 4, 8, 16):
            raise ValueError(f"{bpc} bits per component")
        expected = height * (math.ceil(width * (colors or 4) * bpc / 8) + 1)
        if expected > self.limits.max_image_bytes:
            return Member(name=f"{base}.png", problem=f"image of {width}x{height} would decode to over "
                          f"{self.limits.max_image_bytes} bytes; not decoded", problem_code="too-large", independent=True)
        self._budget(expected)
        drop = {"/SMask", "/Mask", "/SMaskInData"}  # transparency: the picture is its colour samples
        img = None
        if filters and filters[-1] in ("/CCITTFaxDecode", "/CCF"):  # pypdf wraps fax data in a TIFF for Pillow
            source = _without(image, drop, image._data, decoded=False)  # noqa: SLF001
        else:
            samples = self._samples(image, filters, width, height, bpc, colors, expected)
            if isinstance(samples, str):
                return Member(name=f"{base}.png", problem=samples, problem_code="too-large", independent=True)
            img = _direct(image, samples, width, height)
            # Else handed back to pypdf as Flate data: the path of its image code that
            # applies every colour space (its unfiltered or ASCIIHex indexed images come out black)
            source = _without(image, drop | {"/Filter", "/DecodeParms", "/DP"}, b"", decoded=False)
            if img is None:
                from pypdf.generic import NameObject, NumberObject

                source._data = zlib.compress(samples, 1)  # noqa: SLF001
                source[NameObject("/Filter")] = NameObject("/FlateDecode")
                if bpc == 16:
                    source[NameObject("/BitsPerComponent")] = NumberObject(8)
        if img is None:
            with _config(expected + 4096, width * height):
                try:
                    img = source.decode_as_image({"compress_level": 1})  # what pypdf saves and opens again
                except TypeError:  # pragma: no cover - pypdf < 5: no parameters
                    img = source.decode_as_image()
            if img is None:
                raise ValueError("pypdf found no image in it")
        data, ext = _encoded(img)
        return Member(name=f"{base}.{ext}", size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)


def pdf_image_members(path: Path, limits: Limits, carved_jpegs: set[str]) -> Iterator[Member]:
    """Members for the images of the PDF at ``path`` that the carver did not cut out as
    they are (``carved_jpegs``: SHA-256 of the JPEGs it did). Raises ArchiveError when the
    document cannot be read (any further); members already handed out keep their records."""
    yield from _Walk(path, limits, carved_jpegs).members()
