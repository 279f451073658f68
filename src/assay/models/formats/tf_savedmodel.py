"""TensorFlow SavedModel graphs (``saved_model.pb``) read without TensorFlow.

A SavedModel runs the operations of its graph when it is served or called; some of
them touch the file system (``ReadFile``, ``WriteFile``, ``MatchingFiles``...) and turn a
model into a way to read or plant files. The protobuf is walked with a minimal
wire-format reader, only along the fields that hold operations:

SavedModel.meta_graphs(2) -> MetaGraphDef.graph_def(2) -> GraphDef.node(1) ->
NodeDef{name(1), op(2)}, and GraphDef.library(2) -> FunctionDefLibrary.function(1)
-> FunctionDef{signature(1) -> OpDef.name(1), node_def(3) -> NodeDef}.

The checkpoint machinery every SavedModel carries (``SaveV2``, ``RestoreV2``,
``MergeV2Checkpoints``, ``ShardedFilename``) is listed, not flagged.

A Keras 2 model saved as a SavedModel also leaves ``keras_metadata.pb`` beside the graph:
``SavedMetadata.nodes(1) -> SavedObject{identifier(4), metadata(5)}``, the metadata being
each layer's config as JSON. ``tf.keras.models.load_model`` rebuilds the layers from it,
so a ``Lambda`` layer's marshalled bytecode runs at load although the graph shows only
traced operations: those configs are judged as a Keras model's are.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ...errors import DecodeError, InputError, UnsafeInput
from ..pickles import PickleFinding, PickleReport
from . import ModelFile
from ._protobuf import fields as _fields

__all__ = ["FILE_SYSTEM_OPS", "graph_ops", "read_saved_model"]

MAX_PB_BYTES = 1024**3
KERAS_METADATA = "keras_metadata.pb"
MAX_NODES = 5_000_000

# Operations that read, write or list files, or run Python.
FILE_SYSTEM_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "ImmutableConst",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "IdentityReader", "LMDBReader", "CreateSummaryFileWriter",
    "CreateSummaryDbWriter", "WriteFileV2", "DeleteFile", "DebugIdentityV2",
    "DebugIdentityV3", "Save", "SaveSlices", "Restore", "RestoreSlice",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "PrintV2 to a file",
})
PRINT_TO_FILE = "PrintV2 to a file"
# Checkpoint ops every SavedModel holds for its variables: expected, not findings.
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})


def _node(buf: bytes, span: tuple[int, int]) -> tuple[str, str]:
    name = op = ""
    stream = ""
    for field, wire, v in _fields(buf, *span):
        if wire == 2 and field in (1, 2):
            text = buf[v[0] : v[1]].decode("utf-8", "replace")[:200]
            if field == 1:
                name = text
            else:
                op = text
        elif wire == 2 and field == 5:  # attr map entry {key 1, AttrValue 2 {s 2}}
            key, value = "", b""
            for f2, w2, v2 in _fields(buf, *v):
                if f2 == 1 and w2 == 2:
                    key = buf[v2[0] : v2[1]].decode("utf-8", "replace")
                elif f2 == 2 and w2 == 2:
                    for f3, w3, v3 in _fields(buf, *v2):
                        if f3 == 2 and w3 == 2:
                            value = buf[v3[0] : v3[1]]
            if key == "output_stream":
                stream = value[:300].decode("utf-8", "replace")
    if op == "PrintV2" and stream.startswith("file://"):
        # tf.print(output_stream="file://PATH") appends to PATH each time it runs
        op = PRINT_TO_FILE
    return name, op


def graph_ops(data: bytes) -> list[tuple[str, str, str]]:
    """Every (where, node name, op) in a SavedModel: graph nodes and function bodies."""
    out: list[tuple[str, str, str]] = []

    def graph(span: tuple[int, int], label: str) -> None:
        for field, wire, v in _fields(data, *span):
            if wire != 2:
                continue
            if field == 1:
                out.append((label, *_node(data, v)))
            elif field == 2:
                for f2, w2, fn in _fields(data, *v):
                    if f2 == 1 and w2 == 2:
                        function(fn)
            if len(out) > MAX_NODES:
                raise ValueError("too many graph nodes")

    def function(span: tuple[int, int]) -> None:
        fname = "?"
        nodes = []
        for field, wire, v in _fields(data, *span):
            if wire == 2 and field == 1:
                for f2, w2, v2 in _fields(data, *v):
                    if f2 == 1 and w2 == 2:
                        fname = data[v2[0] : v2[1]].decode("utf-8", "replace")[:200]
            elif wire == 2 and field == 3:
                nodes.append(v)
        out.extend((f"function {fname}", *_node(data, n)) for n in nodes)

    for field, wire, v in _fields(data, 0, len(data)):
        if field == 2 and wire == 2:
            for f2, w2, v2 in _fields(data, *v):
                if f2 == 2 and w2 == 2:
                    graph(v2, "graph")
    return out


def keras_metadata_findings(path: Path) -> list[PickleFinding]:
    """Findings for the Keras layer configs in ``keras_metadata.pb`` beside ``path`` (a
    ``saved_model.pb``): empty when there is none."""
    from .keras import scan_keras_config

    meta = path.parent / KERAS_METADATA
    where = str(meta)
    try:
        if not meta.is_file():
            return []
        size = meta.stat().st_size
        if size > MAX_PB_BYTES:
            return [PickleFinding("suspicious", "", "keras_metadata", 0,
                                  f"{KERAS_METADATA} of {size} bytes exceeds {MAX_PB_BYTES}: not judged")]
        data = meta.read_bytes()
    except OSError as exc:
        return [PickleFinding("suspicious", "", "keras_metadata", 0,
                              f"{KERAS_METADATA} cannot be read ({exc.strerror or exc}): not judged")]
    out: list[PickleFinding] = []
    seen: set[tuple[str, str]] = set()
    try:
        for field, wire, node in _fields(data, 0, len(data)):
            if field != 1 or wire != 2:
                continue
            for f2, w2, v in _fields(data, *node):
                if f2 != 5 or w2 != 2:
                    continue
                try:
                    config = json.loads(data[v[0] : v[1]].decode("utf-8"))
                except (ValueError, RecursionError):
                    out.append(PickleFinding(
                        "suspicious", "", "keras_metadata", v[0],
                        f"{KERAS_METADATA}: a layer's metadata is not JSON (Keras cannot read "
                        "it either): not judged"))
                    continue
                # A model's metadata repeats its layers' configs: one finding per layer.
                for f in scan_keras_config(config, where).findings:
                    if (f.global_name, f.reason) not in seen:
                        seen.add((f.global_name, f.reason))
                        out.append(PickleFinding(f.severity, f.global_name, "keras_metadata", 0,
                                                 f"{KERAS_METADATA}: {f.reason}"))
    except (ValueError, IndexError) as exc:
        out.append(PickleFinding("suspicious", "", "keras_metadata", 0,
                                 f"malformed {KERAS_METADATA}: {exc}"))
    return out


def read_saved_model(path: Path) -> ModelFile:
    """A ``saved_model.pb`` (or the folder holding it): its operations judged."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_PB_BYTES:
            raise DecodeError(path, f"saved_model.pb of {size} bytes exceeds {MAX_PB_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        ops = graph_ops(data)
    except (ValueError, IndexError) as exc:
        raise DecodeError(path, f"malformed SavedModel protobuf: {exc}") from exc
    if not ops:
        raise DecodeError(path, "SavedModel protobuf holds no graph operations")
    report = PickleReport(where=where)
    flagged: set[tuple[str, str]] = set()
    for label, name, op in ops:
        if op in FILE_SYSTEM_OPS and (label, op) not in flagged:
            flagged.add((label, op))
            report.add(PickleFinding(
                "dangerous", f"tf.{op}", "graph", 0,
                f"{label}: node {name!r} runs {op} (file system or Python access when the "
                "model runs)",
            ))
    for finding in keras_metadata_findings(path):
        report.add(finding)
    counts = Counter(op for _, _, op in ops)
    metadata = {"tf_ops": dict(sorted(counts.items())[:500]), "tf_nodes": len(ops)}
    if report.verdict == "dangerous":
        parts = []
        for opcode, what in (("graph", "SavedModel graph touches the file system"),
                             ("keras_metadata", "its Keras layers run Python code at load")):
            names = dict.fromkeys(f.global_name for f in report.findings
                                  if f.severity == "dangerous" and f.opcode == opcode)
            if names:
                parts.append(f"{what}: {'; '.join(names)}")
        raise UnsafeInput(path, "; ".join(parts), details=[report])
    return ModelFile(path=path, format="tf-savedmodel", metadata=metadata, pickles=[report])
