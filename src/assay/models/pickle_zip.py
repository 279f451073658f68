"""Zip containers of pickles, read without zipfile's trust: the central directory as
Python's zipfile reads it (every entry checked against its local header) and the one
PyTorch's own reader (miniz) takes, which can differ in a crafted file; members read and
inflated within bounds (stored, deflate, bzip2, LZMA). Used by the pickle scan
(models/pickles.py) and the archive walk (containers/zips.py)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import DecodeError, TooLarge

if TYPE_CHECKING:
    from .pickles import PickleReport, Severity

MAX_ZIP_ENTRIES = 200_000


@dataclass(frozen=True)
class ZipEntry:
    """One zip member, read from its central-directory record and checked against
    its local header. ``data_offset`` is where its (compressed) bytes start."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


def zip_entries(f: BinaryIO, where: str, report: PickleReport | None = None) -> list[ZipEntry]:
    """List members of the zip in ``f``; container problems go to ``report`` as
    findings (or raise DecodeError when ``report`` is None).

    Members are listed as Python's zipfile lists them, then as torch's zip reader
    (miniz, PyTorchStreamReader) does (:func:`miniz_directory`): where the two read
    different central directories, the members only torch's reader lists follow, so
    that what torch.load would unpickle is scanned too."""

    def problem(severity: Severity, offset: int, reason: str) -> None:
        if report is None:
            raise DecodeError(where, reason)
        from .pickles import PickleFinding  # (pickles imports this module: no import at the top)

        report.add(PickleFinding(severity, "", "zip", offset, reason))

    f.seek(0, 2)  # mmap.seek returns None: ask tell()
    size = f.tell()
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
        listed_at: int | None = zf.start_dir
        failure = None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            struct.error, NotImplementedError, UnicodeDecodeError) as exc:
        infos, listed_at, failure = [], None, exc
    torch_view = miniz_directory(f, size)
    if failure is not None:
        if not torch_view or torch_view[1] == []:
            raise DecodeError(where, f"not a readable zip archive: {failure}") from failure
        problem("suspicious", torch_view[0],
                f"Python's zipfile cannot read this archive ({failure}), torch's zip reader can: "
                "scanned as torch's reader lists it")
    if len(infos) > MAX_ZIP_ENTRIES:
        if report is None:
            raise TooLarge(where, f"zip archive lists {len(infos)} entries (limit {MAX_ZIP_ENTRIES})")
        # Padding a checkpoint with members must not stop its pickles being judged: the
        # members loaders unpickle by name (data.pkl, constants.pkl, .npy, config.json)
        # are kept, the rest is not listed.
        listed = len(infos)
        infos = [i for i in infos if i.filename.lower().endswith(_UNPICKLED_NAMES)][:MAX_ZIP_ENTRIES]
        problem("suspicious", 0, f"zip archive lists {listed} entries (limit {MAX_ZIP_ENTRIES}): only the "
                f"{len(infos)} named like pickles, arrays or configs are scanned")
    members = [(i.filename, i.orig_filename.encode("utf-8" if i.flag_bits & 0x800 else "cp437", "replace"),
                i.flag_bits, i.compress_type, i.CRC, i.compress_size, i.file_size, i.header_offset)
               for i in infos]  # (the raw name: as stored, which is what miniz compares)
    if torch_view is not None:
        cd_at, listed = torch_view
        known = {(raw, *rest) for _name, raw, *rest in members}
        hidden = [m for m in listed if (m[1], *m[2:]) not in known]
        if hidden and failure is None:
            problem("suspicious", cd_at,
                    f"torch's zip reader (miniz) reads the central directory at byte {cd_at}, Python's "
                    f"zipfile another at byte {listed_at}: {len(hidden)} member(s) only torch.load sees "
                    f"({', '.join(repr(m[0]) for m in hidden[:3])}): scanned as well")
        members += hidden[: max(0, MAX_ZIP_ENTRIES - len(members))]
    out: list[ZipEntry] = []
    names: set[str] = set()
    for name, raw_name, flag_bits, method, crc, csize, usize, header_offset in members:
        if name in names:
            problem("suspicious", header_offset,
                    f"duplicate entry {name!r}: readers disagree on which copy they load")
        names.add(name)
        if flag_bits & 0x1:
            problem("suspicious", header_offset, f"entry {name!r} is encrypted (cannot be scanned)")
        if not 0 <= header_offset < size:
            problem("dangerous", 0, f"entry {name!r}: header offset {header_offset} "
                    "is outside the file")
            continue
        f.seek(header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            problem("dangerous", header_offset,
                    f"entry {name!r}: central directory points to no local header")
            continue
        (_, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, nlen, xlen) = struct.unpack(
            "<4sHHHHHIIIHH", local
        )
        lname_raw = f.read(nlen)
        lname = lname_raw.decode("utf-8" if lflags & 0x800 else "cp437", "replace")
        if lname != name and lname_raw != raw_name:
            problem("dangerous", header_offset,
                    f"entry {name!r}: local header names it {lname!r} (scanner-evasion trick)")
        if lmethod != method:
            problem("dangerous", header_offset,
                    f"entry {name!r}: compression method differs between local header and "
                    "central directory")
        if (lflags ^ flag_bits) & 0x1:
            problem("dangerous", header_offset,
                    f"entry {name!r}: encryption flag differs between headers")
        if not lflags & 0x8 and (lcsize, lusize) != (0xFFFFFFFF, 0xFFFFFFFF) and (
            lcrc != crc or lcsize != csize or lusize != usize
        ):
            problem("suspicious", header_offset,
                    f"entry {name!r}: CRC or sizes differ between local header and central directory")
        data_offset = header_offset + 30 + nlen + xlen
        if data_offset + csize > size:
            problem("dangerous", header_offset, f"entry {name!r} runs past the end of the file")
            continue
        out.append(ZipEntry(name, method, flag_bits, crc, csize, usize, header_offset, data_offset))
    return out


_UNPICKLED_NAMES = (".pkl", ".pickle", ".npy", ".json", ".joblib", ".pt", ".pth", ".bin")
_U16, _U32, _U64 = (struct.Struct(f).unpack_from for f in ("<H", "<I", "<Q"))
_MAX32 = 0xFFFFFFFF
ZipMember = tuple[str, bytes, int, int, int, int, int, int]  # name, raw name, flags, method, crc, sizes, offset


def miniz_directory(f: BinaryIO, size: int) -> tuple[int, list[ZipMember]] | None:
    """The central directory torch's zip reader reads (miniz 3.0's
    mz_zip_reader_read_central_dir, which PyTorchStreamReader calls): where it is and
    its members, or None where miniz refuses the archive.

    miniz takes the last end-of-central-directory record, then a zip64 record at the
    offset its locator names, and the directory at the offset that record states,
    as an absolute file offset. Python's zipfile reads the zip64 record right before
    the locator instead, and moves the directory to sit right before the end record
    when the stated offset disagrees (data prepended to an archive): two directories
    in one file give the two readers different members."""
    tail_len = min(size, 0xFFFF + 22 + 4096)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06", 0, len(tail) - 18)  # (22 bytes of record must follow)
    if i < 0:
        return None
    eocd = size - tail_len + i
    total, on_disk = _U16(tail, i + 10)[0], _U16(tail, i + 8)[0]
    this_disk, cd_disk = _U16(tail, i + 4)[0], _U16(tail, i + 6)[0]
    cd_size, cd_ofs = _U32(tail, i + 12)[0], _U32(tail, i + 16)[0]
    if eocd >= 76:
        f.seek(eocd - 20)
        loc = f.read(20)
        if loc[:4] == b"PK\x06\x07":
            z_ofs = _U64(loc, 8)[0]
            if z_ofs > size - 56:
                return None
            f.seek(z_ofs)
            z = f.read(56)
            if len(z) == 56 and z[:4] == b"PK\x06\x06":
                if _U64(z, 4)[0] < 44 or _U32(loc, 16)[0] != 1:
                    return None
                total, on_disk, cd_size = _U64(z, 32)[0], _U64(z, 24)[0], _U64(z, 40)[0]
                if max(total, on_disk, cd_size) > _MAX32:
                    return None
                this_disk, cd_disk, cd_ofs = _U32(z, 16)[0], _U32(z, 20)[0], _U64(z, 48)[0]
    if total != on_disk or ((this_disk | cd_disk) and (this_disk, cd_disk) != (1, 1)):
        return None
    if cd_size < total * 46 or cd_ofs + cd_size > size or total > MAX_ZIP_ENTRIES:
        return None
    f.seek(cd_ofs)
    cd = f.read(cd_size)
    out: list[ZipMember] = []
    p = 0
    for _ in range(total):
        if len(cd) - p < 46 or cd[p : p + 4] != b"PK\x01\x02":
            return None
        flags, method = _U16(cd, p + 8)[0], _U16(cd, p + 10)[0]
        crc, csize, usize = _U32(cd, p + 16)[0], _U32(cd, p + 20)[0], _U32(cd, p + 24)[0]
        nlen, xlen, clen = _U16(cd, p + 28)[0], _U16(cd, p + 30)[0], _U16(cd, p + 32)[0]
        ofs = _U32(cd, p + 42)[0]
        end = p + 46 + nlen + xlen + clen
        if end > len(cd) or flags & 0x2000:
            return None
        if xlen and _MAX32 in (csize, usize, ofs):
            extra, q = cd[p + 46 + nlen : p + 46 + nlen + xlen], 0
            while q + 4 <= len(extra):
                fid, flen = _U16(extra, q)[0], _U16(extra, q + 2)[0]
                if fid == 1:  # zip64 sizes and offset, in this order, for the fields at the maximum
                    field, r = extra[q + 4 : q + 4 + flen], 0
                    for which in ("usize", "csize", "ofs"):
                        if {"usize": usize, "csize": csize, "ofs": ofs}[which] == _MAX32 and r + 8 <= len(field):
                            v = _U64(field, r)[0]
                            r += 8
                            usize, csize, ofs = (v if which == "usize" else usize, v if which == "csize" else csize,
                                                 v if which == "ofs" else ofs)
                    break
                q += 4 + flen
        if (method == 0 and csize != usize) or (usize and not csize) or ofs + 30 + csize > size:
            return None
        disk = _U16(cd, p + 34)[0]
        if disk == 0xFFFF or disk not in (this_disk, 1):
            return None
        raw = cd[p + 46 : p + 46 + nlen]
        # (named as zipfile names it: decoded, cut at a NUL)
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace").split("\0", 1)[0]
        out.append((name, raw, flags, method, crc, csize, usize, ofs))
        p = end
    return cd_ofs, out


def read_zip_entry(
    f: BinaryIO, entry: ZipEntry, where: str, limit: int, *, ignore_encryption: bool = False
) -> bytes:
    """The uncompressed bytes of ``entry`` (at most ``limit``; TooLarge beyond).
    Reads from the local data offset directly so that a bad CRC cannot make the
    scanner skip what a lenient loader would still load. ``ignore_encryption`` reads
    an entry flagged as encrypted as if it were not (as a loader that ignores the
    flag would)."""
    if entry.size > limit:
        raise TooLarge(where, f"zip entry {entry.name!r} declares {entry.size} bytes (limit {limit})")
    if entry.flags & 0x1 and not ignore_encryption:
        raise DecodeError(where, f"zip entry {entry.name!r} is encrypted")
    f.seek(entry.data_offset)
    if entry.method == zipfile.ZIP_STORED:
        if entry.compressed_size != entry.size:
            raise DecodeError(where, f"stored zip entry {entry.name!r}: sizes disagree")
        data = f.read(entry.compressed_size)
    elif entry.method == zipfile.ZIP_DEFLATED:
        d = zlib.decompressobj(-15)
        remaining = entry.compressed_size
        chunks: list[bytes] = []
        total = 0
        try:
            while remaining > 0:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                # max_length bounds the output: the declared size may lie (zip bomb).
                out = d.decompress(chunk, entry.size + 1 - total)
                total += len(out)
                chunks.append(out)
                if total > entry.size or d.unconsumed_tail:
                    raise DecodeError(
                        where, f"zip entry {entry.name!r} inflates beyond its declared "
                        f"{entry.size} bytes (zip bomb or forged header)",
                    )
        except zlib.error as exc:
            raise DecodeError(where, f"zip entry {entry.name!r}: corrupt deflate data: {exc}") from exc
        data = b"".join(chunks)
    elif entry.method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        data = _inflate_other(f, entry, where)
    else:
        raise DecodeError(where, f"zip entry {entry.name!r}: unsupported compression method {entry.method}")
    return data


class _ZipLZMA:
    """A zip member's LZMA stream as zipfile reads it: a 4-byte header (version, size of
    the properties), the LZMA1 properties, then raw LZMA1 data; with max_length."""

    def __init__(self) -> None:
        self._head = b""
        self._d: Any = None

    @property
    def needs_input(self) -> bool:
        return self._d is None or self._d.needs_input

    @property
    def eof(self) -> bool:
        return self._d is not None and self._d.eof

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        import lzma

        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            n = struct.unpack_from("<H", self._head, 2)[0]
            if len(self._head) < 4 + n:
                return b""
            props = self._head[4 : 4 + n]
            data, self._head = self._head[4 + n :], b""
            self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
                lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)])  # as zipfile does
        return self._d.decompress(data, max_length)


def _decompressor(method: int) -> Any:
    import bz2

    return bz2.BZ2Decompressor() if method == zipfile.ZIP_BZIP2 else _ZipLZMA()


def _inflate_other(f: BinaryIO, entry: ZipEntry, where: str) -> bytes:
    """A bzip2 or LZMA member (zipfile reads them, so numpy.load's npz and Keras do;
    torch's reader does not), bounded by its declared size as deflate is."""
    import lzma

    d = _decompressor(entry.method)
    remaining, total, chunks = entry.compressed_size, 0, []
    try:
        while remaining > 0:
            chunk = f.read(min(1 << 20, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            out = d.decompress(chunk, entry.size + 1 - total)
            total += len(out)
            chunks.append(out)
            if total > entry.size or not (d.needs_input or d.eof):
                raise DecodeError(where, f"zip entry {entry.name!r} inflates beyond its declared "
                                  f"{entry.size} bytes (zip bomb or forged header)")
            if d.eof:
                break
    except (OSError, EOFError, ValueError, lzma.LZMAError, struct.error) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(where, f"zip entry {entry.name!r}: corrupt compressed data: {exc}") from exc
    return b"".join(chunks)
