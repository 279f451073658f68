"""Model-file readers that never execute their input.

Every reader validates the container before trusting one offset, and describes the
weights as :class:`TensorInfo` records (dtype, shape, absolute byte offset). Tensor
data is only ever touched through :meth:`ModelFile.array`, a numpy view over a
read-only memory map, so opening a 10 GB checkpoint costs a header parse.

``open_model`` decides the format by content (:mod:`assay.sniff`), never by the
file name; the name is used only to word a better error message.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ...config import Limits
from ...errors import DecodeError, InputError, TooLarge, UnsafeInput, UnsupportedFormat
from ..pickles import PickleReport

if TYPE_CHECKING:  # numpy loads when a tensor is read, not to describe a file (start-up)
    import numpy as np

__all__ = [
    "DTYPES",
    "is_model_archive",
    "model_archive_kind",
    "DType",
    "ModelFile",
    "TensorInfo",
    "open_model",
    "tensor_nbytes",
]

# Bounds that are not user settings: they only stop hostile files from costing
# unbounded memory or time. Real files are orders of magnitude below them.
MAX_TENSORS = 1_000_000
MAX_DIMS = 64
MAX_CONFIG_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class DType:
    """A tensor element type, named as safetensors names it.

    ``bits`` is the storage size of one element; ``numpy`` the numpy dtype of the
    raw view (bit patterns for types numpy lacks, e.g. BF16 -> uint16).
    """

    name: str
    bits: int
    numpy: str
    native: bool  # numpy's view is the real value, not a bit pattern


# safetensors' dtype names; torch and gguf readers map their types onto these.
DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("BOOL", 8, "bool", True),
        DType("U8", 8, "<u1", True),
        DType("I8", 8, "<i1", True),
        DType("U16", 16, "<u2", True),
        DType("I16", 16, "<i2", True),
        DType("U32", 32, "<u4", True),
        DType("I32", 32, "<i4", True),
        DType("U64", 64, "<u8", True),
        DType("I64", 64, "<i8", True),
        DType("F16", 16, "<f2", True),
        DType("F32", 32, "<f4", True),
        DType("F64", 64, "<f8", True),
        DType("C64", 64, "<c8", True),
        DType("C128", 128, "<c16", True),
        DType("BF16", 16, "<u2", False),
        DType("F8_E4M3", 8, "<u1", False),
        DType("F8_E5M2", 8, "<u1", False),
        DType("F8_E8M0", 8, "<u1", False),
        # Sub-byte types are packed; they are only available as raw bytes.
        DType("F6_E2M3", 6, "<u1", False),
        DType("F6_E3M2", 6, "<u1", False),
        DType("F4", 4, "<u1", False),
    )
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it is; never its values.

    ``offset`` is absolute in ``source`` (for zip checkpoints, in the file too: torch
    stores entries uncompressed, so the entry's data offset is added) unless
    ``entry`` names a compressed zip entry, in which case it is relative to that
    entry's uncompressed bytes. ``strides`` (in elements) is set only for tensors
    that are not C-contiguous views of their storage (torch checkpoints).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    source: str
    strides: tuple[int, ...] | None = None
    entry: str | None = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def tensor_nbytes(dtype: str, shape: tuple[int, ...]) -> int | None:
    """Bytes a C-contiguous tensor needs, or None when sub-byte packing does not
    end on a byte boundary. Python ints do not overflow, so absurd shapes simply
    give a huge number the callers compare with the file size."""
    n = 1
    for d in shape:
        n *= d
    bits = n * DTYPES[dtype].bits
    return bits // 8 if bits % 8 == 0 else None


@dataclass(eq=False)
class ModelFile:
    """An opened model: its format, its tensors (name -> TensorInfo, in file order),
    its metadata, and the safety reports of every pickle found inside.

    Folders (diffusers, PEFT) hold one ModelFile per component in ``components``
    and list every tensor as ``"component/name"`` in ``tensors``.
    """

    path: Path
    format: str
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    data_offset: int | None = None
    components: dict[str, ModelFile] = field(default_factory=dict)
    pickles: list[PickleReport] = field(default_factory=list)
    _maps: dict[str, mmap.mmap] = field(default_factory=dict, repr=False)
    _entries: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)

    # -- data access -------------------------------------------------------------

    def array(self, name: str, *, convert: bool = False) -> np.ndarray:
        """The tensor as a read-only numpy array over a memory map (no copy).

        Types numpy lacks (BF16, F8 kinds) come back as their raw bit patterns
        (uint16 / uint8) unless ``convert=True``, which returns float32 (a copy).
        Sub-byte types (F4, F6) come back as their packed bytes, 1-D.
        """
        try:
            info = self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None
        if convert and info.dtype in ("C64", "C128"):
            raise UnsupportedFormat(info.source, f"tensor {name!r}: complex values have no float32 form")
        try:
            return self._array(info, convert)
        except ValueError as exc:  # the file shrank after it was opened and validated
            raise DecodeError(info.source, f"tensor {name!r} lies outside the file: {exc}") from exc

    def _array(self, info: TensorInfo, convert: bool) -> np.ndarray:
        import numpy as np

        name = info.name
        dt = DTYPES.get(info.dtype)
        buf = self._buffer(info)
        if dt is None:
            # Block-quantized GGUF types (Q4_K, Q8_0 ...): raw blocks, or dequantized.
            raw = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=info.offset)
            if not convert:
                return raw
            from .gguf import dequantize

            return dequantize(raw, info.dtype, info.shape)
        if dt.bits < 8 or dt.bits % 8:
            raw = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=info.offset)
            if convert:
                raise UnsupportedFormat(
                    info.source, f"tensor {name!r}: no float conversion for packed {info.dtype}"
                )
            return raw
        npdt = np.dtype(dt.numpy)
        if info.strides is None:
            arr = np.frombuffer(buf, dtype=npdt, count=info.numel, offset=info.offset)
            arr = arr.reshape(info.shape)
        else:
            # Readers validated that every element addressed lies inside the storage.
            base = np.frombuffer(
                buf, dtype=npdt, count=info.nbytes // npdt.itemsize, offset=info.offset
            )
            arr = np.lib.stride_tricks.as_strided(
                base,
                shape=info.shape,
                strides=tuple(s * npdt.itemsize for s in info.strides),
                writeable=False,
            )
        return to_float32(arr, info.dtype) if convert else arr

    def _buffer(self, info: TensorInfo) -> Any:
        if info.entry is not None:
            key = (info.source, info.entry)
            if key not in self._entries:
                from .torch_pickle import read_entry  # local: only zip readers need it

                self._entries[key] = read_entry(Path(info.source), info.entry)
            return self._entries[key]
        mm = self._maps.get(info.source)
        if mm is None:
            with open(info.source, "rb") as f:
                if info.nbytes == 0 and f.seek(0, 2) == 0:
                    return b""
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps[info.source] = mm
        return mm

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        for comp in self.components.values():
            comp.close()
        for mm in self._maps.values():
            try:
                mm.close()
            except BufferError:
                # Arrays handed out still point into the map; it is released when
                # the last of them is garbage-collected.
                pass
        self._maps.clear()
        self._entries.clear()

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- conversions to float32 ----------------------------------------------------------


@cache
def _tables() -> dict[str, np.ndarray]:
    """Lookup tables of the 8-bit float types (built on first use)."""
    import numpy as np

    # OCP FP8 E4M3 ("fn"): bias 7, no infinities, S.1111.111 is NaN.
    e4m3 = np.empty(256, dtype=np.float32)
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        exp = (b >> 3) & 0xF
        man = b & 0x7
        if exp == 0xF and man == 0x7:
            e4m3[b] = np.nan
        elif exp == 0:
            e4m3[b] = sign * (man / 8.0) * 2.0**-6
        else:
            e4m3[b] = sign * (1.0 + man / 8.0) * 2.0 ** (exp - 7)
    return {
        "F8_E4M3": e4m3,
        # E5M2 is the top byte of an IEEE half, so numpy's float16 decodes it exactly.
        "F8_E5M2": (np.arange(256, dtype=np.uint16) << 8).view(np.float16).astype(np.float32),
        # E8M0: a bare exponent (bias 127); 0xFF is NaN.
        "F8_E8M0": np.where(
            np.arange(256) == 255, np.nan, np.exp2(np.arange(256, dtype=np.float64) - 127)
        ).astype(np.float32),
    }


def to_float32(arr: np.ndarray, dtype: str) -> np.ndarray:
    """Decode a raw view of ``dtype`` into float32 values (a new array)."""
    import numpy as np

    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if dtype in ("F8_E4M3", "F8_E5M2", "F8_E8M0"):
        return _tables()[dtype][arr]
    return arr.astype(np.float32)


# -- entry point -----------------------------------------------------------------------

_PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle", ".th", ".model"}


def open_model(path: Path, *, limits: Limits = Limits()) -> ModelFile:  # noqa: B008
    """Open a model file or folder without executing anything in it.

    Raises an :class:`assay.errors.InputError` subclass naming the file and the
    reason for anything malformed, unsupported or unsafe (a pickle whose safety scan
    is "dangerous" raises :class:`assay.errors.UnsafeInput`, listing the globals).
    """
    from ...sniff import sniff_path

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    try:
        sniffed = sniff_path(path)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    if path.is_dir():
        if sniffed.format == "tf-savedmodel":
            from .tf_savedmodel import read_saved_model

            return read_saved_model(path / "saved_model.pb")
        if sniffed.format in ("diffusers", "peft", "transformers"):
            from .folders import open_folder

            return open_folder(path, sniffed.format, limits=limits)
        raise UnsupportedFormat(
            path, "folder is neither a diffusers pipeline (model_index.json), a PEFT adapter "
            "(adapter_config.json) nor a Hugging Face model folder (config.json and weights)"
        )
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise TooLarge(path, f"{size} bytes exceeds the limit of {limits.max_file_bytes}")
    fmt = sniffed.format
    if fmt == "git-lfs-pointer":
        raise UnsupportedFormat(path, f"a Git LFS pointer, not the model ({lfs_pointer(path)}): the "
                                "repository was cloned without its LFS files; `git lfs pull` fetches them")
    if fmt in ("safetensors", "gguf"):
        from ..pickles import scan_file

        polyglot = scan_file(path)  # (empty unless the header's first bytes also start a pickle)
        if polyglot:
            from .torch_pickle import _refuse_if_dangerous

            _refuse_if_dangerous(path, polyglot)
    else:
        polyglot = []
    if fmt == "safetensors" or (fmt == "unknown" and path.suffix.lower() == ".safetensors"):
        # A file named .safetensors that does not sniff as one still goes to the
        # reader so that the user learns exactly what is wrong with its header.
        from .safetensors import read_safetensors

        mf = read_safetensors(path)
        mf.pickles = polyglot or mf.pickles
        return mf
    if fmt == "onnx" or (fmt == "unknown" and path.suffix.lower() == ".onnx"):
        # (a file named .onnx that does not sniff as one: the reader says what is wrong)
        from .onnx import read_onnx

        return read_onnx(path)
    if fmt == "gguf":
        from .gguf import read_gguf

        mf = read_gguf(path)
        mf.pickles = polyglot or mf.pickles
        return mf
    if fmt == "zip":
        return _open_zip(path, limits)
    if fmt == "npy":
        from .numpy_files import read_npy

        return read_npy(path)
    if fmt == "hdf5":
        from .keras import read_h5

        return read_h5(path)
    if fmt == "tf-savedmodel":
        from .tf_savedmodel import read_saved_model

        return read_saved_model(path)
    if fmt == "pickle" or fmt == "unknown":
        from ..pickles import looks_like_pickle
        from .torch_pickle import read_pickle_file

        if fmt == "pickle" or looks_like_pickle(path):
            return read_pickle_file(path, limits=limits)
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise DecodeError(path, "not a pickle, PyTorch zip, safetensors or GGUF file")
    from ...containers.expand import ARCHIVE_FORMATS  # (zip was answered above)

    if sniffed.kind in ("image", "video", "audio", "document", "archive"):
        from ..pickles import looks_like_pickle
        from .torch_pickle import read_pickle_file

        if looks_like_pickle(path):  # a polyglot: a picture's magic number made of opcodes
            return read_pickle_file(path, limits=limits)
        from ...sniff import appended_zip

        if appended_zip(path, size) and model_archive_kind(path) in ("keras", "skops"):
            return _open_zip(path, limits)  # a picture that ends with a model zipfile opens
    if fmt in ARCHIVE_FORMATS:
        # (a joblib model saved with compress=..., a legacy torch tar, a folder of checkpoints)
        raise UnsupportedFormat(path, f"not a model file but an archive or compressed stream ({fmt}): "
                                "`assay scan` opens it and judges every model file and pickle in it")
    raise UnsupportedFormat(path, f"not a model file (content looks like {fmt})")


def lfs_pointer(path: Path) -> str:
    """What a Git LFS pointer file names: 'oid sha256:..., size N bytes' (as far as readable)."""
    try:
        text = path.read_bytes()[:1024].decode("utf-8", "replace")
    except OSError:
        return "unreadable"
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    oid = fields.get("oid", "?")[:80]
    size = fields.get("size", "?")[:20]
    return f"oid {oid}, size {size} bytes" if size.isdigit() else f"oid {oid}"


MAX_ARCHIVE_NAMES = 200_000


# The member names of the last few zips listed, by (path, inode, size, times): a scan asks
# for a zip's names several times (sniffing, twice; opening the model, twice), and the
# central directory of a checkpoint of a thousand tensors costs a few ms to read each time.
_NAMES: dict[tuple[str, int, int, int, int], list[str] | None] = {}
_NAMES_KEPT = 4


def zip_member_names(path: Path) -> list[str] | None:
    """Every member name of the zip at ``path`` in central-directory order, or None when
    it cannot be listed (not a zip, damaged, over MAX_ARCHIVE_NAMES members). Read once
    while the file's inode, size and modification time stay the same."""
    import zipfile

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _NAMES:
        return _NAMES[key]
    names: list[str] | None
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            names = None if len(infos) > MAX_ARCHIVE_NAMES else [i.filename for i in infos]
    except Exception:  # hostile central directories raise many types: not listable  # noqa: BLE001
        names = None
    while len(_NAMES) >= _NAMES_KEPT:
        _NAMES.pop(next(iter(_NAMES)))
    _NAMES[key] = names
    return names


def model_archive_kind(path: Path) -> str | None:
    """What kind of model a zip file is, judged by its member names: "torch"
    (torch.save / TorchScript: ``<prefix>/data.pkl``), "keras" (``config.json`` with
    weights or metadata), "skops" (``schema.json`` and arrays), "npz" (only ``.npy``
    members), or None for any other zip
    (an archive of files, walked member by member; its pickles are still scanned).
    """
    from .keras import is_keras_zip

    names = zip_member_names(path)
    if not names:
        return None
    prefix = names[0].split("/", 1)[0]
    if f"{prefix}/data.pkl" in names and all(n.startswith(f"{prefix}/") for n in names):
        return "torch"
    if is_keras_zip(names):
        return "keras"
    from .skops import is_skops_zip

    if is_skops_zip(names):
        return "skops"
    if all(n.endswith(".npy") for n in names):
        return "npz"
    return None


def is_model_archive(path: Path) -> bool:
    """Whether a zip is one model file (PyTorch, TorchScript, Keras, .npz) rather than
    an archive of separate files. For ``scan``'s container walker."""
    return model_archive_kind(Path(path)) is not None


def _open_zip(path: Path, limits: Limits) -> ModelFile:
    from ..pickles import scan_file

    kind = model_archive_kind(path)
    if kind == "torch":
        from .torch_pickle import read_torch_zip

        return read_torch_zip(path, limits=limits)
    if kind == "npz":
        from .numpy_files import read_npz

        return read_npz(path)
    reports = scan_file(path)
    if kind == "keras":
        from .keras import read_keras_zip, refuse_if_dangerous

        refuse_if_dangerous(path, reports)
        return read_keras_zip(path, reports)
    if kind == "skops":
        bad = [f.global_name for r in reports for f in r.findings if f.severity == "dangerous"]
        if bad:
            raise UnsafeInput(path, "skops model loads code that can run commands, touch files or the "
                              f"network, not opened: {'; '.join(dict.fromkeys(bad))}",
                              details=[r for r in reports if r.verdict == "dangerous"])
        return ModelFile(path=path, format="skops", pickles=reports)
    # Not a model archive: still, every member that parses as a pickle was scanned
    # (a zip of pickles is loaded member by member by whoever made it).
    pickled = [r for r in reports if ":" in r.where[len(str(path)):]]
    if not pickled:
        raise UnsupportedFormat(path, "zip archive holds no model file and no pickle")
    from .torch_pickle import _refuse_if_dangerous

    _refuse_if_dangerous(path, reports)
    return ModelFile(path=path, format="zip-pickles", pickles=reports)
