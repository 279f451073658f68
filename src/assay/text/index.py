"""A text index: the normalised corpus in shards, each a suffix array over its bytes,
stored as .npy files that queries memory-map.

Layout of an index folder::

    index.json              {"format": "assay.text-index/2", "shards": [...]}
    shards/000001/
        text.npy            uint8: normalised UTF-8 of the shard's works, each followed by 0xFF
        sa.npy              int32: suffix array of text (pydivsufsort)
        chars.npy           int64: characters before each 4 KiB block of text (byte -> char)
        segs.npy            int32 (n, 3): offset map, normalised char -> original code point
        works.json          the shard's works: id, title, sha256, source, format, positions
        blocks.npy          uint32: CRC-32 of each 4 KiB block of text
        shard.json          size and SHA-256 of each file above, as written

A shard holds whole works and stays under 2 GiB of text, so 32-bit offsets address
it; shards never change once written (``add`` writes new ones) and index.json is
replaced atomically, so a reader always sees a complete index.

The offset map of a work is piecewise: a run of characters that map one to one onto
consecutive original code points is one row ``(first char, first code point, -1)``; a
unit whose normalised characters all stand for one original range (a white-space run,
``ß`` -> ``ss``) is one row ``(first char, start, end)``.

A damaged index must never yield a wrong offset or a match that is not in the works, so
opening a shard checks every file's size against shard.json, the SHA-256 of the small
files (works.json, chars.npy, segs.npy, blocks.npy: offsets and block checksums come
from them) and that the arrays and works fit together; text.npy and sa.npy (5 bytes per
corpus byte) are hashed only by ``verify`` (`assay text verify`), since hashing them on
every open would read the whole index that queries only touch. Damage there is caught
where a query meets it: a suffix array entry out of range or whose suffix does not
start with the seed it was found for; the 4 KiB blocks of text.npy a reported passage
spans, and the byte on either side of it (where a match stopped), are compared with
their CRC-32 before the passage is reported, so a damaged byte never moves an offset,
invents a passage or cuts one short in silence. What remains unseen is a passage (or
the last piece of a near-verbatim one) not found at all, because the damaged byte (or
suffix array entry) was on its only seed's search path.
Shards written before shard.json existed get the structural checks alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssayError
from .normalize import VERSION as NORMALIZATION
from .normalize import Normalized, normalize

# The format names the normalisation (normalize.VERSION) the shards' text was made with: a
# query normalised under other rules would miss passages without a word, so an index of
# another format is refused with a request to rebuild it.
FORMAT = f"assay.text-index/{NORMALIZATION}"
SEP = 0xFF
BLOCK_SHIFT = 12
DEFAULT_SHARD_BYTES = 1 << 30
MAX_SHARD_BYTES = (1 << 31) - 2
SHARD_FORMAT = "assay.text-shard/1"
SHARD_FILES = ("text.npy", "sa.npy", "chars.npy", "segs.npy", "works.json")
HASHED_ON_OPEN = ("works.json", "chars.npy", "segs.npy", "blocks.npy")
BLOCK_CRCS = "blocks.npy"  # in shards written since it exists (shard.json says so)
_SHARD_NAME = re.compile(r"[0-9]{1,9}")
_DAMAGED_HINT = "rebuild the index from its sources; `assay text verify --index DIR` checks every file"


class IndexError_(AssayError):  # noqa: N801 - not the builtin
    code = "text-index"


def damaged(path: Path, reason: str) -> IndexError_:
    """The error for a file of an index that is not as it was written."""
    return IndexError_(f"{path}: damaged text index file ({reason})", hint=_DAMAGED_HINT)


@dataclass
class WorkInfo:
    id: str
    title: str
    sha256: str
    source: str
    format: str
    chars: int  # original code points
    norm_chars: int
    shard: str = ""
    byte_start: int = 0
    byte_end: int = 0
    char_start: int = 0  # shard-wide character index of the first normalised character
    seg_lo: int = 0
    seg_hi: int = 0

    @classmethod
    def from_json(cls, obj: Any) -> WorkInfo:
        """One entry of works.json, every field of its type (ValueError if not)."""
        if not isinstance(obj, dict) or set(obj) != set(_WORK_FIELDS):
            raise ValueError("a work entry without the expected fields")
        for name, kind in _WORK_FIELDS.items():
            value = obj[name]
            if kind is int and (type(value) is not int or value < 0):
                raise ValueError(f"work field {name!r} is not a count")
            if kind is str and not isinstance(value, str):
                raise ValueError(f"work field {name!r} is not a string")
        return cls(**obj)

    def public(self) -> dict[str, Any]:
        return {"work": self.id, "title": self.title, "sha256": self.sha256, "source": self.source,
                "format": self.format, "chars": self.chars, "shard": self.shard}


_WORK_FIELDS = {"id": str, "title": str, "sha256": str, "source": str, "format": str, "chars": int,
                "norm_chars": int, "shard": str, "byte_start": int, "byte_end": int, "char_start": int,
                "seg_lo": int, "seg_hi": int}


def segments(norm: Normalized) -> np.ndarray:
    """The piecewise offset map of a normalised text (see the module docstring)."""
    n = len(norm.text)
    if n == 0:
        return np.zeros((0, 3), dtype=np.int64)
    s, e = norm.ostart, norm.oend
    same = np.zeros(n + 1, dtype=bool)
    same[1:n] = s[1:] == s[:-1]
    simple = ((e - s) == 1) & ~same[:n] & ~same[1:]
    starts = ~same[:n]
    cont = np.zeros(n, dtype=bool)
    cont[1:] = simple[1:] & simple[:-1] & (s[1:] == s[:-1] + 1)
    starts &= ~cont
    idx = np.flatnonzero(starts)
    out = np.empty((len(idx), 3), dtype=np.int64)
    out[:, 0] = idx
    out[:, 1] = s[idx]
    out[:, 2] = np.where(simple[idx], -1, e[idx])
    return out


def map_span(segs: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """Original code points of a work's normalised characters [start, end)."""
    nc = segs[:, 0]
    k = int(np.searchsorted(nc, start, side="right")) - 1
    a = int(segs[k, 1] + (start - segs[k, 0])) if segs[k, 2] < 0 else int(segs[k, 1])
    k = int(np.searchsorted(nc, end - 1, side="right")) - 1
    b = int(segs[k, 1] + (end - 1 - segs[k, 0]) + 1) if segs[k, 2] < 0 else int(segs[k, 2])
    return a, b


def mid_unit(segs: np.ndarray, pos: int, length: int) -> bool:
    """Whether normalised position ``pos`` lies inside a unit (after its first character)."""
    if pos <= 0 or pos >= length:
        return False
    k = int(np.searchsorted(segs[:, 0], pos, side="right")) - 1
    return bool(segs[k, 2] >= 0 and segs[k, 0] != pos)


# --------------------------------------------------------------------------- shards
@dataclass
class Shard:
    name: str
    text: np.ndarray
    sa: np.ndarray
    chars: np.ndarray
    segs: np.ndarray
    works: list[WorkInfo]
    folder: Path = Path()
    blocks: np.ndarray | None = None  # CRC-32 of each 4 KiB block of text (None: older shard)
    byte_starts: np.ndarray = field(init=False)
    _good_blocks: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.byte_starts = np.array([w.byte_start for w in self.works], dtype=np.int64)

    @classmethod
    def open(cls, folder: Path) -> Shard:
        """A shard's files, checked (see the module docstring); IndexError_ naming the
        damaged file otherwise."""
        written = _shard_sums(folder)
        names = SHARD_FILES + ((BLOCK_CRCS,) if written is not None and BLOCK_CRCS in written else ())
        for name in names:
            path = folder / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise damaged(path, "missing") from None
            except OSError as exc:
                raise damaged(path, exc.strerror or str(exc)) from None
            if written is not None:
                if size != written[name]["bytes"]:
                    raise damaged(path, f"{size:,} bytes, {written[name]['bytes']:,} when written")
                if name in HASHED_ON_OPEN and _sha256(path) != written[name]["sha256"]:
                    raise damaged(path, "its content differs from the SHA-256 recorded when it was written")
        path = folder / "works.json"
        try:
            entries = json.loads(path.read_text("utf-8"))
            if not isinstance(entries, list):
                raise ValueError("not a list of works")
            works = [WorkInfo.from_json(w) for w in entries]
        except (OSError, ValueError, RecursionError) as exc:
            raise damaged(path, _reason(exc)) from None
        arrays = {}
        for name, dtype, ndim in (("text", np.uint8, 1), ("sa", np.int32, 1), ("chars", np.int64, 1),
                                  ("segs", np.int32, 2)):
            path = folder / f"{name}.npy"
            try:
                a = np.load(path, mmap_mode="r", allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
                raise damaged(path, _npy_reason(exc)) from None
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim or (ndim == 2 and a.shape[1] != 3):
                raise damaged(path, f"an array of {getattr(a, 'dtype', '?')} {getattr(a, 'shape', '?')}, "
                                    f"not the {np.dtype(dtype)} array of a text index")
            arrays[name] = a
        _check_fit(folder, works, **arrays)
        blocks = None
        if BLOCK_CRCS in names:  # hashed above: exactly as written
            blocks = np.load(folder / BLOCK_CRCS, allow_pickle=False)
            if blocks.dtype != np.uint32 or blocks.shape != (len(arrays["chars"]) - 1,):
                raise damaged(folder / BLOCK_CRCS, f"{blocks.shape} checksums for "
                                                   f"{len(arrays['chars']) - 1:,} blocks of text")
        return cls(folder.name, arrays["text"], arrays["sa"], arrays["chars"], arrays["segs"], works, folder, blocks)

    def check_bytes(self, start: int, end: int) -> None:
        """That text bytes [start - 1, end + 1) are as indexed: the CRC-32 of every 4 KiB
        block they touch (once per block and process). The byte on either side is where
        a match stopped: had damage stopped it there, the passage would come out shorter."""
        if self.blocks is None:
            return
        n = len(self.text)
        first, last = max(start - 1, 0) >> BLOCK_SHIFT, (min(end + 1, n) - 1) >> BLOCK_SHIFT
        for blk in range(first, last + 1):
            if blk in self._good_blocks:
                continue
            lo = blk << BLOCK_SHIFT
            if zlib.crc32(self.text[lo:lo + (1 << BLOCK_SHIFT)]) != int(self.blocks[blk]):
                raise self.damaged("text.npy", f"bytes {lo:,}-{min(lo + (1 << BLOCK_SHIFT), n):,} differ "
                                               "from what was indexed (CRC-32 of the block)")
            self._good_blocks.add(blk)

    def char_index(self, byte_pos: int) -> int:
        """Shard-wide character index of a byte position (a character boundary)."""
        blk = byte_pos >> BLOCK_SHIFT
        lo = blk << BLOCK_SHIFT
        block = np.asarray(self.text[lo:lo + (1 << BLOCK_SHIFT)])
        lead = (block & 0xC0) != 0x80
        # text.npy is not hashed on open: a changed byte that made a character of a
        # continuation byte, or the reverse, would shift every offset after it here
        if blk + 1 < len(self.chars) and \
                int(np.count_nonzero(lead)) != int(self.chars[blk + 1]) - int(self.chars[blk]):
            raise self.damaged("text.npy", f"the characters of bytes {lo:,}-{lo + len(block):,} "
                                           "disagree with chars.npy")
        return int(self.chars[blk]) + int(np.count_nonzero(lead[:byte_pos - lo]))

    def decode(self, start: int, end: int) -> str:
        """The shard's normalised text of bytes [start, end)."""
        try:
            return bytes(self.text[start:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.damaged("text.npy", f"bytes {start:,}-{end:,} are not UTF-8") from None

    def damaged(self, name: str, reason: str) -> IndexError_:
        return damaged(self.folder / name, reason)

    def work_at(self, byte_pos: int) -> int:
        return int(np.searchsorted(self.byte_starts, byte_pos, side="right")) - 1


def _block_crcs(text: np.ndarray) -> np.ndarray:
    block = 1 << BLOCK_SHIFT
    return np.array([zlib.crc32(text[lo:lo + block]) for lo in range(0, len(text), block)], dtype=np.uint32)


def _shard_sums(folder: Path) -> dict[str, dict[str, Any]] | None:
    """shard.json: each file's size and SHA-256 as written (None for a shard older than it)."""
    path = folder / "shard.json"
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text("utf-8"))
        files = obj["files"] if isinstance(obj, dict) and obj.get("format") == SHARD_FORMAT else None
        if not isinstance(files, dict) or not all(
                isinstance(files.get(n), dict) and type(files[n].get("bytes")) is int
                and isinstance(files[n].get("sha256"), str) for n in SHARD_FILES + tuple(set(files) & {BLOCK_CRCS})):
            raise ValueError(f"not a {SHARD_FORMAT} record of {', '.join(SHARD_FILES)}")
    except (OSError, ValueError, RecursionError) as exc:
        raise damaged(path, _reason(exc)) from None
    return files


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deep"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start:,}"
    return str(exc)


def _npy_reason(exc: BaseException) -> str:
    text = str(exc)
    if "pickle" in text:  # numpy suggests loading it unsafely: never
        return "its header names Python objects, not the numbers of a text index"
    if "mmap length" in text or isinstance(exc, EOFError):
        return "shorter than its header says"
    if isinstance(exc, OSError):
        return exc.strerror or text
    return "not a valid .npy header" if "header" in text.lower() or not text else f"not a valid .npy file ({text[:200]})"


def _check_fit(folder: Path, works: list[WorkInfo], *, text: np.ndarray, sa: np.ndarray,
               chars: np.ndarray, segs: np.ndarray) -> None:
    """That the arrays and works.json describe one shard as _write_shard lays it out; cost
    independent of the text's size but for segs (a few bytes per paragraph)."""
    n = len(text)

    def bad(name: str, reason: str) -> IndexError_:
        return damaged(folder / name, reason)

    if len(sa) != n:
        raise bad("sa.npy", f"{len(sa):,} suffixes for {n:,} bytes of text")
    if len(chars) != -(-n >> BLOCK_SHIFT) + 1 or (len(chars) and int(chars[0]) != 0):
        raise bad("chars.npy", f"{len(chars):,} block counts for {n:,} bytes of text")
    if not works:
        raise bad("works.json", "no works")
    byte = char = seg = 0
    for w in works:
        if (w.byte_start != byte or w.byte_end <= w.byte_start or w.byte_end >= n or w.char_start != char
                or w.seg_lo != seg or w.seg_hi <= w.seg_lo or w.norm_chars < 1 or w.shard != folder.name):
            raise bad("works.json", f"the positions of work {w.id!r} do not follow the works before it")
        if int(text[w.byte_end]) != SEP:
            raise bad("text.npy", f"no separator at byte {w.byte_end:,}, the end of work {w.id!r}")
        byte, char, seg = w.byte_end + 1, char + w.norm_chars + 1, w.seg_hi
    if byte != n:
        raise bad("text.npy", f"{n:,} bytes, the works end at {byte:,}")
    if int(chars[-1]) != char:
        raise bad("chars.npy", f"{int(chars[-1]):,} characters in all, the works hold {char:,}")
    if seg != len(segs):
        raise bad("segs.npy", f"{len(segs):,} offset map rows, the works use {seg:,}")
    # each work's offset map: starts at its first character, characters increasing and
    # inside the work, code points not negative, no unit ending before it starts
    seg_works = np.repeat(np.arange(len(works)), [w.seg_hi - w.seg_lo for w in works])
    limit = np.array([w.norm_chars for w in works], dtype=np.int64)[seg_works]
    firsts = np.array([w.seg_lo for w in works])
    c, start, end = (np.asarray(segs[:, i], dtype=np.int64) for i in range(3))
    step = np.diff(c)
    same_work = np.diff(seg_works) == 0
    if (c[firsts] != 0).any() or (c >= limit).any() or (step[same_work] <= 0).any() or (start < 0).any() \
            or ((end >= 0) & (end < start)).any() or (end < -1).any():
        raise bad("segs.npy", "an offset map that does not run forward through its work")


def _write_shard(folder: Path, items: list[tuple[WorkInfo, bytes, np.ndarray]]) -> None:
    from pydivsufsort import divsufsort

    total = sum(len(b) + 1 for _, b, _ in items)
    text = np.empty(total, dtype=np.uint8)
    seg_rows = []
    pos = chars = nseg = 0
    for info, data, segs in items:
        info.byte_start, info.byte_end = pos, pos + len(data)
        info.char_start = chars
        info.seg_lo, info.seg_hi = nseg, nseg + len(segs)
        text[pos:pos + len(data)] = np.frombuffer(data, dtype=np.uint8)
        text[pos + len(data)] = SEP
        pos += len(data) + 1
        chars += info.norm_chars + 1
        nseg += len(segs)
        seg_rows.append(segs)
    if total > MAX_SHARD_BYTES:  # pragma: no cover - packing keeps shards below it
        raise IndexError_(f"shard of {total} bytes exceeds 32-bit offsets")
    sa = divsufsort(text)
    block_chars = _block_chars(text)
    segs_all = np.concatenate(seg_rows) if seg_rows else np.zeros((0, 3), dtype=np.int64)
    if len(segs_all) and (segs_all.max() >= 2**31):
        raise IndexError_("a work longer than 2^31 characters cannot be indexed")
    np.save(folder / "text.npy", text)
    np.save(folder / "sa.npy", sa.astype(np.int32, copy=False))
    np.save(folder / "chars.npy", block_chars.astype(np.int64))
    np.save(folder / "segs.npy", segs_all.astype(np.int32))
    (folder / "works.json").write_text(json.dumps([vars(i) for i in (it[0] for it in items)],
                                                  ensure_ascii=False), "utf-8")
    np.save(folder / BLOCK_CRCS, _block_crcs(text))
    files = {n: {"bytes": (folder / n).stat().st_size, "sha256": _sha256(folder / n)}
             for n in (*SHARD_FILES, BLOCK_CRCS)}
    (folder / "shard.json").write_text(json.dumps({"format": SHARD_FORMAT, "files": files}, indent=1), "utf-8")


def _block_chars(text: np.ndarray) -> np.ndarray:
    """Characters before each 4 KiB block of ``text`` (and after the last one), counted
    a block at a time: no array of the text's size wider than a byte."""
    block = 1 << BLOCK_SHIFT
    n = len(text)
    full = n // block
    counts = np.empty(full + (1 if n % block else 0), dtype=np.int64)
    step = 1 << 24  # 16 MiB at a time
    for lo in range(0, full * block, step):
        hi = min(lo + step, full * block)
        part = text[lo:hi].reshape(-1, block)
        counts[lo // block:hi // block] = block - np.count_nonzero((part & 0xC0) == 0x80, axis=1)
    if n % block:
        tail = text[full * block:]
        counts[-1] = len(tail) - np.count_nonzero((tail & 0xC0) == 0x80)
    return np.concatenate(([0], np.cumsum(counts)))


# ---------------------------------------------------------------------------- index
@dataclass
class AddResult:
    added: list[WorkInfo]
    errors: list[dict[str, str]]
    shards: list[str]


class TextIndex:
    """An index folder. Opening maps nothing yet; shards are memory-mapped on first use."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._shards: list[Shard] | None = None

    # -- opening and creating
    @classmethod
    def open(cls, folder: Path | str) -> TextIndex:
        folder = Path(folder)
        path = folder / "index.json"
        if not path.is_file():
            raise IndexError_(f"no text index at {folder}",
                              hint="make one with `assay text index SOURCE... --index DIR`")
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise IndexError_(f"{path}: unreadable text index ({_reason(exc)})", hint=_DAMAGED_HINT) from None
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        if isinstance(fmt, str) and fmt.startswith("assay.text-index/") and fmt != FORMAT:
            raise IndexError_(f"{path}: a text index of format {fmt}, made by another version of assay "
                              f"whose normalised text differs from this one's ({FORMAT}): its passages "
                              "would be missed, so it is not read",
                              hint="rebuild it from its sources: `assay text index SOURCE... --index NEW_DIR`")
        if fmt != FORMAT:
            raise IndexError_(f"{path}: not an assay text index (format {FORMAT})")
        shards = manifest.get("shards")
        # shard names become paths: only the numbered folders `add` writes, each once
        if not isinstance(shards, list) or not all(isinstance(n, str) and _SHARD_NAME.fullmatch(n) for n in shards) \
                or len(set(shards)) != len(shards):
            raise damaged(path, "its list of shards is not a list of distinct shard numbers")
        return cls(folder, manifest)

    @classmethod
    def create(cls, folder: Path | str) -> TextIndex:
        folder = Path(folder)
        if (folder / "index.json").exists():
            return cls.open(folder)
        if folder.exists() and not folder.is_dir():
            raise IndexError_(f"{folder} is a file, not a text index (an index is a folder)",
                              hint="name a new or empty folder; nothing was written")
        if folder.exists() and any(folder.iterdir()):
            raise IndexError_(f"{folder} exists and is not a text index",
                              hint="name a new or empty folder")
        manifest = {"format": FORMAT, "shards": []}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(folder / "index.json", manifest)
        except OSError as exc:
            raise IndexError_(f"{folder}: cannot make a text index there: {exc.strerror or exc}") from None
        return cls(folder, manifest)

    @property
    def shards(self) -> list[Shard]:
        if self._shards is None:
            self._shards = [Shard.open(self.folder / "shards" / name) for name in self.manifest["shards"]]
        return self._shards

    def works(self) -> list[WorkInfo]:
        return [w for s in self.shards for w in s.works]

    # -- adding works
    def add(self, sources: Iterable[Any], *, shard_bytes: int = DEFAULT_SHARD_BYTES,
            progress: Callable[[str], None] | None = None) -> AddResult:
        """Add works (ingest.Work or SourceError items) in new shards of at most
        ``shard_bytes`` of normalised text. A work id already in the index, or twice
        in the sources, is an error record; the index is never left half-written."""
        from .ingest import SourceError

        shard_bytes = min(max(shard_bytes, 1), MAX_SHARD_BYTES)
        with _locked(self.folder):
            current = TextIndex.open(self.folder)  # another writer may have added shards
            self.manifest, self._shards = current.manifest, None
            seen = {w.id for w in self.works()}
            errors: list[dict[str, str]] = []
            added: list[WorkInfo] = []
            new_shards: list[str] = []
            batch: list[tuple[WorkInfo, bytes, np.ndarray]] = []
            size = 0

            def flush() -> None:
                nonlocal batch, size
                if batch:
                    new_shards.append(self._commit_shard(batch))
                    if progress:
                        progress(f"shard {new_shards[-1]}: {len(batch)} works, {size:,} bytes")
                    batch, size = [], 0

            for item in sources:
                if isinstance(item, SourceError):
                    errors.append({"source": item.source, "error": item.error})
                    continue
                if item.id in seen:
                    errors.append({"source": item.source, "error": f"work id {item.id!r} is already in the index"})
                    continue
                norm = normalize(item.text)
                data = norm.text.encode("utf-8")
                if len(data) + 1 > MAX_SHARD_BYTES:
                    errors.append({"source": item.source, "error": "larger than a shard can address (2 GiB normalised)"})
                    continue
                if not data:
                    errors.append({"source": item.source, "error": "no text after normalisation"})
                    continue
                seen.add(item.id)
                info = WorkInfo(item.id, item.title, item.sha256, item.source, item.format,
                                len(item.text), len(norm.text))
                if size and size + len(data) + 1 > shard_bytes:
                    flush()
                batch.append((info, data, segments(norm)))
                added.append(info)
                size += len(data) + 1
            flush()
        return AddResult(added, errors, new_shards)

    def _commit_shard(self, batch: list[tuple[WorkInfo, bytes, np.ndarray]]) -> str:
        shards_dir = self.folder / "shards"
        shards_dir.mkdir(exist_ok=True)
        taken = set(self.manifest["shards"]) | {p.name for p in shards_dir.iterdir()}
        number = 1 + max((int(n) for n in taken if n.isdigit()), default=0)
        name = f"{number:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=self.folder))
        try:
            for info, _, _ in batch:
                info.shard = name
            _write_shard(tmp, batch)
            os.replace(tmp, shards_dir / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        manifest = {**self.manifest, "shards": [*self.manifest["shards"], name]}
        _write_json_atomic(self.folder / "index.json", manifest)
        self.manifest = manifest
        return name

    def verify(self) -> list[str]:
        """Every problem of the index, each naming its file: the checks of opening a shard,
        then the SHA-256 of every file against shard.json (all of text.npy and sa.npy
        read once). An empty list: every shard is as it was written."""
        problems = []
        for name in self.manifest["shards"]:
            folder = self.folder / "shards" / name
            try:
                Shard.open(folder)
                written = _shard_sums(folder)
            except IndexError_ as exc:
                problems.append(exc.message)
                continue
            if written is None:
                problems.append(f"{folder}: no checksums (written before assay recorded them); "
                                "only its structure was checked")
                continue
            for f in written:
                if _sha256(folder / f) != written[f]["sha256"]:
                    problems.append(damaged(folder / f, "its content differs from the SHA-256 recorded "
                                                        "when it was written").message)
        return problems

    def stats(self) -> dict[str, Any]:
        files = [p for p in (self.folder / "shards").rglob("*") if p.is_file()] \
            if (self.folder / "shards").exists() else []
        return {"shards": len(self.manifest["shards"]), "works": len(self.works()),
                "text_bytes": sum(int(s.text.shape[0]) for s in self.shards),
                "index_bytes": sum(p.stat().st_size for p in files)}


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1), "utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
