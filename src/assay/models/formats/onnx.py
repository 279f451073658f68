"""ONNX models (``.onnx``) read without onnx or ONNX Runtime.

The file is one protobuf ``ModelProto``, walked over a memory map with the wire-format
reader of :mod:`._protobuf`; weights are never copied, only located:

ModelProto{ir_version(1), producer_name(2), producer_version(3), domain(4),
model_version(5), doc_string(6), graph(7), opset_import(8){domain(1), version(2)},
metadata_props(14){key(1), value(2)}, functions(25){name(1), node(7), domain(10)}};
GraphProto{node(1), name(2), initializer(5), sparse_initializer(15)};
NodeProto{input(1), output(2), name(3), op_type(4), attribute(5), domain(7)};
AttributeProto{name(1), i(3), t(5), g(6), tensors(10), graphs(11)} (subgraphs of If,
Loop and Scan are walked like the main graph);
TensorProto{dims(1), data_type(2), float_data(4), name(8), raw_data(9),
double_data(10), external_data(13){key(1), value(2)}, data_location(14)}.

What an ONNX file can do when it is loaded, and what is judged:

* **External data** (weights kept in other files, ``location`` relative to the model's
  folder): ``onnx.load`` and ONNX Runtime read whatever path the model names. A location
  that is absolute or leaves the model's folder (``..``, a link pointing out) turns a
  model into a way to read the loader's files (CVE-2022-25882, CVE-2024-27318):
  ``dangerous``, and assay never opens it. A missing or short external file is a
  warning; those tensors are left out.
* **Operators outside the standard domains** need a custom-operator library loaded
  into the runtime (native code the file does not carry): ``suspicious``, naming each
  domain and operator. Python operators (``PythonOp``, ``PyOp``...) call Python
  functions by name: ``suspicious`` too, named as such. The standard ONNX operators
  compute on tensors only.

Weights: initializers (and ``Constant`` nodes' values) stored as ``raw_data``,
``float_data``/``double_data`` (packed: already little-endian bytes), or external data,
become :class:`TensorInfo` over the file. PyTorch's exporter keeps a parameter's name
where it uses it as is; a ``Linear`` weight it folds into ``MatMul`` (stored transposed)
or ``Gemm`` gets a generated name (``onnx::MatMul_123``): such a weight is listed under
the parameter name its node's scope gives (``/encoder/layer.0/fc1/MatMul`` ->
``encoder.layer.0.fc1.weight``), transposed back to PyTorch's ``(out, in)`` as a view, so
lineage compares it with the checkpoint it was converted from (``metadata`` lists every
such renaming under ``onnx.renamed``).
"""

from __future__ import annotations

import mmap
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import DecodeError, InputError, UnsafeInput
from ..pickles import PickleFinding, PickleReport
from . import MAX_DIMS, MAX_TENSORS, ModelFile, TensorInfo, tensor_nbytes
from ._protobuf import fields, varint

__all__ = ["STANDARD_DOMAINS", "read_onnx"]

MAX_NODES = 1_000_000  # real graphs (an LLM, a UNet) hold tens of thousands
MAX_OP_KINDS = 10_000  # distinct operator names counted; the rest under "(other)"
MAX_DEPTH = 32  # subgraphs inside subgraphs (If inside Loop ...)
MAX_TEXT = 2000
MAX_PROPS = 1000

# ONNX TensorProto.DataType -> safetensors' dtype names (types assay has no name for,
# strings and the FNUZ float8 kinds among them, are not read as tensors).
ONNX_DTYPES = {1: "F32", 2: "U8", 3: "I8", 4: "U16", 5: "I16", 6: "I32", 7: "I64",
               9: "BOOL", 10: "F16", 11: "F64", 12: "U32", 13: "U64", 14: "C64",
               15: "C128", 16: "BF16", 17: "F8_E4M3", 19: "F8_E5M2", 23: "F4", 24: "F8_E8M0"}
# Operator domains of the ONNX standard and of ONNX Runtime's own contributed operators
# ("com.microsoft": fused attention, quantization...), which the runtime builds in.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training",
                              "ai.onnx.preview.training", "com.microsoft",
                              "com.microsoft.nchwc", "com.microsoft.experimental",
                              "com.ms.internal.nhwc"})
PYTHON_OPS = frozenset({"PythonOp", "PythonOpGrad", "PyOp", "PyFunc", "PyCustomOp"})
_SCOPED = re.compile(r"^/((?:[^/]+/)*[^/]+)/(MatMul|Gemm)(?:_\d+)?$")


def _text(buf: Any, span: tuple[int, int], limit: int = MAX_TEXT) -> str:
    return bytes(buf[span[0]:min(span[1], span[0] + 4 * limit)]).decode("utf-8", "replace")[:limit]


class _Reader:
    def __init__(self, path: Path, buf: Any) -> None:
        self.path = path
        self.buf = buf
        self.folder = path.parent
        self.tensors: dict[str, TensorInfo] = {}
        self.ops: Counter[str] = Counter()
        self.custom: Counter[tuple[str, str]] = Counter()
        self.python: Counter[tuple[str, str]] = Counter()
        self.nodes = 0
        self.outside: list[str] = []  # external locations that leave the folder
        self.warnings: list[str] = []
        self.unread: Counter[str] = Counter()  # tensors not listed, by reason
        self.external_files: set[str] = set()
        # initializer name -> (node name, op type, input index, transB) of its consumers
        self.uses: dict[str, list[tuple[str, str, int, int]]] = {}
        # DequantizeLinear output -> (quantized initializer, scale, zero point, axis): an
        # ONNX Runtime QDQ model's weights (quantize_static/quantize_dynamic, QDQ format)
        self.dq: dict[str, tuple[str, str, str, int]] = {}
        # quantized weight -> (scale, zero point) named by the QOperator node using it
        # (QLinearMatMul's b_scale and b_zero_point; MatMulInteger's b_zero_point)
        self.qop: dict[str, tuple[str, str]] = {}
        self.sizes: dict[Path, int | None] = {}

    # -- messages ------------------------------------------------------------------

    def graph(self, span: tuple[int, int], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(f"subgraphs nested deeper than {MAX_DEPTH}")
        for field, wire, v in fields(self.buf, *span):
            if wire != 2:
                continue
            if field == 1:
                self.node(v, depth)
            elif field == 5:
                self.tensor(v, None)
            elif field == 15:
                self.unread["sparse initializers"] += 1

    def node(self, span: tuple[int, int], depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ValueError(f"more than {MAX_NODES} nodes")
        inputs: list[str] = []
        outputs: list[str] = []
        name = op = domain = ""
        trans_b = 0
        values: list[tuple[int, int]] = []
        ints: dict[str, int] = {}
        for field, wire, v in fields(self.buf, *span):
            if wire != 2:
                continue
            if field == 1:
                inputs.append(_text(self.buf, v, 500))
            elif field == 2:
                outputs.append(_text(self.buf, v, 500))
            elif field == 3:
                name = _text(self.buf, v, 500)
            elif field == 4:
                op = _text(self.buf, v, 200)
            elif field == 7:
                domain = _text(self.buf, v, 200)
            elif field == 5:
                trans_b |= self.attribute(v, depth, values, ints)
        kind = op if domain in ("", "ai.onnx") else f"{domain}.{op}"
        self.ops[kind if kind in self.ops or len(self.ops) < MAX_OP_KINDS else "(other)"] += 1
        if op in PYTHON_OPS or domain not in STANDARD_DOMAINS:
            found = self.python if op in PYTHON_OPS else self.custom
            key = (domain, op) if (domain, op) in found or len(found) < MAX_OP_KINDS else (domain, "(other)")
            found[key] += 1
        if op == "Constant" and domain in ("", "ai.onnx") and len(values) == 1 and outputs:
            self.tensor(values[0], outputs[0])
        if op == "DequantizeLinear" and domain in ("", "ai.onnx", "com.microsoft") and len(inputs) >= 2 \
                and outputs and len(self.dq) < MAX_NODES:
            axis = ints.get("axis", 1)
            self.dq[outputs[0]] = (inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else "",
                                   axis - (1 << 64) if axis >= 1 << 63 else axis)
        if domain in ("", "ai.onnx", "com.microsoft") and len(self.qop) < MAX_NODES:
            if op == "QLinearMatMul" and len(inputs) >= 6:
                self.qop[inputs[3]] = (inputs[4], inputs[5])
            elif op == "MatMulInteger" and len(inputs) >= 2:  # the scale is applied after it, by name
                self.qop[inputs[1]] = (inputs[1].removesuffix("_quantized") + "_scale",
                                       inputs[3] if len(inputs) > 3 else "")
        for i, inp in enumerate(inputs):
            # only generated weight names are given other names, and weights read through a
            # DequantizeLinear (or a QOperator node) are named after the node that uses them
            if inp.startswith("onnx::") or inp in self.dq or inp in self.qop:
                self.uses.setdefault(inp, []).append((name, op if domain in ("", "ai.onnx") else "", i, trans_b))

    def attribute(self, span: tuple[int, int], depth: int, values: list[tuple[int, int]],
                  ints: dict[str, int] | None = None) -> int:
        """Walks subgraphs, collects a tensor value (``t``) and integer values (into ``ints``);
        returns 1 for ``transB=1``."""
        name = ""
        ival = None
        for field, wire, v in fields(self.buf, *span):
            if field == 1 and wire == 2:
                name = _text(self.buf, v, 200)
            elif field == 3 and wire == 0:
                ival = v
            elif field == 5 and wire == 2:
                values.append(v)
            elif field in (6, 11) and wire == 2:
                self.graph(v, depth + 1)
            elif field == 10 and wire == 2:
                self.unread["tensors in attribute lists"] += 1
        if ints is not None and ival is not None and name:
            ints[name] = ival
        return 1 if name == "transB" and ival == 1 else 0

    def tensor(self, span: tuple[int, int], fallback_name: str | None) -> None:
        dims: list[int] = []
        dtype_code = 0
        name = fallback_name or ""
        raw = floats = doubles = None
        external: dict[str, str] = {}
        location = 0
        for field, wire, v in fields(self.buf, *span):
            if field == 1:
                if wire == 0:
                    dims.append(v)
                elif wire == 2:  # packed
                    pos = v[0]
                    while pos < v[1]:
                        d, pos = varint(self.buf, pos)
                        dims.append(d)
            elif field == 2 and wire == 0:
                dtype_code = v
            elif field == 8 and wire == 2:
                name = _text(self.buf, v, 1000)
            elif field == 9 and wire == 2:
                raw = v
            elif field == 4 and wire == 2:
                floats = v
            elif field == 10 and wire == 2:
                doubles = v
            elif field == 13 and wire == 2:
                key = value = ""
                for f2, w2, v2 in fields(self.buf, *v):
                    if w2 == 2 and f2 == 1:
                        key = _text(self.buf, v2, 100)
                    elif w2 == 2 and f2 == 2:
                        value = _text(self.buf, v2, 4096)
                external[key] = value
            elif field == 14 and wire == 0:
                location = v
        if len(dims) > MAX_DIMS:
            raise ValueError(f"tensor {name[:100]!r} has {len(dims)} dimensions")
        dims = [d - (1 << 64) if d >= 1 << 63 else d for d in dims]  # int64 on the wire
        if any(d < 0 for d in dims):
            raise ValueError(f"tensor {name[:100]!r} has a negative dimension")
        if location == 1 or external:
            self.external(name, dims, dtype_code, external)
            return
        dtype = ONNX_DTYPES.get(dtype_code)
        if dtype is None:
            self.unread[f"of data type {dtype_code}"] += 1
            return
        nbytes = tensor_nbytes(dtype, tuple(dims))
        if raw is not None:
            span_ = raw
        elif floats is not None and dtype == "F32":
            span_ = floats
        elif doubles is not None and dtype == "F64":
            span_ = doubles
        else:  # values in int32_data/int64_data varints, or no values: nothing to map
            self.unread["kept in typed value fields"] += 1
            return
        if nbytes is None or nbytes != span_[1] - span_[0]:
            raise ValueError(f"tensor {name[:100]!r}: {span_[1] - span_[0]} bytes of data for "
                             f"{dtype} {tuple(dims)}")
        self.add(TensorInfo(name=name, dtype=dtype, shape=tuple(dims), offset=span_[0],
                            nbytes=nbytes, source=str(self.path)))

    def external(self, name: str, dims: list[int], dtype_code: int, info: dict[str, str]) -> None:
        where = info.get("location", "")
        if not where:
            self.warnings.append(f"tensor {name[:100]!r}: external data without a location")
            return
        target = self.inside(where)
        if target is None:
            self.outside.append(where)
            return
        self.external_files.add(os.path.relpath(target, self.folder))
        dtype = ONNX_DTYPES.get(dtype_code)
        if dtype is None:
            self.unread[f"of data type {dtype_code}"] += 1
            return
        try:
            offset = int(info.get("offset", "0") or 0)
            length = int(info["length"]) if info.get("length") else None
        except ValueError:
            self.warnings.append(f"tensor {name[:100]!r}: external offset or length is not a number")
            return
        nbytes = tensor_nbytes(dtype, tuple(dims))
        size = self.file_size(target)
        if size is None:
            self.warnings.append(f"external data file {where[:200]!r} is missing or unreadable: "
                                 f"tensor {name[:100]!r} not read")
            return
        if nbytes is None or offset < 0 or (length is not None and length != nbytes) or offset + nbytes > size:
            self.warnings.append(f"tensor {name[:100]!r}: {where[:200]!r} does not hold its "
                                 f"{nbytes} bytes at offset {offset} (file of {size} bytes)")
            return
        self.add(TensorInfo(name=name, dtype=dtype, shape=tuple(dims), offset=offset,
                            nbytes=nbytes, source=str(target)))

    def inside(self, where: str) -> Path | None:
        """The external file a location names, or None when it is absolute or leaves
        the model's folder (after links are followed)."""
        if "\x00" in where or os.path.isabs(where) or where.startswith(("\\", "/")) or ":" in where[:3]:
            return None
        parts = [p for p in re.split(r"[\\/]", where) if p not in ("", ".")]
        # '..' that stays inside ('sub/../w.bin') is what ONNX's own check allows (it
        # normalises the path first); one that climbs above the folder is refused. The
        # path is kept as written, so realpath resolves it as the loader's open() would.
        depth = 0
        for part in parts:
            depth += -1 if part == ".." else 1
            if depth < 0:
                return None
        target = self.folder.joinpath(*parts)
        try:
            real, base = os.path.realpath(target), os.path.realpath(self.folder)
        except (OSError, ValueError):
            return None
        if os.path.commonpath([real, base]) != base:
            return None
        return target

    def file_size(self, target: Path) -> int | None:
        if target not in self.sizes:
            try:
                self.sizes[target] = target.stat().st_size if target.is_file() else None
            except OSError:
                self.sizes[target] = None
        return self.sizes[target]

    def add(self, info: TensorInfo) -> None:
        if len(self.tensors) >= MAX_TENSORS:
            raise ValueError(f"more than {MAX_TENSORS} tensors")
        if info.name in self.tensors:
            self.warnings.append(f"tensor name {info.name[:100]!r} appears twice: the first kept")
            return
        self.tensors[info.name] = info

    # -- names ---------------------------------------------------------------------

    def renamed(self) -> dict[str, str]:
        """Generated weight names -> the PyTorch parameter names their node scopes give,
        transposing MatMul weights (and Gemm's without ``transB``) to ``(out, in)``."""
        out: dict[str, str] = {}
        taken = set(self.tensors)
        for name, info in list(self.tensors.items()):
            if not name.startswith("onnx::") or len(info.shape) != 2 or info.strides is not None:
                continue
            uses = self.uses.get(name, [])
            if len(uses) != 1:
                continue
            node, op, index, trans_b = uses[0]
            m = _SCOPED.match(node)
            if m is None or index != 1 or op != m.group(2):
                continue
            param = m.group(1).replace("/", ".") + ".weight"
            if param in taken:
                continue
            rows, cols = info.shape
            transposed = op == "MatMul" or not trans_b
            shape = (cols, rows) if transposed else (rows, cols)
            strides = (1, cols) if transposed else None
            del self.tensors[name]
            self.tensors[param] = TensorInfo(name=param, dtype=info.dtype, shape=shape,
                                             offset=info.offset, nbytes=info.nbytes,
                                             source=info.source, strides=strides)
            taken.add(param)
            out[name] = param
        return out


    def dequantized(self) -> dict[str, list[Any]]:
        """Weights stored quantized behind a DequantizeLinear node (ONNX Runtime's QDQ
        models): the parameter name the node using them gives (as ``renamed`` does for a
        generated name; the initializer's own name without ``_quantized`` otherwise) ->
        [quantized initializer, scale, zero point, axis, transposed to (out, in)]. The
        values are computed only when lineage reads them (formats/quantized.py)."""
        out: dict[str, list[Any]] = {}
        taken = set(self.tensors)
        # (weight, scale, zero point, axis, the name its values are used under)
        found = [(x, scale, zero, axis, used) for used, (x, scale, zero, axis) in self.dq.items()]
        found += [(x, scale, zero, 1, x) for x, (scale, zero) in self.qop.items()]
        for x, scale, zero, axis, used in found:
            info, sc = self.tensors.get(x), self.tensors.get(scale)
            if info is None or sc is None or info.dtype not in ("I8", "U8") or len(info.shape) != 2 \
                    or sc.dtype not in ("F32", "F16") or info.strides is not None:
                continue
            uses = self.uses.get(used, [])
            base = x.removesuffix("_quantized")
            param, transposed = base, False
            if len(uses) == 1:
                node, op, index, trans_b = uses[0]
                op, index = {"MatMulInteger": ("MatMul", index), "QLinearMatMul": ("MatMul", index - 2)}.get(
                    op, (op, index))
                m = _SCOPED.match(node.removesuffix("_quant"))
                if index == 1 and m is not None and op == m.group(2):
                    transposed = op == "MatMul" or not trans_b
                    if base.startswith("onnx::"):
                        param = m.group(1).replace("/", ".") + ".weight"
            if param in out or (param in taken and param != x):
                continue
            out[param] = [x, scale, zero, axis, transposed]
        return out


def read_onnx(path: Path) -> ModelFile:
    """An ONNX model: its weights located, its operators and external data judged.
    Raises UnsafeInput when external data leaves the model's folder."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                raise DecodeError(path, "empty file")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        return _read(path, mm, size)
    finally:
        try:
            mm.close()
        except BufferError:
            pass


def _read(path: Path, mm: Any, size: int) -> ModelFile:
    r = _Reader(path, mm)
    head: dict[str, Any] = {}
    opsets: dict[str, int] = {}
    props: dict[str, str] = {}
    functions: list[str] = []
    graph_name = ""
    graphs = 0
    try:
        for field, wire, v in fields(mm, 0, size):
            if field == 1 and wire == 0:
                head["ir_version"] = v
            elif field in (2, 3, 4, 6) and wire == 2:
                key = {2: "producer_name", 3: "producer_version", 4: "domain", 6: "doc_string"}[field]
                head[key] = _text(mm, v)
            elif field == 5 and wire == 0:
                head["model_version"] = v
            elif field == 7 and wire == 2:
                graphs += 1
                for f2, w2, v2 in fields(mm, *v):
                    if f2 == 2 and w2 == 2:
                        graph_name = _text(mm, v2, 200)
                r.graph(v, 0)
            elif field == 8 and wire == 2:
                dom, ver = "", 0
                for f2, w2, v2 in fields(mm, *v):
                    if f2 == 1 and w2 == 2:
                        dom = _text(mm, v2, 200)
                    elif f2 == 2 and w2 == 0:
                        ver = v2
                opsets[dom or "ai.onnx"] = ver
            elif field == 14 and wire == 2 and len(props) < MAX_PROPS:
                key = value = ""
                for f2, w2, v2 in fields(mm, *v):
                    if f2 == 1 and w2 == 2:
                        key = _text(mm, v2, 200)
                    elif f2 == 2 and w2 == 2:
                        value = _text(mm, v2, 1 << 20)
                props[key] = value
            elif field == 25 and wire == 2:
                fname = fdomain = ""
                for f2, w2, v2 in fields(mm, *v):
                    if f2 == 1 and w2 == 2:
                        fname = _text(mm, v2, 200)
                    elif f2 == 10 and w2 == 2:
                        fdomain = _text(mm, v2, 200)
                    elif f2 == 7 and w2 == 2:
                        r.node(v2, 1)
                functions.append(f"{fdomain}.{fname}" if fdomain else fname)
    except (ValueError, IndexError) as exc:
        raise DecodeError(path, f"malformed ONNX protobuf: {exc}") from exc
    if "ir_version" not in head or graphs != 1:
        raise DecodeError(path, "not an ONNX model: no IR version or not exactly one graph")
    # A function's own domain names the operators it defines: calls to it are not custom ops.
    own = {fn.rsplit(".", 1)[0] for fn in functions if "." in fn}
    for key in [k for k in r.custom if k[0] in own]:
        del r.custom[key]
    report = PickleReport(where=str(path))
    for where in dict.fromkeys(r.outside):
        report.add(PickleFinding(
            "dangerous", "onnx.external_data", "graph", 0,
            f"external data location {where[:300]!r} lies outside the model's folder: loading "
            "the model reads that file (CVE-2022-25882, CVE-2024-27318); not opened"))
    for (dom, op), n in sorted(r.python.items()):
        report.add(PickleFinding(
            "suspicious", f"{dom}.{op}" if dom else op, "graph", 0,
            f"{n} node(s) of Python operator {op!r}{f' (domain {dom!r})' if dom else ''}: the "
            "runtime calls a Python function the model names"))
    for (dom, op), n in sorted(r.custom.items())[:100]:
        report.add(PickleFinding(
            "suspicious", f"{dom}.{op}", "graph", 0,
            f"{n} node(s) of custom operator {op!r} in domain {dom!r}: it runs only with a "
            "custom-operator library (native code outside this file) loaded into the runtime"))
    renamed = r.renamed()
    info: dict[str, Any] = dict(head)
    info.update({
        "opsets": opsets, "graph": graph_name, "nodes": r.nodes,
        "ops": dict(r.ops.most_common(500)), "initializers": len(r.tensors),
    })
    if functions:
        info["functions"] = functions[:200]
    if r.custom or r.python:
        info["custom_ops"] = sorted({f"{d}.{o}" if d else o for d, o in list(r.custom) + list(r.python)})[:200]
    if r.external_files:
        info["external_data"] = sorted(r.external_files)[:200]
    if renamed:
        info["renamed"] = dict(list(renamed.items())[:2000])
    if dequantize := r.dequantized():
        info["dequantize"] = dequantize
    if r.unread:
        info["not_read"] = {f"tensors {why}": n for why, n in r.unread.items()}
    if r.warnings:
        info["warnings"] = r.warnings[:50]
    metadata: dict[str, Any] = {"onnx": info}
    # metadata_props are the exporter's key/value strings (training tools write their
    # own there): read like a safetensors file's metadata.
    for k, v in props.items():
        if k and k != "onnx":
            metadata[k] = v
    if report.verdict == "dangerous":
        raise UnsafeInput(path, "ONNX external data points outside the model's folder: "
                          + "; ".join(repr(w[:200]) for w in dict.fromkeys(r.outside)), details=[report])
    return ModelFile(path=path, format="onnx", tensors=r.tensors, metadata=metadata,
                     pickles=[report] if report.findings else [])
