"""GGUF reader: a bounded structural check of our own, then the ``gguf`` package.

``gguf.GGUFReader`` trusts the counts in the file: a header that claims 2**60
key/values or an array of 2**60 strings makes it loop for ever or allocate without
bound. So the whole header (key/values and tensor infos) is first walked here with
every count checked against the bytes left in the file, and only a file that passes
is handed to GGUFReader, whose parsed fields give the metadata values.

Shapes are reported in numpy order: GGUF lists dimensions fastest-first (ggml's
``ne[0]`` is the row length), so they are reversed.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DecodeError, InputError, UnsafeInput, UnsupportedFormat
from . import MAX_TENSORS, ModelFile, TensorInfo

# gguf's reader costs ~50 us a key/value and ~70 us a tensor: at a million of either a
# 30-75 MB file took a minute of CPU in `assay model` and in a scan. Real files hold tens
# of key/values (a vocabulary is one array) and at most a few thousand tensors (~14,000
# for a mixture of 128 experts stored one by one).
MAX_KV = 65_536
MAX_GGUF_TENSORS = min(MAX_TENSORS, 65_536)
MAX_ARRAY = 16_000_000  # elements in one metadata array (vocabularies are ~10**5)
MAX_ARRAY_KEPT = 1024  # longer arrays are summarised in ModelFile.metadata
MAX_STRING = 64 * 1024**2
MAX_GGUF_DIMS = 8  # ggml has 4; leave room, refuse nonsense
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_NATIVE = {"F32": "F32", "F16": "F16", "BF16": "BF16", "F64": "F64", "I8": "I8",
           "I16": "I16", "I32": "I32", "I64": "I64"}


class _Cursor:
    """Bounds-checked little-endian reads over a memory map."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.path = path

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise DecodeError(self.path, f"GGUF {what} at byte {self.pos} runs past the end of the file")

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self, what: str) -> int:
        self.need(8, what)
        (v,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return int(v)

    def string(self, what: str) -> str:
        n = self.u64(what + " length")
        if n > MAX_STRING:
            raise DecodeError(self.path, f"GGUF {what} claims {n} bytes (limit {MAX_STRING})")
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", "replace")

    def skip_value(self, vtype: int, what: str, depth: int = 0) -> None:
        if vtype in _SCALAR:
            self.need(_SCALAR[vtype], what)
            self.pos += _SCALAR[vtype]
        elif vtype == _STRING:
            n = self.u64(what + " length")
            self.need(n, what)
            self.pos += n
        elif vtype == _ARRAY:
            if depth > 2:
                raise DecodeError(self.path, f"GGUF {what}: arrays nested too deeply")
            etype = self.u32(what + " element type")
            count = self.u64(what + " element count")
            if count > MAX_ARRAY:
                raise DecodeError(self.path, f"GGUF {what}: array claims {count} elements (limit {MAX_ARRAY})")
            if etype in _SCALAR:
                self.need(count * _SCALAR[etype], what)
                self.pos += count * _SCALAR[etype]
            elif etype in (_STRING, _ARRAY):
                # each element needs at least 8 bytes: a lying count fails here, fast
                self.need(count * 8, what)
                for _ in range(count):
                    self.skip_value(etype, what, depth + 1)
            else:
                raise DecodeError(self.path, f"GGUF {what}: unknown array element type {etype}")
        else:
            raise DecodeError(self.path, f"GGUF {what}: unknown value type {vtype}")


def read_gguf(path: Path) -> ModelFile:
    path = Path(path)
    try:
        import gguf  # noqa: F401 - numpy-only; optional at install time
    except ImportError as exc:
        raise UnsupportedFormat(path, "reading GGUF needs the 'gguf' package (pip install gguf)") from exc
    try:
        data = np.memmap(path, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    cur = _Cursor(memoryview(data), path)
    cur.need(4, "magic")
    if bytes(cur.buf[:4]) != b"GGUF":
        raise DecodeError(path, "not a GGUF file (bad magic)")
    cur.pos = 4
    version = cur.u32("version")
    if version & 0xFFFF == 0 and version:
        raise UnsupportedFormat(path, "big-endian GGUF is not supported")
    if version not in (2, 3):
        raise UnsupportedFormat(path, f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("key/value count")
    # Each key/value takes >= 13 bytes and each tensor info >= 24: lying counts stop here.
    if n_kv > MAX_KV or n_tensors > MAX_GGUF_TENSORS:
        raise DecodeError(path, f"GGUF header claims {n_kv:,} key/values and {n_tensors:,} tensors, more than "
                                f"assay reads ({MAX_KV:,} and {MAX_GGUF_TENSORS:,}; "
                                "real models hold a few thousand at most)")
    if n_kv * 13 + n_tensors * 24 > cur.size:
        raise DecodeError(
            path, f"GGUF header claims {n_kv} key/values and {n_tensors} tensors, more than "
            f"the {cur.size}-byte file can hold",
        )
    alignment = 32
    for i in range(n_kv):
        key = cur.string(f"key #{i}")
        vtype = cur.u32(f"type of {key!r}")
        if key == "general.alignment" and vtype == 4:
            cur.need(4, key)
            (alignment,) = struct.unpack_from("<I", cur.buf, cur.pos)
        cur.skip_value(vtype, f"value of {key!r}")
    if alignment == 0 or alignment & (alignment - 1):
        raise DecodeError(path, f"GGUF general.alignment {alignment} is not a power of two")

    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    infos: list[tuple[str, tuple[int, ...], str, int, int]] = []
    for i in range(n_tensors):
        name = cur.string(f"tensor name #{i}")
        ndim = cur.u32(f"dimension count of {name!r}")
        if ndim > MAX_GGUF_DIMS:
            raise DecodeError(path, f"GGUF tensor {name!r} has {ndim} dimensions")
        dims = [cur.u64(f"dimension of {name!r}") for _ in range(ndim)]
        ttype = cur.u32(f"type of {name!r}")
        offset = cur.u64(f"offset of {name!r}")
        try:
            qtype = GGMLQuantizationType(ttype)
            block, tsize = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise DecodeError(path, f"GGUF tensor {name!r}: unknown tensor type {ttype}") from None
        numel = 1
        for d in dims:
            numel *= d
        if dims and dims[0] % block:
            raise DecodeError(path, f"GGUF tensor {name!r}: row of {dims[0]} is not a multiple of "
                              f"the {qtype.name} block size {block}")
        nbytes = numel // block * tsize
        if offset % alignment:
            raise DecodeError(path, f"GGUF tensor {name!r}: offset {offset} is not {alignment}-aligned")
        infos.append((name, tuple(reversed(dims)), qtype.name, offset, nbytes))
    data_start = -(-cur.pos // alignment) * alignment
    data_len = cur.size - data_start
    seen: set[str] = set()
    end_prev, prev = 0, ""
    for name, _, _, offset, nbytes in sorted(infos, key=lambda t: (t[3], t[4])):
        if name in seen:
            raise DecodeError(path, f"GGUF tensor name {name!r} repeats")
        seen.add(name)
        if offset + nbytes > data_len:
            raise DecodeError(path, f"GGUF tensor {name!r}: data [{offset}, {offset + nbytes}) is "
                              f"past the end of the data section ({data_len} bytes)")
        if offset < end_prev:
            raise DecodeError(path, f"GGUF tensor {name!r} overlaps tensor {prev!r}")
        end_prev, prev = offset + nbytes, name

    metadata = _fields(path)
    src = str(path)
    report = _template_report(path, metadata)
    tensors = {
        name: TensorInfo(name, _NATIVE.get(dt, dt), shape, data_start + off, nbytes, src)
        for name, shape, dt, off, nbytes in infos
    }
    return ModelFile(path=path, format="gguf", tensors=tensors, metadata=metadata,
                     data_offset=data_start, pickles=[report] if report.findings else [])


def _template_report(path: Path, metadata: dict[str, Any]) -> Any:
    """The chat templates' findings; refused (UnsafeInput) when one is dangerous."""
    from ..chat_templates import template_findings
    from ..pickles import PickleReport

    report = PickleReport(where=str(path))
    for key, value in metadata.items():
        if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template."):
            for f in template_findings(value, key):
                report.add(f)
    if report.verdict == "dangerous":
        raise UnsafeInput(path, report.findings[0].reason, details=[report])
    return report


def _fields(path: Path) -> dict[str, Any]:
    """Key/value metadata decoded by gguf.GGUFReader (only called on a file whose
    counts were checked, so its loops are bounded)."""
    from gguf import GGUFReader, GGUFValueType

    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, KeyError, TypeError, OSError) as exc:
        raise DecodeError(path, f"GGUF metadata unreadable: {exc}") from exc
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            if field.types and field.types[0] == GGUFValueType.ARRAY and len(field.data) > MAX_ARRAY_KEPT:
                out[key] = {"array_of": field.types[-1].name, "length": len(field.data)}
            else:
                out[key] = field.contents()
        except (ValueError, IndexError, UnicodeDecodeError, TypeError) as exc:
            raise DecodeError(path, f"GGUF field {key!r} unreadable: {exc}") from exc
    return out


def dequantize(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Float32 values of a quantized GGUF tensor (raw block bytes in, a copy out)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as _deq

    try:
        qtype = GGMLQuantizationType[dtype]
        return np.asarray(_deq(raw, qtype), dtype=np.float32).reshape(shape)
    except (KeyError, NotImplementedError, ValueError) as exc:
        raise UnsupportedFormat("<array>", f"cannot convert {dtype} to float32: {exc}") from exc
