"""A minimal protobuf wire-format reader for the model formats stored as protobuf
(TensorFlow SavedModel graphs, Keras metadata, ONNX): messages are walked field by field
over the file's bytes (or a memory map of them), never decoded into objects, so a
reader looks only at the fields it needs and skips the rest, weights included, by their
lengths. Every length is checked against its enclosing message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...sniff import protobuf_varint as varint

__all__ = ["fields", "varint"]


def fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message in ``buf[start:end]``: a varint's
    value, or the (start, end) span of a length-delimited field. Fixed-size fields
    (wire types 1 and 5) are skipped; groups are refused."""
    pos = start
    while pos < end:
        key, pos = varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
            yield field, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            if pos + n > end:
                raise ValueError("length-delimited field runs past its message")
            yield field, wire, (pos, pos + n)
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != end:
        raise ValueError("message runs past its end")
