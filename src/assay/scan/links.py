"""Case links: which images of a scan were made with which model files of the same scan.

An image's generator metadata names model hashes (``facts["model_signals"]`` of its
provenance evidence: A1111 ``Model hash``/``Lora hashes``/``Hashes``, InvokeAI, Fooocus,
SwarmUI); every model file of the scan carries its community hashes as signals. A link
is a named (type, value) equal to one a model file of this scan has, recorded in both
records as ``case_links``. Nothing else links: no name matching, no prefix guessing, and
a degenerate value (an AutoV1 of a file under 1 MiB) is never indexed nor looked up.

Records stream as they finish; only the records that can take part in a link (model
files with hashes, images that name hashes) are held until the scan ends, then written
with their links. Those records are small (hashes and evidence, never content).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report.schema import CaseLink, FileRecord
from ..report.text import plural
from ..signals import get as signal_type
from ..signals import named_model_hashes

if TYPE_CHECKING:  # numpy and the fingerprint code load only when model files are linked
    from .model_links import ModelLinks

LINKS_SCHEMA = "assay.case-links/1"
# The model-file hashes a link can use: every community hash the model analyzer computes.
LINK_TYPES = frozenset({"sha256", "autov1", "autov2", "autov3", "blake3", "crc32", "md5"})
MAX_LISTED = 1000  # paths per list in the JSON line; the records carry every link


@dataclass(frozen=True)
class Named:
    """A hash an image's metadata names, with what the metadata called it."""

    type: str
    value: str
    role: str | None
    name: str | None


def named_hashes(rec: FileRecord) -> list[Named]:
    """The model hashes an image record's generator metadata names (valid, non-degenerate,
    first occurrence of each (type, value))."""
    if rec.provenance is None:
        return []
    out: list[Named] = []
    for typ, value, s in named_model_hashes(rec.provenance.evidence):
        if typ not in LINK_TYPES or _degenerate(typ, value):
            continue
        role, name = s.get("role"), s.get("name")
        out.append(Named(typ, value, role if isinstance(role, str) else None,
                         name[:300] if isinstance(name, str) else None))
    return out


def model_hashes(rec: FileRecord) -> list[tuple[str, str]]:
    """The (type, value) hashes a model file record carries (computed from its bytes)."""
    if rec.kind != "model" or rec.model is None:
        return []
    return [(s.type, s.value) for s in rec.signals
            if s.mode is None and s.type in LINK_TYPES and not _degenerate(s.type, s.value)]


def _degenerate(typ: str, value: str) -> bool:
    st = signal_type(typ)
    return bool(st.degenerate and st.degenerate_reason(value))


def _is_short(typ: str) -> bool:
    return signal_type(typ).strength == "short-hash"


@dataclass
class NotPresent:
    """A named hash no model file of the scan has."""

    hash_type: str
    value: str
    role: str | None
    names: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    image_count: int = 0
    banks: set[str] = field(default_factory=set)  # banks the image matched by this value

    def to_json_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"hash_type": self.hash_type, "value": self.value,
                             "strength": "short-hash" if _is_short(self.hash_type) else "exact"}
        if self.role:
            d["role"] = self.role
        d["named_as"] = self.names
        d["image_count"] = self.image_count
        d["images"] = self.images[:MAX_LISTED]
        if self.banks:
            d["bank_matches"] = sorted(self.banks)
        return d


@dataclass
class CaseLinks:
    """The links of one scan, for the summaries."""

    links: int = 0  # image-to-model-file links (each recorded in both records)
    short_links: int = 0
    ambiguous_links: int = 0  # short-hash links whose value more than one model file has
    # model path -> linked image paths / LoRA files and LoRA names applied with it
    by_model: dict[str, list[str]] = field(default_factory=dict)
    model_roles: dict[str, set[str]] = field(default_factory=dict)
    loras_with: dict[str, dict[str, None]] = field(default_factory=dict)
    # image path -> its links
    by_image: dict[str, list[CaseLink]] = field(default_factory=dict)
    not_present: list[NotPresent] = field(default_factory=list)
    images_naming: int = 0  # images whose metadata names at least one hash
    model_files: int = 0  # model files with hashes in the scan
    # model files related by their weights (scan --model-links; None: not asked)
    model_links: ModelLinks | None = None

    @property
    def relevant(self) -> bool:
        """Whether the scan had anything to link (model files or images naming hashes)."""
        return bool(self.images_naming or self.model_files)

    def to_json_dict(self) -> dict[str, Any]:
        models = []
        for path, images in self.by_model.items():
            entry: dict[str, Any] = {"path": path, "roles": sorted(self.model_roles.get(path, ())),
                                     "image_count": len(images), "images": images[:MAX_LISTED]}
            loras = list(self.loras_with.get(path, {}))
            if loras:
                entry["loras_applied"] = loras[:MAX_LISTED]
            models.append(entry)
        return {
            "schema": LINKS_SCHEMA,
            "links": self.links,
            "short_hash_links": self.short_links,
            "ambiguous_links": self.ambiguous_links,
            "images_naming_hashes": self.images_naming,
            "images_linked": len(self.by_image),
            "model_files": self.model_files,
            "model_files_linked": len(self.by_model),
            "models": models,
            "not_present": [n.to_json_dict() for n in self.not_present],
            **({"model_links": [lk.to_json_dict() for lk in self.model_links.links[:MAX_LISTED]],
                "model_files_fingerprinted": self.model_links.fingerprinted,
                "model_files_not_compared": [{"path": p, "reason": r} for p, r in self.model_links.skipped[:MAX_LISTED]]}
               if self.model_links is not None else {}),
        }


class CaseLinker:
    """Holds back the records that can link; ``resolve`` links them and gives them back."""

    def __init__(self, *, model_links: bool = False) -> None:
        self._images: list[tuple[FileRecord, list[Named]]] = []
        self._models: list[tuple[FileRecord, list[tuple[str, str]]]] = []
        self._model_links = model_links
        # --model-links elsewhere than here (the Dask engine's workers): see link_models
        self.fingerprint: Callable[[Path, str], Any] | None = None
        self.exists: Callable[[str], bool] | None = None
        self.answers: Callable[[list[Any]], list[Any]] | None = None

    def held_models(self) -> list[FileRecord]:
        """The model records held so far (those --model-links compares)."""
        return [rec for rec, _ in self._models]

    def hold(self, rec: FileRecord) -> bool:
        """Keep ``rec`` until the end of the scan if it can take part in a link."""
        if rec.kind == "model":
            hashes = model_hashes(rec)
            if hashes:
                self._models.append((rec, hashes))
                return True
            return False
        if rec.kind == "image":
            named = named_hashes(rec)
            if named:
                self._images.append((rec, named))
                return True
        return False

    def resolve(self) -> CaseLinks:
        """Record every link in both records; the held records are then in ``records()``."""
        index: dict[tuple[str, str], list[FileRecord]] = defaultdict(list)
        for rec, hashes in self._models:
            for key in hashes:
                index[key].append(rec)
        result = CaseLinks(images_naming=len(self._images), model_files=len(self._models))
        missing: dict[tuple[str, str], NotPresent] = {}
        for img, named in self._images:
            best: dict[tuple[str, str | None], CaseLink] = {}
            for n in named:
                found = index.get((n.type, n.value))
                if not found:
                    _note_missing(missing, img, n)
                    continue
                short = _is_short(n.type)
                for model in found:
                    link = CaseLink(path=model.path, hash_type=n.type, value=n.value, named_as=n.name,
                                    role=n.role, strength="short-hash" if short else "exact",
                                    candidates=len(found) if short else None)
                    key = (model.path, n.role)
                    if key not in best or _rank(link) < _rank(best[key]):
                        best[key] = link
            if not best:
                continue
            img.case_links = list(best.values())
            result.by_image[img.path] = img.case_links
            loras = [lk for lk in img.case_links if lk.role == "lora"]
            lora_names_absent = [n.name or f"{n.type} {n.value}" for n in named
                                 if n.role == "lora" and (n.type, n.value) not in index]
            for lk in img.case_links:
                result.links += 1
                if lk.strength == "short-hash":
                    result.short_links += 1
                    if (lk.candidates or 0) > 1:
                        result.ambiguous_links += 1
                model = next(m for m in index[(lk.hash_type, lk.value)] if m.path == lk.path)
                back = lk.model_copy(update={"path": img.path})
                model.case_links = [*(model.case_links or []), back]
                result.by_model.setdefault(lk.path, []).append(img.path)
                result.model_roles.setdefault(lk.path, set()).add(lk.role or "model")
                if lk.role != "lora":
                    applied = result.loras_with.setdefault(lk.path, {})
                    for lo in loras:
                        applied[lo.path] = None
                    for name in lora_names_absent:
                        applied[f"{name} (model not present)"] = None
        result.not_present = sorted(missing.values(), key=lambda m: (-m.image_count, m.hash_type, m.value))
        if self._model_links:
            from .model_links import link_models

            result.model_links = link_models([rec for rec, _ in self._models], self.fingerprint, self.exists,
                                             self.answers)
        return result

    def records(self) -> Iterator[FileRecord]:
        """The held records (models first), each once; the linker lets go of them."""
        models, images = self._models, self._images
        self._models, self._images = [], []
        for rec, _ in models:
            yield rec
        for rec, _ in images:
            yield rec


def _rank(link: CaseLink) -> tuple[int, int]:
    return (0 if link.strength == "exact" else 1, link.candidates or 0)


def _note_missing(missing: dict[tuple[str, str], NotPresent], img: FileRecord, n: Named) -> None:
    entry = missing.get((n.type, n.value))
    if entry is None:
        entry = missing[(n.type, n.value)] = NotPresent(n.type, n.value, n.role)
    if n.name and n.name not in entry.names and len(entry.names) < 20:
        entry.names.append(n.name)
    entry.image_count += 1
    if len(entry.images) < MAX_LISTED:
        entry.images.append(img.path)
    entry.banks.update(m.bank for m in img.matches if m.signal_type == n.type and m.value == n.value)


_LABELS = {"autov1": "AutoV1", "autov2": "AutoV2", "autov3": "AutoV3", "sha256": "SHA-256",
           "blake3": "BLAKE3", "crc32": "CRC32", "md5": "MD5"}


def _hash_text(typ: str, value: str) -> str:
    text = f"{_LABELS.get(typ, typ)} {value}"
    return text + " (short hash)" if _is_short(typ) else text


def _bounded(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit:,} more" if len(items) > limit else "")


def readable_lines(cl: CaseLinks, limit: int = 20) -> list[str]:
    """The case links as plain lines for the scan summary (at most ``limit`` per list)."""
    out: list[str] = []
    if cl.links:
        head = (f"case links: {cl.links:,} between {len(cl.by_image):,} of "
                f"{plural(cl.images_naming, 'image')} naming model hashes and {len(cl.by_model):,} of "
                f"{plural(cl.model_files, 'model file')}")
        if cl.short_links:
            head += (f"; {cl.short_links:,} by a short hash (a 32-48 bit prefix or checksum: it can "
                     f"collide by chance)")
        if cl.ambiguous_links:
            head += f", {cl.ambiguous_links:,} of them shared by several model files here"
        out.append(head)
    elif cl.images_naming:
        out.append(f"case links: none ({plural(cl.images_naming, 'image')} "
                   f"{'names' if cl.images_naming == 1 else 'name'} model hashes; "
                   f"no model file of this scan has any of them)")
    models = list(cl.by_model.items())
    for path, images in models[:limit]:
        roles = "/".join(sorted(cl.model_roles.get(path, ())))
        out.append(f"  model file {path} ({roles}): made {len(images):,} image"
                   f"{'s' if len(images) != 1 else ''}: {_bounded(images, limit)}")
        loras = list(cl.loras_with.get(path, {}))
        if loras:
            out.append(f"    LoRAs applied with it: {_bounded(loras, limit)}")
    if len(models) > limit:
        out.append(f"  ... and {len(models) - limit:,} more model files in the case-links record")
    images = list(cl.by_image.items())
    for path, links in images[:limit]:
        parts = []
        for lk in links[:limit]:
            how = f"{lk.role or 'model'}"
            if lk.named_as:
                how += f" {lk.named_as!r}"
            how += f", {_hash_text(lk.hash_type, lk.value)}"
            if (lk.candidates or 0) > 1:
                how += f", {lk.candidates} model files here share this value"
            parts.append(f"{lk.path} ({how})")
        more = f" ... and {len(links) - limit} more" if len(links) > limit else ""
        out.append(f"  image {path}: made with {'; '.join(parts)}{more}")
    if len(images) > limit:
        out.append(f"  ... and {len(images) - limit:,} more linked images in the report")
    if cl.not_present:
        n_absent = len(cl.not_present)
        out.append(f"models not present: {plural(n_absent, 'hash', 'hashes')} named by images "
                   f"{'matches' if n_absent == 1 else 'match'} no model file of this scan "
                   f"(look for {'this file' if n_absent == 1 else 'these files'})")
        for n in cl.not_present[:limit]:
            names = ", ".join(repr(x) for x in n.names[:5]) or "no name given"
            line = (f"  model not present: {n.role or 'model'} {names}, {_hash_text(n.hash_type, n.value)}: "
                    f"named by {n.image_count:,} image{'s' if n.image_count != 1 else ''} "
                    f"({_bounded(n.images, 3)})")
            if n.banks:
                line += f"; matched in bank {', '.join(sorted(n.banks))}"
            out.append(line)
        if len(cl.not_present) > limit:
            out.append(f"  ... and {len(cl.not_present) - limit:,} more in the case-links record")
    if cl.model_links is not None:
        from .model_links import readable_lines as model_lines

        out.extend(model_lines(cl.model_links, limit))
    return out
