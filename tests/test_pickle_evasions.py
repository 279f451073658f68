"""Payloads rewritten by an adversary who knows assay: the model still loads (and the
payload still runs) in the victim's loader, and the layout is chosen to slip past a
scanner. Every payload here is a benign stand-in (``os.getcwd``) written as raw
bytes; nothing in this file is ever unpickled by anything but the probe's inert
unpickler, which hands out stubs and imports nothing."""

from __future__ import annotations

import io
import pickle
import random
import re
import struct
import zipfile
from pathlib import Path

import pytest

from assay.models import scan_file
from assay.pickleops import PickleSyntaxError, probe, read_ops
from assay.sniff import sniff_path

P0 = b"cos\ngetcwd\n(tR."  # protocol 0: os.getcwd()
P2 = b"\x80\x02cos\ngetcwd\nq\x00)R."  # protocol 2: os.getcwd()


def _worst(path: Path) -> str:
    order = ["safe", "suspicious", "dangerous"]
    return max((r.verdict for r in scan_file(path)), key=order.index, default="no pickle")


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


# -- the C unpickler's stack: what it accepts, the probe must accept --------------------

# The C unpickler (pickle.load, torch.load, numpy.load) returns the value on top at STOP
# and ignores values and marks below it; POP right after MARK pops the mark.
LOOSE_STACKS = {
    "value below": b"I0\n" + P0,
    "mark below": b"(" + P0,
    "mark popped": b"(0" + P0,
}


@pytest.mark.parametrize("kind", sorted(LOOSE_STACKS))
def test_a_payload_with_a_loose_stack_is_a_pickle_everywhere(tmp_path: Path, kind: str) -> None:
    data = LOOSE_STACKS[kind]
    assert probe(data) is True
    raw = tmp_path / "model.pkl"
    raw.write_bytes(data)
    assert sniff_path(raw).format == "pickle"  # (was "unknown": `assay scan` called it another file)
    # inside a zip (a torch checkpoint, or any zip of pickles) the member is scanned
    member = tmp_path / "model.pt"
    member.write_bytes(_zip([("archive/data.pkl", data), ("archive/version", b"3\n")]))
    assert _worst(member) == "dangerous"


class _Stub:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _Inert(pickle.Unpickler):
    """Resolves every well-formed global to an inert stub (imports nothing) and notes it."""

    named = False

    def find_class(self, module: str, name: str) -> object:
        ident = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
        if not (re.fullmatch(ident, module, re.ASCII) and re.fullmatch(ident, name, re.ASCII)):
            raise pickle.UnpicklingError("no such module")  # as an import of that name fails
        self.named = True
        return _Stub

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent ids refused")


def _loads_naming_a_global(data: bytes) -> bool:
    try:
        if any(code in (0x70, 0x71, 0x72) and arg > 1 << 16 for code, arg, _ in read_ops(data)):
            return False  # (a huge memo index: the C unpickler grows its memo to it, slowly)
    except PickleSyntaxError:
        return False
    u = _Inert(io.BytesIO(data))
    try:
        u.load()
    except Exception:  # noqa: BLE001 - any failure: the C unpickler did not load it
        return False
    return u.named


def test_the_probe_accepts_whatever_the_c_unpickler_loads_through_a_global() -> None:
    import collections
    import datetime
    import decimal

    values = [collections.OrderedDict(a=[1, 2]), datetime.date(2020, 1, 2), decimal.Decimal("1.5"),
              [collections.OrderedDict(), (1, "x")], {"k": datetime.timedelta(3)}]
    seeds = [pickle.dumps(v, protocol=p) for v in values for p in range(6)]
    rng = random.Random(5)
    checked = 0
    for _ in range(6000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            mode = rng.random()
            if mode < 0.4:
                data[i] = rng.randrange(256)
            elif mode < 0.6:
                del data[i]
            elif mode < 0.8:
                data.insert(i, rng.randrange(256))
            else:  # stack-shaping opcodes
                data[i:i] = rng.choice([b"(", b"0", b"N", b"(0", b"1", b"K\x01"])
            if not data:
                break
        if data and _loads_naming_a_global(bytes(data)):
            checked += 1
            assert probe(bytes(data)) is not False, bytes(data)
    assert checked > 300


# -- several pickles in a row ------------------------------------------------------------

_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


@pytest.mark.parametrize("first", [
    b"\x80\x02K\x01.",  # any benign pickle, then a second pickle.load
    b"\x80\x02\x8a\x0a" + _TORCH_MAGIC + b"q\x00.",  # torch's magic number, memoised
    b"\x80\x04\x8a\x0a" + _TORCH_MAGIC + b".",  # ... or pickled with protocol 4
    b"L%dL\n." % 0x1950A86A20F9469CFC6C,  # ... or with protocol 0
])
def test_a_protocol0_payload_after_a_first_pickle_is_scanned(tmp_path: Path, first: bytes) -> None:
    # torch.load (legacy layout) unpickles the magic number, then the protocol version:
    # the payload in second place runs before torch compares anything.
    p = tmp_path / "model.pt"
    p.write_bytes(first + P0)
    assert _worst(p) == "dangerous"


# -- numpy object arrays ----------------------------------------------------------------


def _npy(header: bytes, body: bytes) -> bytes:
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


@pytest.mark.parametrize("header", [
    b"{'descr': 'object', 'fortran_order': False, 'shape': (1,), }",
    b"{'descr': '(2,)O', 'fortran_order': False, 'shape': (1,), }",
    b"{'descr': 'i4,O', 'fortran_order': False, 'shape': (1,), }",
    b"{'descr': [('a', '<f4'), ('b', ('O', (2,)))], 'fortran_order': False, 'shape': (1,), }",
    # a Python 2 header: numpy drops the L and reads it
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }",
])
def test_object_arrays_numpy_unpickles_are_scanned(tmp_path: Path, header: bytes) -> None:
    # numpy.load(allow_pickle=True) unpickles the data of any dtype that holds objects
    import numpy as np
    from numpy.lib.format import descr_to_dtype

    from assay.models.pickles import npy_header

    parsed = npy_header(_npy(header, b""))
    assert parsed is not None and descr_to_dtype(parsed[0]["descr"]).hasobject
    p = tmp_path / "arr.npy"
    p.write_bytes(_npy(header, P2))
    assert _worst(p) == "dangerous"
    z = tmp_path / "arrays.npz"
    z.write_bytes(_zip([("arr_0.npy", _npy(header, P2))]))
    assert _worst(z) == "dangerous"
    assert np.dtype("f4").hasobject is False


def test_a_field_named_like_an_object_type_is_not_an_object_array(tmp_path: Path) -> None:
    import numpy as np

    p = tmp_path / "fields.npy"
    np.save(p, np.zeros(3, dtype=[("Obj", "<f4"), ("O", "<i4")]))
    assert scan_file(p) == []  # numeric fields: no pickle, nothing to scan (or to misread)


# -- compressed joblib files ----------------------------------------------------------


def _zf(data: bytes) -> bytes:
    import zlib

    return b"ZF" + (b"0x%x" % len(data)).ljust(19) + zlib.compress(data)


@pytest.mark.parametrize("kind", ["zlib", "lzma", "joblib 0.9 ZF"])
def test_a_compressed_protocol0_payload_is_found_by_scan(tmp_path: Path, kind: str) -> None:
    # joblib.load picks its decompressor by the first bytes (b"x", b"]\0", b"ZF") and then
    # unpickles whatever protocol comes out
    import lzma
    import zlib

    from test_model_file_findings import scan_records

    pack = {"zlib": zlib.compress, "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
            "joblib 0.9 ZF": _zf}[kind]
    bad, good = tmp_path / "bad.joblib", tmp_path / "good.joblib"
    bad.write_bytes(pack(P0))
    good.write_bytes(pack(pickle.dumps({"weights": [1.5, 2.5]}, protocol=0)))
    verdicts = {r.path.split("/")[-1]: r.model.safety.verdict
                for r in scan_records(bad, good).values() if r.model is not None}  # fmt: skip
    assert verdicts == {"bad.joblib.decompressed": "dangerous", "good.joblib.decompressed": "safe"}, verdicts


def test_text_that_starts_like_a_zf_header_is_not_an_archive(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(b"ZF 0x10 is a register name, see the manual\n" * 20)
    assert sniff_path(p).kind != "archive"


# -- zips that torch's reader (miniz) and Python's zipfile read differently -------------
#
# PyTorchStreamReader opens a checkpoint with miniz 3.0 (mz_zip_reader_read_central_dir):
# the last end-of-central-directory record, the zip64 record at the offset its locator
# names, and the central directory at the offset the record states, taken as an absolute
# file offset. Python's zipfile reads the zip64 record right before the locator, and
# when the stated offset disagrees with where the directory ends (data prepended), it
# reads the directory right before the end record instead. A file with two directories
# shows each reader its own members.

BENIGN = b"\x80\x02}q\x00."


def _local(name: bytes, data: bytes) -> tuple[bytes, tuple[bytes, int, int]]:
    import zlib

    crc = zlib.crc32(data)
    head = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(name), 0)
    return head + name + data, (name, crc, len(data))


def _central(entry: tuple[bytes, int, int], offset: int, comment: bytes = b"") -> bytes:
    name, crc, n = entry
    return (b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, 20, 0, 0, 0, 0x21, crc, n, n, len(name), 0,
                                        len(comment), 0, 0, 0, offset) + name + comment)


def _members(files: list[tuple[bytes, bytes]], base: int) -> tuple[bytes, list[tuple[tuple[bytes, int, int], int]]]:
    body, entries = b"", []
    for name, data in files:
        blob, entry = _local(name, data)
        entries.append((entry, base + len(body)))
        body += blob
    return body, entries


def _eocd(n: int, size: int, offset: int) -> bytes:
    return b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, size, offset, 0)


def _two_directories(torch_sees: list[tuple[bytes, bytes]], zipfile_sees: list[tuple[bytes, bytes]]) -> bytes:
    """The end record states the first directory's offset (miniz reads it there); the
    second sits right before the end record, where zipfile looks once that offset is off."""
    first, first_entries = _members(torch_sees, 0)
    gap = b"\0" * 1024  # (zipfile shifts its offsets by the first directory's size)
    second, second_entries = _members(zipfile_sees, len(first) + len(gap))
    cd_torch = b"".join(_central(e, o) for e, o in first_entries)
    at = len(first) + len(gap) + len(second)
    shift = len(cd_torch)  # zipfile: end record position - size - stated offset
    plain = [_central(e, o - shift) for e, o in second_entries]
    pad = len(cd_torch) - len(b"".join(plain))
    assert pad >= 0
    plain[-1] = _central(second_entries[-1][0], second_entries[-1][1] - shift, b" " * pad)
    cd_zipfile = b"".join(plain)
    return first + gap + second + cd_torch + cd_zipfile + _eocd(len(first_entries), len(cd_torch), at)


def _zip64_two_records(torch_sees: list[tuple[bytes, bytes]], zipfile_sees: list[tuple[bytes, bytes]]) -> bytes:
    """The zip64 locator names the first zip64 record (miniz); zipfile reads the one
    right before the locator."""
    first, first_entries = _members(torch_sees, 0)
    second, second_entries = _members(zipfile_sees, len(first))
    cd_torch = b"".join(_central(e, o) for e, o in first_entries)
    cd_zipfile = b"".join(_central(e, o) for e, o in second_entries)

    def record(n: int, size: int, offset: int) -> bytes:
        return b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, n, n, size, offset)

    at_torch = len(first) + len(second)
    rec_torch_at = at_torch + len(cd_torch)
    at_zipfile = rec_torch_at + 56
    return (first + second + cd_torch + record(len(first_entries), len(cd_torch), at_torch)
            + cd_zipfile + record(len(second_entries), len(cd_zipfile), at_zipfile)
            + b"PK\x06\x07" + struct.pack("<IQI", 0, rec_torch_at, 1)
            + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


CHECKPOINT = [(b"archive/data.pkl", P2), (b"archive/version", b"3\n")]
DIFFERENTIALS = {
    "two directories, zipfile sees a checkpoint": lambda: _two_directories(
        CHECKPOINT, [(b"archive/data.pkl", BENIGN), (b"archive/version", b"3\n")]),
    "two directories, zipfile sees notes": lambda: _two_directories(
        CHECKPOINT, [(b"docs/readme.txt", b"notes, nothing to see\n" * 4), (b"docs/b.txt", b"x" * 9)]),
    "two zip64 records": lambda: _zip64_two_records(
        CHECKPOINT, [(b"archive/data.pkl", BENIGN), (b"archive/version", b"3\n")]),
}


@pytest.mark.parametrize("kind", sorted(DIFFERENTIALS))
def test_what_torchs_zip_reader_reads_is_scanned(tmp_path: Path, kind: str) -> None:
    from assay.models.pickles import miniz_directory
    from test_model_file_findings import scan_records

    data = DIFFERENTIALS[kind]()
    listed = zipfile.ZipFile(io.BytesIO(data)).namelist()  # Python's reading: no payload in it
    assert all(zipfile.ZipFile(io.BytesIO(data)).read(n) != P2 for n in listed)
    view = miniz_directory(io.BytesIO(data), len(data))  # torch's reading: the payload
    assert view is not None and [m[0] for m in view[1]] == ["archive/data.pkl", "archive/version"]
    p = tmp_path / "model.pt"
    p.write_bytes(data)
    assert _worst(p) == "dangerous"
    assert any("torch's zip reader" in f.reason for r in scan_file(p) for f in r.findings)
    records = scan_records(p)  # `assay scan`: as a model, or walked as an archive
    assert any(r.model is not None and r.model.safety.verdict == "dangerous" for r in records.values()), records


def test_a_zip_only_torchs_reader_can_read_is_scanned(tmp_path: Path) -> None:
    from test_model_file_findings import scan_records

    # an end-record signature in the last bytes of the archive comment: zipfile takes it
    # for the record and gives up; miniz skips it (fewer than 22 bytes follow)
    body, entries = _members(CHECKPOINT, 0)
    cd = b"".join(_central(e, o) for e, o in entries)
    comment = b"PK\x05\x06zz"
    data = body + cd + _eocd(len(entries), len(cd), len(body))[:-2] + struct.pack("<H", len(comment)) + comment
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(data))
    p = tmp_path / "model.pt"
    p.write_bytes(data)
    assert _worst(p) == "dangerous"
    records = scan_records(p)
    assert any(r.model is not None and r.model.safety.verdict == "dangerous" for r in records.values()), records


@pytest.mark.parametrize("name", ["tiny_state_dict_zip.pt", "tiny_module_zip.pt"])
def test_real_checkpoints_read_alike_by_both_readers(name: str) -> None:
    from assay.models.pickles import miniz_directory

    p = Path(__file__).parent / "data" / name  # written by torch.save (zip64 records)
    with open(p, "rb") as f:
        view = miniz_directory(f, p.stat().st_size)
    z = zipfile.ZipFile(p)
    assert view is not None and view[0] == z.start_dir
    assert [(m[0], m[-1]) for m in view[1]] == [(i.filename, i.header_offset) for i in z.infolist()]
    assert _worst(p) == "safe"


# -- torch's legacy tar checkpoints -----------------------------------------------------


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _storage_args(key: str, type_name: str) -> bytes:
    k = key.encode()
    return (b"\x80\x02X" + struct.pack("<I", len(k)) + k + b"X\x03\x00\x00\x00cpu"
            + b"ctorch\n" + type_name.encode() + b"\n\x87.")


def _storages(*records: bytes, views: bytes = b"\x80\x02].") -> bytes:
    return b"\x80\x02K" + bytes([len(records)]) + b"." + b"".join(records) + views


def _tensors(*records: bytes) -> bytes:
    return b"\x80\x02K" + bytes([len(records)]) + b"." + b"".join(records)


FLOATS = struct.pack("<q", 2) + struct.pack("<2f", 1.0, 2.0)  # a storage: element count, data
DIMS = struct.pack("<ii", 1, 0) + struct.pack("<qqq", 2, 1, 0)  # a tensor: ndim, pad, size, stride, offset
TENSOR_ARGS = b"\x80\x02X\x01\x00\x00\x00tK\x00ctorch\nFloatTensor\n\x87."

LEGACY_TAR = {
    "payload after the first storage's data": ("storages", _storages(
        _storage_args("0", "FloatStorage") + FLOATS, P0 + FLOATS)),
    "payload as the storage views": ("storages", _storages(
        _storage_args("0", "HalfStorage") + struct.pack("<q", 2) + b"\0" * 4, views=P0)),
    "payload after the first tensor's dimensions": ("tensors", _tensors(TENSOR_ARGS + DIMS, P0 + DIMS)),
}


@pytest.mark.parametrize("kind", sorted(LEGACY_TAR))
def test_pickles_of_legacy_tar_checkpoints_are_followed_past_raw_data(tmp_path: Path, kind: str) -> None:
    from test_model_file_findings import scan_records

    member, data = LEGACY_TAR[kind]
    benign = {"sys_info": b"\x80\x02}.", "pickle": b"\x80\x02}.", "storages": _storages(),
              "tensors": _tensors()}
    benign[member] = data
    p = tmp_path / "legacy.tar.pt"
    p.write_bytes(_tar(list(benign.items())))
    verdicts = {n.rsplit("!/", 1)[-1]: r.model.safety.verdict
                for n, r in ((r.path, r) for r in scan_records(p).values()) if r.model is not None}  # fmt: skip
    assert verdicts[member] == "dangerous", verdicts
    assert set(verdicts.values()) == {"safe", "dangerous"}


def test_a_benign_legacy_storages_member_is_safe(tmp_path: Path) -> None:
    p = tmp_path / "storages"
    p.write_bytes(_storages(_storage_args("0", "FloatStorage") + FLOATS,
                            _storage_args("1", "DoubleStorage") + struct.pack("<q", 1) + b"\0" * 8))
    reports = scan_file(p)
    assert len(reports) == 4 and all(r.verdict == "safe" for r in reports)
    t = tmp_path / "tensors"
    t.write_bytes(_tensors(TENSOR_ARGS + DIMS, TENSOR_ARGS + DIMS))
    reports = scan_file(t)
    assert len(reports) == 3 and all(r.verdict == "safe" for r in reports)


# -- a picture's magic number made of pickle opcodes ------------------------------------

POLYGLOTS = {
    # 'G' (BINFLOAT) swallows "IF89a" and two more bytes; the payload follows
    "poly.gif": b"GIF89a\x01\x00" + b"0" + P0,
    # 'B' (BINBYTES) takes "M" and the BMP's size field for its length (77) and swallows
    # the rest of the header (BITMAPINFOHEADER size 40 at byte 14, as sniffers check)
    "poly.bmp": b"BM\x00\x00\x00" + bytes(9) + struct.pack("<I", 40) + bytes(64) + P0,
}


@pytest.mark.parametrize("name", sorted(POLYGLOTS))
def test_a_picture_that_is_also_a_pickle_is_judged_as_one(tmp_path: Path, name: str) -> None:
    from assay.errors import UnsafeInput
    from assay.models import open_model
    from test_model_file_findings import scan_records

    p = tmp_path / name
    p.write_bytes(POLYGLOTS[name])
    assert sniff_path(p).kind == "image"  # what the sniffer calls it, and keeps calling it
    assert probe(p.read_bytes()) is True  # what pickle.load and torch.load read
    rec = scan_records(p)[name]
    assert rec.kind == "image" and rec.model is not None and rec.model.safety.verdict == "dangerous"
    with pytest.raises(UnsafeInput):
        open_model(p)  # `assay model poly.gif`: refused, not "not a model file"


def test_ordinary_pictures_are_not_pickles(tmp_path: Path) -> None:
    from PIL import Image

    from test_model_file_findings import scan_records

    paths = []
    for fmt in ("GIF", "BMP", "PNG", "TIFF"):
        p = tmp_path / f"pattern.{fmt.lower()}"
        img = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
        img.save(p, fmt)
        paths.append(p)
    for rec in scan_records(*paths).values():
        assert rec.kind == "image" and rec.model is None, rec


def _printable_len(n: int) -> bool:  # a length byte that can sit inside a JSON string
    return 0x20 <= n <= 0x7E and n not in (0x22, 0x5C)


def safetensors_pickle_polyglot(payload: bytes) -> bytes:
    """A valid safetensors file whose bytes are also a pickle: the header length's bytes
    read as MARK, BINBYTES (of 4 bytes, its length the length's third byte); inside the
    header's one tensor name, SHORT_BINSTRINGs of printable lengths (then POP) hop over
    the JSON, the last one swallows its end; ``payload`` is the tensor's data."""
    n = 0x28 | 0x42 << 8 | 4 << 16
    tail = b'":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]}}' % (len(payload), len(payload))
    last = 100  # the last hop's length: the rest of the name, the JSON's end, padding
    left = 8 + n - 10 - (2 + last)  # the pickle goes on at byte 10, inside the name
    name = bytearray()
    while left:
        take = 126 if left >= 129 + 40 else left - 3
        if not _printable_len(take):
            take = (left - 6) // 2
        name += b"U" + bytes([take]) + b"a" * take + b"0"
        left -= take + 3
    header = b'{"' + bytes(name) + b"U" + bytes([last]) + tail
    header += b" " * (n - len(header))
    return n.to_bytes(8, "little") + header + payload


def test_a_safetensors_file_that_is_also_a_pickle_is_judged_as_one(tmp_path: Path) -> None:
    from safetensors import safe_open

    from assay.errors import UnsafeInput
    from assay.models import open_model
    from test_model_file_findings import scan_records

    p = tmp_path / "pytorch_model.bin"  # torch.load reads a .bin as a pickle
    p.write_bytes(safetensors_pickle_polyglot(b"0" + P0))
    with safe_open(p, "np") as f:  # a well-formed safetensors file: one uint8 tensor
        assert len(list(f.keys())) == 1
    assert sniff_path(p).format == "safetensors"
    assert probe(p.read_bytes()) is True
    assert _worst(p) == "dangerous"
    with pytest.raises(UnsafeInput):
        open_model(p)
    rec = scan_records(p)["pytorch_model.bin"]
    assert rec.model is not None and rec.model.safety.verdict == "dangerous"
    benign = tmp_path / "benign.safetensors"  # a polyglot whose pickle builds a plain dict
    benign.write_bytes(safetensors_pickle_polyglot(b"0ccollections\nOrderedDict\n)R."))
    assert _worst(benign) == "suspicious"


def test_a_tar_that_is_also_a_pickle_is_judged_as_one(tmp_path: Path) -> None:
    import tarfile

    from test_model_file_findings import scan_records

    # the first member's name: BINBYTES of 513 bytes ("B\x01\x02" then NUL for tarfile),
    # which swallow the rest of the header and the member's first line; the payload is
    # the member's second line (joblib.load, pickle.load read the file from byte 0)
    content = b"notes\n" + P0 + b"\nend\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("placeholder")
        info.size = len(content)
        t.addfile(info, io.BytesIO(content))
    raw = bytearray(buf.getvalue())
    raw[0:100] = (b"B" + struct.pack("<I", 512 + 6 - 5) + b"\0").ljust(100, b"\0")
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    p = tmp_path / "model.joblib"
    p.write_bytes(bytes(raw))
    with tarfile.open(p) as t:
        assert t.getnames() == ["B\x01\x02"]  # a well-formed tar
    assert sniff_path(p).kind == "archive"
    rec = scan_records(p)["model.joblib"]
    assert rec.kind == "archive" and rec.model is not None and rec.model.safety.verdict == "dangerous"


# -- LZ4 (joblib.dump(..., compress="lz4")) ----------------------------------------------


def _lz4_frame(*blocks: bytes) -> bytes:
    """An LZ4 frame of stored blocks (block size field's high bit), independent blocks,
    4 MiB maximum; the header checksum byte is not checked by assay's reader."""
    body = b"".join(struct.pack("<I", len(b) | 0x80000000) + b for b in blocks)
    return b"\x04\x22\x4d\x18" + bytes([0x60, 0x70, 0x00]) + body + b"\x00\x00\x00\x00"


def test_lz4_blocks_decompress_as_the_format_says() -> None:
    from assay.containers.lz4frame import LZ4Error, decompress_block

    # "abc" then a match 3 back of 9 bytes (overlapping: repeats "abc"), then "!"
    assert decompress_block(b"\x35abc\x03\x00\x10!", b"", 1 << 20) == b"abcabcabcabc!"
    # a match reaching into the previous block's output (linked blocks)
    assert decompress_block(b"\x00\x02\x00\x10.", b"xyz", 1 << 20) == b"yzyz."
    with pytest.raises(LZ4Error):
        decompress_block(b"\x00\x09\x00\x10.", b"xyz", 1 << 20)  # reaches before the start
    with pytest.raises(LZ4Error):
        decompress_block(b"\x0f\x01\x00\xff\xff\x05\x10.", b"x", 100)  # 534 bytes: over the maximum


def test_an_lz4_compressed_payload_is_found_by_scan(tmp_path: Path) -> None:
    # joblib.load recognises the LZ4 magic number and unpickles the frame's content
    from test_model_file_findings import scan_records

    bad, good = tmp_path / "bad.joblib", tmp_path / "good.joblib"
    bad.write_bytes(_lz4_frame(P0[:7], P0[7:]))
    good.write_bytes(_lz4_frame(pickle.dumps({"weights": [1.5, 2.5]}, protocol=4)))
    assert sniff_path(bad).kind == "archive" and sniff_path(bad).format == "lz4"
    verdicts = {r.path.split("/")[-1]: r.model.safety.verdict
                for r in scan_records(bad, good).values() if r.model is not None}  # fmt: skip
    assert verdicts == {"bad.joblib.decompressed": "dangerous", "good.joblib.decompressed": "safe"}, verdicts


def test_zips_with_unusual_names_read_alike_by_both_readers(tmp_path: Path) -> None:
    # cp437 names (no UTF-8 flag), UTF-8 names, a name with a NUL: one directory, no finding
    from assay.models.pickles import PickleReport, zip_entries

    body, entries = _members([(b"caf\x82.pkl", BENIGN), (b"a\x00b.pkl", BENIGN)], 0)
    cd = b"".join(_central(e, o) for e, o in entries)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ünï/✓.pkl", BENIGN)
    for data in (body + cd + _eocd(len(entries), len(cd), len(body)), buf.getvalue()):
        report = PickleReport(where="x")
        listed = zip_entries(io.BytesIO(data), "x", report)
        assert report.findings == [] and len(listed) == len(zipfile.ZipFile(io.BytesIO(data)).infolist())
    p = tmp_path / "names.zip"
    p.write_bytes(body + cd + _eocd(len(entries), len(cd), len(body)))
    assert _worst(p) == "safe"


def test_every_copy_of_a_keras_config_is_judged() -> None:
    # keras.saving reads config.json by name through zipfile, which hands out the last
    # of two members of that name; a scanner that judged the first saw a clean model
    import warnings

    from pickle_corpus import keras_zip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        good = zipfile.ZipFile(io.BytesIO(keras_zip()))
        bad = zipfile.ZipFile(io.BytesIO(keras_zip(function=("os", "system"))))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name in good.namelist():
                z.writestr(name, good.read(name))
            z.writestr("config.json", bad.read("config.json"))
        assert b"system" in zipfile.ZipFile(buf).read("config.json")  # what keras reads
    from assay.models.pickles import _scan_zip

    reports = _scan_zip(io.BytesIO(buf.getvalue()), "model.keras", 0)
    assert any(r.verdict == "dangerous" for r in reports)


# -- HDF5 behind a user block ---------------------------------------------------------


def _keras_h5(path: Path, userblock: int) -> None:
    import json

    import h5py
    import numpy as np

    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Lambda", "config": {"name": "l", "function": "system", "module": "os"}}]}}
    with h5py.File(path, "w", userblock_size=userblock) as f:
        f.attrs["model_config"] = json.dumps(config)
        f.create_dataset("w", data=np.zeros(4, "f4"))


@pytest.mark.parametrize("user_block", ["zeros", "a pickle"])
def test_a_keras_h5_behind_a_user_block_is_judged(tmp_path: Path, user_block: str) -> None:
    # h5py (so keras.models.load_model) finds the superblock at 512, 1024, 2048... bytes
    import h5py

    from assay.errors import UnsafeInput
    from assay.models import open_model

    p = tmp_path / "model.h5"
    _keras_h5(p, 512)
    if user_block == "a pickle":  # pickle.load reads a harmless dict from byte 0
        data = bytearray(p.read_bytes())
        plain = pickle.dumps({"weights": [1.0]}, protocol=2)
        data[: len(plain)] = plain
        p.write_bytes(bytes(data))
    with h5py.File(p, "r") as f:
        assert "Lambda" in f.attrs["model_config"]
    assert sniff_path(p).format == ("hdf5" if user_block == "zeros" else "pickle")
    assert _worst(p) == "dangerous"
    with pytest.raises(UnsafeInput):
        open_model(p)


def test_an_object_array_behind_a_long_npy_header_is_scanned(tmp_path: Path) -> None:
    # numpy.load(allow_pickle=True) reads a header of any length (max_header_size only
    # guards loads without pickles): 100 kB of padding put the pickle past assay's head
    import numpy as np

    def npy_v2(descr: bytes) -> bytes:
        header = b"{'descr': '%s', 'fortran_order': False, 'shape': (1,), }" % descr
        header += b" " * (100_000 - len(header) - 1) + b"\n"
        return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header

    data = npy_v2(b"|O")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(data + P2)
    assert _worst(bad) == "dangerous"
    npz = tmp_path / "bad.npz"
    npz.write_bytes(_zip([("arr_0.npy", data + P2)]))
    assert _worst(npz) == "dangerous"
    good = tmp_path / "good.npy"  # numeric, with the same long header: read, not flagged
    good.write_bytes(npy_v2(b"<f4") + np.arange(1, dtype="<f4").tobytes())
    from assay.models import open_model

    with open_model(good) as mf:
        assert list(mf.tensors) == ["good"] and mf.pickles == []


def test_a_picture_that_ends_with_a_keras_model_is_judged_as_one(tmp_path: Path) -> None:
    # keras.models.load_model opens a .keras with zipfile, which finds the archive behind
    # a picture's bytes; the scan walked its members one by one (config.json: a text file)
    from PIL import Image

    from assay.errors import UnsafeInput
    from assay.models import open_model
    from pickle_corpus import keras_zip
    from test_model_file_findings import scan_records

    buf = io.BytesIO()
    Image.linear_gradient("L").resize((32, 32)).save(buf, "PNG")
    bad, good, notes = tmp_path / "bad.keras", tmp_path / "good.keras", tmp_path / "notes.png"
    bad.write_bytes(buf.getvalue() + keras_zip(function=("os", "system")))
    good.write_bytes(buf.getvalue() + keras_zip())
    notes.write_bytes(buf.getvalue() + _zip([("a.txt", b"hello")]))
    assert zipfile.ZipFile(bad).read("config.json")  # what keras reads
    records = scan_records(bad, good, notes)
    assert records["bad.keras"].kind == "image"
    assert records["bad.keras"].model is not None and records["bad.keras"].model.safety.verdict == "dangerous"
    assert records["good.keras"].model is None and records["notes.png"].model is None
    with pytest.raises(UnsafeInput):
        open_model(bad)


def test_a_keras_archive_with_more_than_a_models_members_is_still_judged(tmp_path: Path) -> None:
    # a README beside config.json, or bytes before the archive, made the scan walk the
    # .keras as an archive of files (config.json: a text file); keras loads it all the same
    from pickle_corpus import keras_zip
    from test_model_file_findings import scan_records

    def with_readme(data: bytes) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(data))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name in src.namelist():
                z.writestr(name, src.read(name))
            z.writestr("README.txt", b"a model")
        return buf.getvalue()

    files = {
        "readme.keras": with_readme(keras_zip(function=("os", "system"))),
        "junk.keras": b"JUNK" * 10 + keras_zip(function=("os", "system")),
        "clean.keras": with_readme(keras_zip()),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    records = scan_records(*(tmp_path / n for n in files))
    verdicts = {n: records[n].model.safety.verdict if records[n].model else None for n in files}
    assert verdicts == {"readme.keras": "dangerous", "junk.keras": "dangerous", "clean.keras": None}, verdicts
    assert records["readme.keras"].kind == "archive"  # (still walked: its members are files too)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_members_are_read_as_zipfile_reads_them(tmp_path: Path, method: int) -> None:
    # numpy.load (npz) and keras.saving read members through zipfile, which inflates
    # bzip2 and LZMA members too: they were 'not scanned' (suspicious), now judged
    import warnings

    from assay.models.pickles import PickleReport, read_zip_entry, zip_entries
    from pickle_corpus import keras_zip

    npz = tmp_path / "arrays.npz"
    with zipfile.ZipFile(npz, "w") as z:
        z.writestr("arr_0.npy", _npy(b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", P2),
                   compress_type=method)
    assert _worst(npz) == "dangerous"
    src = zipfile.ZipFile(io.BytesIO(keras_zip(function=("os", "system"))))
    model = tmp_path / "model.keras"
    with zipfile.ZipFile(model, "w") as z:
        for name in src.namelist():
            z.writestr(name, src.read(name), compress_type=method)
    assert _worst(model) == "dangerous"
    # the declared size bounds the output, as for deflate
    data = b"\0" * 100_000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("big", data, compress_type=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [entry] = zip_entries(io.BytesIO(buf.getvalue()), "x", PickleReport(where="x"))
    assert read_zip_entry(io.BytesIO(buf.getvalue()), entry, "x", 1 << 20) == data
    from dataclasses import replace

    from assay.errors import DecodeError

    with pytest.raises(DecodeError, match="beyond its declared"):
        read_zip_entry(io.BytesIO(buf.getvalue()), replace(entry, size=1000), "x", 1 << 20)


# -- pickle.loads under other names, fed a header-less pickle ---------------------------


@pytest.mark.parametrize("loader", ["numpy.core.numeric loads", "numpy.ma.core loads", "numpy loads",
                                    "pandas.compat.pickle_compat loads", "mymodule loads"])
def test_a_nested_protocol0_pickle_is_scanned(loader: str) -> None:
    # numpy 1.x: numpy.loads, numpy.core.numeric.loads, numpy.ma.loads are pickle.loads;
    # the nested bytes carry no PROTO header (they were not looked into)
    from assay.models import scan_pickle_bytes

    module, name = loader.split()

    def s(x: str) -> bytes:
        return b"\x8c" + bytes([len(x)]) + x.encode()

    outer = b"\x80\x04" + s(module) + s(name) + b"\x93C" + bytes([len(P0)]) + P0 + b"\x85R."
    report = scan_pickle_bytes(outer, where="x")
    assert "os.getcwd" in report.dangerous_globals
    if module != "mymodule":
        assert f"{module}.{name}" in report.dangerous_globals


def test_array_bytes_that_parse_as_opcodes_are_no_nested_payload() -> None:
    import numpy as np

    from assay.models import scan_pickle_bytes

    for arr in (np.full(100_000, ord("N"), np.uint8), np.frombuffer(b"N." * 64, np.uint8),
                np.frombuffer(b"((((", np.uint8), np.arange(256, dtype=np.uint8)):
        for protocol in (2, 4, 5):
            report = scan_pickle_bytes(pickle.dumps(arr, protocol=protocol), where="x")
            assert report.verdict == "safe" and report.findings == [], (arr[:8], protocol)


def test_a_payload_before_a_compression_bomb_is_still_judged(tmp_path: Path) -> None:
    # joblib.load stops at the pickle's STOP and never inflates the zeros after it; the
    # walk stops at its bomb limit: what it read before the limit is judged
    import zlib
    from dataclasses import replace

    from assay.config import Limits, ScanSettings
    from assay.scan.run import run_scan

    pack = zlib.compressobj(9)
    data = pack.compress(P0) + pack.compress(b"\0" * (8 << 20)) + pack.flush()
    p = tmp_path / "model.joblib"
    p.write_bytes(data)
    records: dict[str, object] = {}
    settings = replace(ScanSettings(workers=1), limits=Limits(max_ratio_floor=1 << 20))
    run_scan([p], settings, None, lambda r: records.__setitem__(Path(r.path).name, r))
    member = records["model.joblib.decompressed"]
    assert member.model is not None and member.model.safety.verdict == "dangerous"  # type: ignore[attr-defined]
    assert any(e.code == "archive-bomb" for e in member.errors)  # type: ignore[attr-defined]
    assert any(e.code == "archive-bomb" for e in records["model.joblib"].errors)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_payload_at_the_head_of_an_oversized_member_is_judged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: int) -> None:
    # torch.load inflates data.pkl and unpickles up to its STOP: zeros after it only make
    # the member too large to scan whole (here the limit is lowered to 1 MiB)
    from assay.models import pickles

    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 1 << 20)
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", P2 + b"\0" * (3 << 20), compress_type=method)
        z.writestr("archive/version", b"3\n")
    assert _worst(p) == "dangerous"


def test_a_checkpoint_padded_past_the_member_limit_is_still_judged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch reads a zip of any number of members; past assay's limit (lowered here to 50)
    # the scan listed nothing and the walk stopped with an error
    from dataclasses import replace

    from assay.config import Limits, ScanSettings
    from assay.models import formats, pickle_zip
    from assay.scan.run import run_scan

    monkeypatch.setattr(pickle_zip, "MAX_ZIP_ENTRIES", 50)
    monkeypatch.setattr(formats, "MAX_ARCHIVE_NAMES", 50)
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", P2)
        z.writestr("archive/version", b"3\n")
        for i in range(60):
            z.writestr(f"archive/data/{i}", b"")
    assert _worst(p) == "dangerous"
    records: dict[str, object] = {}
    settings = replace(ScanSettings(workers=1), limits=Limits(max_archive_members=50))
    run_scan([p], settings, None, lambda r: records.__setitem__(Path(r.path).name, r))
    rec = records["model.pt"]
    assert rec.model is not None and rec.model.safety.verdict == "dangerous"  # type: ignore[attr-defined]


def test_what_the_pure_python_unpickler_reads_on_past_is_scanned() -> None:
    # joblib's unpickler is pickle._Unpickler: FLOAT goes through float(), which takes
    # '1_0' (the C unpickler refuses it); the payload after it runs in joblib.load
    from assay.models import scan_pickle_bytes

    assert pickle._loads(b"F1_0\n.") == 10.0  # type: ignore[attr-defined]
    report = scan_pickle_bytes(b"F1_0\n0" + P0, where="x")
    assert report.error is None and report.dangerous_globals == ["os.getcwd"]


def test_a_large_member_only_torchs_reader_lists_is_an_error_not_a_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # such members are read into memory for the walk: not past the pickle limit
    from assay.models import pickles
    from test_model_file_findings import scan_records

    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 64)
    data = _two_directories([(b"archive/data.pkl", P2 + b"\0" * 100), (b"archive/version", b"3\n")],
                            [(b"docs/readme.txt", b"notes, nothing to see\n" * 4), (b"docs/b.txt", b"x" * 9)])
    p = tmp_path / "model.pt"
    p.write_bytes(data)
    records = scan_records(p)
    [big] = [r for n, r in records.items() if n.startswith("data.pkl (only")]
    assert [e.code for e in big.errors] == ["too-large"]


def test_a_zip_member_marked_as_a_symlink_is_still_judged(tmp_path: Path) -> None:
    # torch's reader and zipfile read a member's bytes whatever its attributes say; the
    # walk took a member whose mode is a symbolic link for a link and never read it
    from test_model_file_findings import scan_records

    link = zipfile.ZipInfo("archive/data.pkl")
    link.external_attr = 0o120777 << 16
    real = zipfile.ZipInfo("docs/latest")
    real.external_attr = 0o120777 << 16
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(link, P2)
        z.writestr("archive/version", b"3\n")
        z.writestr("README.txt", b"a checkpoint")  # (not torch's layout: walked as an archive)
        z.writestr(real, b"../docs/v2")
    records = scan_records(p)
    assert records["data.pkl"].kind == "model" and records["data.pkl"].model.safety.verdict == "dangerous"
    assert records["latest"].kind == "link"  # a link that is a link stays one
