"""numpy ``.npy`` and ``.npz`` files, read without ``numpy.load``.

A ``.npy`` is a magic string, a header (a Python literal dict: ``descr``,
``fortran_order``, ``shape``) and the raw array. Object arrays (``descr`` ``|O``) are
a pickle after the header, which ``numpy.load(allow_pickle=True)`` unpickles: those
are scanned like any pickle and never rebuilt. Numeric arrays become one tensor each.
A ``.npz`` is a zip of ``.npy`` members; each member is a tensor named after it.
"""

from __future__ import annotations

import mmap
import zipfile
from pathlib import Path
from typing import Any

from ...errors import DecodeError, InputError, UnsafeInput
from ..pickles import (
    MAX_NPY_HEADER,
    PickleReport,
    npy_header,
    npy_header_end,
    read_zip_entry,
    scan_file,
    zip_entries,
)
from . import DTYPES, MAX_DIMS, ModelFile, TensorInfo, tensor_nbytes

__all__ = ["read_npy", "read_npz"]

# numpy type strings -> safetensors dtype names (byte order must be little or none)
_DTYPES = {
    "f2": "F16", "f4": "F32", "f8": "F64", "i1": "I8", "i2": "I16", "i4": "I32", "i8": "I64",
    "u1": "U8", "u2": "U16", "u4": "U32", "u8": "U64", "b1": "BOOL", "c8": "C64", "c16": "C128",
}
NPY_HEAD_BYTES = 64 * 1024


def _refuse_if_dangerous(path: Path, reports: list[PickleReport]) -> None:
    bad = [r for r in reports if r.verdict == "dangerous"]
    if bad:
        shown = "; ".join(dict.fromkeys(g for r in bad for g in r.dangerous_globals)) or "see findings"
        raise UnsafeInput(path, f"dangerous pickle in a numpy object array, not loaded: {shown}",
                          details=bad)


def _tensor(name: str, header: dict[str, Any], data_offset: int, available: int, where: str,
            entry: str | None) -> TensorInfo | None:
    """The tensor a numeric header describes; None for object or structured arrays."""
    descr, shape = header.get("descr"), header.get("shape")
    if not isinstance(descr, str) or not isinstance(shape, tuple):
        return None
    order, code = descr[:1], descr[1:]
    if order not in "<|=" or code not in _DTYPES:
        return None  # big-endian, strings, datetimes, objects: not tensors
    if len(shape) > MAX_DIMS or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise DecodeError(where, f"array {name!r}: malformed shape {shape!r}")
    dtype = _DTYPES[code]
    nbytes = tensor_nbytes(dtype, shape) or 0
    if nbytes > available:
        raise DecodeError(where, f"array {name!r}: shape {list(shape)} needs {nbytes} bytes, "
                          f"{available} follow its header")
    strides = None
    if header.get("fortran_order") and len(shape) > 1:
        # Column-major: element strides run the other way round.
        acc, rev = 1, []
        for d in shape:
            rev.append(acc)
            acc *= d
        strides = tuple(rev)
    assert dtype in DTYPES
    return TensorInfo(name=name, dtype=dtype, shape=shape, offset=data_offset, nbytes=nbytes,
                      source=where, strides=strides, entry=entry)


def _head_bytes(first: bytes) -> int:
    """How much of a .npy to read for its header: all of it (numpy reads a header of any
    length when it may unpickle), within MAX_NPY_HEADER."""
    return min(max(NPY_HEAD_BYTES, npy_header_end(first) or 0), MAX_NPY_HEADER)


def read_npy(path: Path) -> ModelFile:
    path = Path(path)
    where = str(path)
    reports = scan_file(path)
    _refuse_if_dangerous(path, reports)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                parsed = npy_header(mm[: _head_bytes(mm[:12])])
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    if parsed is None:
        raise DecodeError(path, "malformed .npy header")
    header, start = parsed
    tensors: dict[str, TensorInfo] = {}
    t = _tensor(path.stem, header, start, size - start, where, None)
    if t is not None:
        tensors[t.name] = t
    meta = {"npy_descr": str(header.get("descr"))[:200]}
    return ModelFile(path=path, format="npy", tensors=tensors, metadata=meta, pickles=reports)


def read_npz(path: Path) -> ModelFile:
    path = Path(path)
    where = str(path)
    reports = scan_file(path)
    _refuse_if_dangerous(path, reports)
    tensors: dict[str, TensorInfo] = {}
    try:
        with open(path, "rb") as f:
            for e in zip_entries(f, where, PickleReport(where=where)):
                if not e.name.endswith(".npy") or e.flags & 0x1:
                    continue
                name = e.name[: -len(".npy")]
                if e.method == zipfile.ZIP_STORED:
                    f.seek(e.data_offset)
                    first = f.read(12)
                    f.seek(e.data_offset)
                    head = f.read(min(_head_bytes(first), e.size))
                else:
                    data = read_zip_entry(f, e, where, 1 << 30)
                    head = data[: _head_bytes(data[:12])]
                parsed = npy_header(head)
                if parsed is None:
                    raise DecodeError(path, f"member {e.name!r}: malformed .npy header")
                header, start = parsed
                stored = e.method == zipfile.ZIP_STORED
                t = _tensor(name, header, (e.data_offset if stored else 0) + start, e.size - start,
                            where, None if stored else e.name)
                if t is not None:
                    tensors.setdefault(name, t)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    return ModelFile(path=path, format="npz", tensors=tensors, pickles=reports)
