"""PyTorch pickle checkpoints (.ckpt .pt .pth .bin) read without torch and without
running them.

Two layouts exist. The zip layout (torch >= 1.6, and TorchScript archives) holds
``<prefix>/data.pkl`` whose persistent ids name storages stored raw in
``<prefix>/data/<key>``. The legacy layout is five consecutive pickles (magic number,
protocol, system info, data, storage keys) followed by each storage as an int64
element count and its raw bytes.

Every pickle is first scanned at the opcode level (:mod:`assay.models.pickles`);
a dangerous verdict stops here with :class:`assay.errors.UnsafeInput`. Otherwise the
data pickle is replayed by a restricted unpickler whose globals are inert stubs:
the tensor rebuilders only record (storage key, dtype, offset, shape, stride), and
unknown globals become placeholders that record their arguments. Nothing named by
the file is imported.
"""

from __future__ import annotations

import io
import mmap
import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ...config import Limits
from ...errors import DecodeError, InputError, UnsafeInput, UnsupportedFormat
from ..pickles import (
    MAX_PICKLE_BYTES,
    PickleReport,
    RefusedGlobal,
    RestrictedUnpickler,
    ZipEntry,
    classify_global,
    read_zip_entry,
    scan_file,
    zip_entries,
)
from . import DTYPES, MAX_DIMS, MAX_TENSORS, ModelFile, TensorInfo

__all__ = ["read_entry", "read_pickle_file", "read_torch_zip"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_WALK_NODES = 5_000_000  # objects visited while looking for tensors
MAX_WALK_DEPTH = 200

# torch storage classes and dtype objects -> safetensors dtype names
_STORAGE_DTYPES = {
    "FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16",
    "BFloat16Storage": "BF16", "LongStorage": "I64", "IntStorage": "I32",
    "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64", "ComplexDoubleStorage": "C128",
    "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2",
    "UInt16Storage": "U16", "UInt32Storage": "U32", "UInt64Storage": "U64",
}
_TORCH_DTYPES = {
    "float32": "F32", "float": "F32", "float64": "F64", "double": "F64", "float16": "F16",
    "half": "F16", "bfloat16": "BF16", "int64": "I64", "long": "I64", "int32": "I32",
    "int": "I32", "int16": "I16", "short": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "complex64": "C64", "cfloat": "C64", "complex128": "C128", "cdouble": "C128",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e8m0fnu": "F8_E8M0",
    "uint16": "U16", "uint32": "U32", "uint64": "U64",
}


# -- inert stubs the restricted unpickler hands out ------------------------------------


@dataclass(frozen=True)
class _StorageType:
    dtype: str  # "U8" for untyped storages (their numel counts bytes)
    untyped: bool = False


@dataclass(frozen=True)
class _DType:
    dtype: str


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    numel: int  # elements of dtype (bytes when untyped)
    untyped: bool


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str


class _Opaque:
    """Placeholder for an object whose class the file names but assay never imports.
    It accepts what an unpickler does to objects (call, state, items) and records it."""

    global_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None
        self.items: dict[Any, Any] = {}
        self.list: list[Any] = []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        if not hasattr(self, "items"):
            self.items = {}
        self.items[key] = value

    def append(self, value: Any) -> None:
        if not hasattr(self, "list"):
            self.list = []
        self.list.append(value)

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"<{self.global_name}>"


def _rebuild_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise ValueError("tensor rebuilt from something that is not a storage")
    return _Tensor(storage, offset, tuple(size), tuple(stride), storage.dtype)


def _rebuild_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _rg: Any, _hooks: Any, dtype: Any, *_: Any
) -> _Tensor:
    t = _rebuild_v2(storage, offset, size, stride)
    if not isinstance(dtype, _DType):
        raise ValueError("tensor rebuilt with an unknown dtype")
    return _Tensor(t.storage, t.offset, t.shape, t.stride, dtype.dtype)


def _first(x: Any, *_: Any) -> Any:
    return x


def _from_type_v2(func: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    # func came from find_class, so it is one of the stubs below: calling it is inert.
    return func(*args)


_BASE_STUBS: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_v2,
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "torch._utils._rebuild_parameter": _first,
    "torch._utils._rebuild_parameter_with_state": _first,
    "torch._tensor._rebuild_from_type_v2": _from_type_v2,
    "torch.Size": lambda *a: tuple(a[0]) if a else (),
    "torch.jit._pickle.build_intlist": _first,
    "torch.jit._pickle.build_doublelist": _first,
    "torch.jit._pickle.build_boollist": _first,
    "torch.jit._pickle.build_tensorlist": _first,
    "torch.jit._pickle.build_complexlist": _first,
    "torch.jit._pickle.restore_type_tag": _first,
    "torch.storage.UntypedStorage": _StorageType("U8", untyped=True),  # type: ignore[dict-item]
}
for _name, _dt in _STORAGE_DTYPES.items():
    _BASE_STUBS[f"torch.{_name}"] = _StorageType(_dt)  # type: ignore[assignment]
for _name, _dt in _TORCH_DTYPES.items():
    _BASE_STUBS[f"torch.{_name}"] = _DType(_dt)  # type: ignore[assignment]


class _Resolver:
    """The allow-list as find_class sees it: known rebuilders map to stubs; other
    globals that the policy does not call dangerous map to inert placeholder
    classes; dangerous ones resolve to None, so find_class refuses them."""

    def __init__(self) -> None:
        self.known: dict[str, Any] = dict(_BASE_STUBS)

    def __call__(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in self.known:
            return self.known[key]
        if len(self.known) > 100_000 or classify_global(module, name)[0] == "dangerous":
            return None
        cls = type("Opaque", (_Opaque,), {"global_name": key})
        self.known[key] = cls
        return cls


# -- unpickling ------------------------------------------------------------------------


def _unpickle(
    data: BinaryIO, where: str, persistent: Callable[[Any], Any] | None, label: str = ""
) -> Any:
    """Replay one pickle with inert stubs; ``label`` names the zip entry in messages."""
    at = f"{label}: " if label else ""
    try:
        return RestrictedUnpickler(data, _Resolver(), persistent).load()
    except RefusedGlobal as exc:
        raise UnsafeInput(where, f"{at}refused to rebuild: pickle names the global {exc.name}") from exc
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, KeyError,
            IndexError, OverflowError, struct.error, UnicodeDecodeError, RecursionError,
            MemoryError, Warning) as exc:
        # The message may quote the file's own bytes: control characters are escaped so
        # that the error stays one readable line.
        msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc)[:200])
        raise DecodeError(where, f"{at}malformed pickle: {type(exc).__name__}: {msg}") from exc


def _persistent_zip(pid: Any) -> _Storage:
    # ('storage', storage_type, key, location, numel)
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise ValueError(f"unsupported persistent id {str(pid)[:60]}")
    stype, key, _loc, numel = pid[1:5]
    if not isinstance(stype, _StorageType) or not isinstance(key, str) or not _nonneg(numel):
        raise ValueError("malformed storage persistent id")
    return _Storage(key, stype.dtype, numel, stype.untyped)


def _nonneg(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _refuse_if_dangerous(path: Path, reports: list[PickleReport]) -> None:
    bad = [r for r in reports if r.verdict == "dangerous"]
    if not bad:
        return
    items = []
    for r in bad:
        for f in r.findings:
            if f.severity == "dangerous":
                what = f.global_name or f.reason
                items.append(f"{what} ({r.where.rsplit(':', 1)[-1]} @ {f.offset})")
    shown = "; ".join(dict.fromkeys(items))
    raise UnsafeInput(path, f"dangerous pickle content, not loaded: {shown}", details=list(bad))


# -- walking the unpickled object graph ------------------------------------------------


def _walk(root: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Yield (dotted name, leaf) for tensors and simple scalars, iteratively and with
    a visited set: pickles can build self-referencing or very deep structures."""
    stack: list[tuple[str, Any, int]] = [("", root, 0)]
    seen: set[int] = set()
    visited = 0
    while stack:
        name, obj, depth = stack.pop()
        visited += 1
        if visited > MAX_WALK_NODES:
            raise DecodeError(where, "checkpoint object graph is too large to walk")
        if isinstance(obj, _Tensor | str | int | float | bool) or obj is None:
            yield name, obj
            continue
        if id(obj) in seen or depth >= MAX_WALK_DEPTH:
            continue
        seen.add(id(obj))
        children: list[tuple[str, Any]] = []
        if isinstance(obj, dict):
            children = [(str(k), v) for k, v in obj.items() if isinstance(k, str | int)]
        elif isinstance(obj, list | tuple):
            children = [(str(i), v) for i, v in enumerate(obj)]
        elif isinstance(obj, _Opaque):
            st = getattr(obj, "state", None)
            if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):
                st = st[1] if st[0] is None else {**(st[0] if isinstance(st[0], dict) else {}),
                                                  **st[1]}
            if isinstance(st, dict):
                children = [(str(k), v) for k, v in st.items() if isinstance(k, str)]
            children += [(str(k), v) for k, v in getattr(obj, "items", {}).items()
                         if isinstance(k, str)]
        for k, v in reversed(children):
            stack.append((f"{name}.{k}" if name else k, v, depth + 1))


_MODULE_SLOTS = frozenset({"_modules", "_parameters", "_buffers"})


def _collect(root: Any, where: str) -> tuple[list[tuple[str, _Tensor]], dict[str, Any]]:
    tensors: list[tuple[str, _Tensor]] = []
    scalars: dict[str, Any] = {}
    for name, leaf in _walk(root, where):
        if isinstance(leaf, _Tensor):
            # Whole-module pickles (torch.save(model)) nest weights in nn.Module
            # internals; name them as the module's state_dict() would.
            name = ".".join(p for p in name.split(".") if p not in _MODULE_SLOTS)
            tensors.append((name, leaf))
            if len(tensors) > MAX_TENSORS:
                raise DecodeError(where, f"more than {MAX_TENSORS} tensors")
        elif name and "." not in name and len(scalars) < 256:
            # Top-level plain values (epoch, global_step...) are training metadata.
            scalars[name] = leaf[:1024] if isinstance(leaf, str) else leaf
    # Training checkpoints (A1111, Lightning) wrap the weights in {"state_dict": ...}
    # next to optimizer states; the weights are the model, named as its state dict
    # names them (other key prefixes, e.g. "model.diffusion_model.", are kept: they
    # are the real names, the same a safetensors conversion keeps).
    inside = [(n[len("state_dict."):], t) for n, t in tensors if n.startswith("state_dict.")]
    if inside:
        scalars["tensor_root"] = "state_dict"
        if len(inside) < len(tensors):
            scalars["tensors_outside_state_dict"] = len(tensors) - len(inside)
        return inside, scalars
    return tensors, scalars


def _tensor_info(
    name: str, t: _Tensor, data_start: int, storage_bytes: int, source: str, entry: str | None,
    where: str,
) -> TensorInfo:
    if t.dtype not in DTYPES or DTYPES[t.dtype].bits % 8:
        raise DecodeError(where, f"tensor {name!r}: unsupported dtype {t.dtype}")
    item = DTYPES[t.dtype].bits // 8
    shape, stride, off = t.shape, t.stride, t.offset
    if (
        len(shape) > MAX_DIMS
        or len(stride) != len(shape)
        or not all(_nonneg(d) for d in shape)
        or not all(_nonneg(s) for s in stride)
        or not _nonneg(off)
    ):
        raise DecodeError(where, f"tensor {name!r}: malformed shape {shape} / stride {stride}")
    numel = 1
    for d in shape:
        numel *= d
    if numel == 0:
        extent = 0
    else:
        extent = 1 + sum((d - 1) * s for d, s in zip(shape, stride, strict=True))
    if (off + extent) * item > storage_bytes:
        raise DecodeError(
            where,
            f"tensor {name!r}: shape {list(shape)} stride {list(stride)} at offset {off} "
            f"reaches past its {storage_bytes}-byte storage",
        )
    contiguous = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        contiguous[i] = contiguous[i + 1] * shape[i + 1]
    is_contig = all(d == 1 or s == c for d, s, c in zip(shape, stride, contiguous, strict=True))
    return TensorInfo(
        name=name,
        dtype=t.dtype,
        shape=tuple(shape),
        offset=data_start + off * item,
        nbytes=(numel if is_contig else extent) * item,
        source=source,
        strides=None if is_contig else tuple(stride),
        entry=entry,
    )


# -- zip layout --------------------------------------------------------------------------


def read_torch_zip(path: Path, *, limits: Limits = Limits()) -> ModelFile:  # noqa: B008
    """A torch.save zip checkpoint or a TorchScript archive."""
    path = Path(path)
    where = str(path)
    reports = scan_file(path)
    _refuse_if_dangerous(path, reports)
    try:
        with open(path, "rb") as f:
            scratch = PickleReport(where=where)  # container problems are in `reports`
            entries: dict[str, ZipEntry] = {}
            for e in zip_entries(f, where, scratch):
                entries.setdefault(e.name, e)  # first copy wins, as in torch's reader
            if not entries:
                raise UnsupportedFormat(path, "empty zip archive, not a PyTorch checkpoint")
            prefix = next(iter(entries)).split("/", 1)[0]
            data_pkl = entries.get(f"{prefix}/data.pkl")
            if data_pkl is None:
                raise UnsupportedFormat(path, "zip archive without <name>/data.pkl: not a PyTorch checkpoint")
            torchscript = f"{prefix}/constants.pkl" in entries or any(
                n.startswith(f"{prefix}/code/") for n in entries
            )
            byteorder = b"little"
            if f"{prefix}/byteorder" in entries:
                byteorder = read_zip_entry(f, entries[f"{prefix}/byteorder"], where, 64).strip()
            if byteorder != b"little":
                raise UnsupportedFormat(path, f"byte order {byteorder[:16]!r} is not supported")
            metadata: dict[str, Any] = {"archive_name": prefix}
            if torchscript:
                # TorchScript source runs under torch.jit.load (and torch.load hands such
                # archives to it); assay lists it but does not judge it.
                metadata["torchscript_code_files"] = sum(
                    1 for n in entries if n.startswith(f"{prefix}/code/") and n.endswith(".py")
                )
            if f"{prefix}/version" in entries:
                ver = read_zip_entry(f, entries[f"{prefix}/version"], where, 64)
                metadata["version"] = ver.decode("ascii", "replace").strip()

            tensors: dict[str, TensorInfo] = {}
            sources = [("data", "data.pkl", "")]
            if torchscript:
                sources.append(("constants", "constants.pkl", "constants."))
            for folder, pkl, name_prefix in sources:
                entry = entries.get(f"{prefix}/{pkl}")
                if entry is None:
                    continue
                raw = read_zip_entry(f, entry, where, MAX_PICKLE_BYTES)
                root = _unpickle(io.BytesIO(raw), where, _persistent_zip, entry.name)
                found, scalars = _collect(root, where)
                if folder == "data":
                    metadata.update(scalars)
                for name, t in found:
                    key = f"{prefix}/{folder}/{t.storage.key}"
                    se = entries.get(key)
                    if se is None:
                        raise DecodeError(path, f"tensor {name!r}: storage {key!r} is missing")
                    _check_storage_size(path, name, t.storage, se.size)
                    stored = se.method == 0
                    info = _tensor_info(
                        name_prefix + name, t, se.data_offset if stored else 0, se.size,
                        where, None if stored else se.name, where,
                    )
                    tensors.setdefault(info.name, info)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    return ModelFile(
        path=path,
        format="torchscript" if torchscript else "torch-zip",
        tensors=tensors,
        metadata=metadata,
        pickles=reports,
    )


def _check_storage_size(path: Path, name: str, s: _Storage, nbytes: int) -> None:
    item = 1 if s.untyped else DTYPES[s.dtype].bits // 8
    if s.numel * item != nbytes and not (s.numel == 0 and nbytes >= 0):
        raise DecodeError(
            path, f"tensor {name!r}: storage {s.key!r} declares {s.numel} x {item} bytes "
            f"but holds {nbytes}",
        )


def read_entry(path: Path, name: str) -> bytes:
    """The bytes of one (compressed) zip entry; ModelFile.array uses it for entries
    that cannot be memory-mapped."""
    with open(path, "rb") as f:
        for e in zip_entries(f, str(path), PickleReport(where=str(path))):
            if e.name == name:
                return read_zip_entry(f, e, str(path), MAX_PICKLE_BYTES)
    raise DecodeError(path, f"zip entry {name!r} not found")


# -- legacy layout and plain pickles -----------------------------------------------------


def read_pickle_file(path: Path, *, limits: Limits = Limits()) -> ModelFile:  # noqa: B008
    """A legacy torch.save file, or any other pickle (scanned, not rebuilt)."""
    path = Path(path)
    reports = scan_file(path)
    _refuse_if_dangerous(path, reports)
    try:
        with open(path, "rb") as f:
            if not _starts_with_torch_magic(f):
                # Not a torch checkpoint: report its pickles, rebuild nothing.
                return ModelFile(path=path, format="pickle", pickles=reports)
            # Read through a memory map: a forged length field then cannot make
            # the unpickler allocate what it claims.
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _read_legacy(path, mm, reports)  # type: ignore[arg-type]
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc


_LEGACY_HEAD = re.compile(rb"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19\.")


def _starts_with_torch_magic(f: BinaryIO) -> bool:
    f.seek(0)
    head = f.read(16)
    f.seek(0)
    return bool(_LEGACY_HEAD.match(head))


def _read_legacy(path: Path, f: BinaryIO, reports: list[PickleReport]) -> ModelFile:
    where = str(path)
    f.seek(0, 2)  # mmap.seek returns None: ask tell()
    size = f.tell()
    f.seek(0)
    magic = _unpickle(f, where, None)
    protocol = _unpickle(f, where, None)
    sys_info = _unpickle(f, where, None)
    if magic != _LEGACY_MAGIC or protocol != 1001:
        raise UnsupportedFormat(path, f"legacy torch file with protocol {str(protocol)[:20]}")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise UnsupportedFormat(path, "big-endian legacy checkpoint is not supported")
    storages: dict[str, _Storage] = {}

    classes: list[str] = []

    def persistent(pid: Any) -> Any:
        # Whole-model saves name each nn.Module class as ('module', class, source
        # file, source text); torch.load only compares the text with the installed
        # source. The class is one of the resolver's inert stubs: hand it back.
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            name = getattr(pid[1], "global_name", None)
            if not isinstance(name, str):
                raise ValueError("module persistent id without a class")
            if name not in classes:
                classes.append(name)
            return pid[1]
        # ('storage', storage_type, root_key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"unsupported persistent id {str(pid)[:60]}")
        if len(pid) > 5 and pid[5] is not None:
            raise ValueError("storage views (pre-1.0 checkpoints) are not supported")
        s = _persistent_zip(pid[:5])
        storages.setdefault(s.key, s)
        return storages[s.key]

    root = _unpickle(f, where, persistent)
    keys = _unpickle(f, where, None)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise DecodeError(path, "legacy checkpoint: storage key list is malformed")
    if len(set(keys)) != len(keys):
        raise DecodeError(path, "legacy checkpoint: storage keys repeat")
    located: dict[str, tuple[int, int]] = {}  # key -> (data offset, bytes)
    pos = f.tell()
    for key in keys:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise DecodeError(path, f"legacy checkpoint: storage {key!r} header past end of file")
        (count,) = struct.unpack("<q", head)
        s = storages.get(key)
        item = 1 if s is None or s.untyped else DTYPES[s.dtype].bits // 8
        nbytes = count * item
        if count < 0 or pos + 8 + nbytes > size:
            raise DecodeError(path, f"legacy checkpoint: storage {key!r} runs past the end of file")
        located[key] = (pos + 8, nbytes)
        pos = pos + 8 + nbytes
    found, scalars = _collect(root, where)
    tensors: dict[str, TensorInfo] = {}
    for name, t in found:
        if t.storage.key not in located:
            raise DecodeError(path, f"tensor {name!r}: storage {t.storage.key!r} is missing")
        start, nbytes = located[t.storage.key]
        _check_storage_size(path, name, t.storage, nbytes)
        info = _tensor_info(name, t, start, nbytes, where, None, where)
        tensors.setdefault(name, info)
    metadata = dict(scalars)
    if classes:
        metadata["module_classes"] = classes[:200]
    if isinstance(sys_info, dict):
        metadata["sys_info"] = {str(k): v for k, v in sys_info.items() if isinstance(v, int | bool)}
    return ModelFile(path=path, format="torch-legacy", tensors=tensors, metadata=metadata,
                     pickles=reports)
