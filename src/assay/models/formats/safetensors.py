"""safetensors reader that validates every offset before it trusts one.

Format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON (optionally
padded with spaces), then the data section. The JSON maps tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data
section) plus an optional ``"__metadata__"`` map of strings. Sorted by ``begin``,
the tensors must tile the data section exactly: no gap, no overlap, nothing after.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ...errors import DecodeError, InputError, TooLarge
from . import DTYPES, MAX_DIMS, MAX_TENSORS, ModelFile, TensorInfo, tensor_nbytes

MAX_HEADER_BYTES = 100 * 1024**2  # the limit the reference implementation enforces


def read_safetensors(path: Path) -> ModelFile:
    """Parse and validate ``path``; raise DecodeError / TooLarge naming the problem."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            head = f.read(8)
            if len(head) < 8:
                raise DecodeError(path, f"file of {size} bytes is too short for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise TooLarge(path, f"safetensors header length {n} exceeds {MAX_HEADER_BYTES} bytes")
            if 8 + n > size:
                raise DecodeError(
                    path, f"safetensors header length {n} runs past the end of the {size}-byte file"
                )
            raw = f.read(n)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    header = parse_header(path, raw)
    data_offset = 8 + n
    tensors, metadata = validate_header(path, header, size - data_offset, data_offset)
    return ModelFile(
        path=path,
        format="safetensors",
        tensors=tensors,
        metadata=metadata,
        data_offset=data_offset,
    )


def parse_header(path: Path, raw: bytes) -> dict[str, Any]:
    """Decode the JSON header: UTF-8, an object, no duplicate keys."""
    if not raw.lstrip(b" ").startswith(b"{"):
        raise DecodeError(path, "safetensors header does not start with a JSON object")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                # Two readers could pick different entries: a classic evasion trick.
                raise DecodeError(path, f"safetensors header repeats the key {k!r}")
            out[k] = v
        return out

    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as exc:
        raise DecodeError(path, f"safetensors header is not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DecodeError(path, f"safetensors header is not valid JSON: {exc.msg} at {exc.pos}") from exc
    except RecursionError as exc:
        raise DecodeError(path, "safetensors header JSON is nested too deeply") from exc
    except ValueError as exc:  # e.g. integers with absurdly many digits
        raise DecodeError(path, f"safetensors header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise DecodeError(path, "safetensors header is not a JSON object")
    return header


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_header(
    path: Path, header: dict[str, Any], data_len: int, data_offset: int
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Check every entry and the tiling of the data section; return tensors in
    data order and the ``__metadata__`` map."""
    metadata: dict[str, str] = {}
    meta = header.get("__metadata__")
    if meta is not None:
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise DecodeError(path, "safetensors __metadata__ must map strings to strings")
        metadata = dict(meta)
    if len(header) > MAX_TENSORS:
        raise TooLarge(path, f"safetensors header lists {len(header)} tensors (limit {MAX_TENSORS})")

    entries: list[tuple[int, int, str, str, tuple[int, ...]]] = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name!r}"
        if not isinstance(spec, dict):
            raise DecodeError(path, f"{where}: entry is not a JSON object")
        dtype = spec.get("dtype")
        shape = spec.get("shape")
        offsets = spec.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise DecodeError(path, f"{where}: unknown dtype {str(dtype)[:40]!r}")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(_int(d) and d >= 0 for d in shape)
        ):
            raise DecodeError(path, f"{where}: shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_int(o) for o in offsets)
        ):
            raise DecodeError(path, f"{where}: data_offsets must be two integers")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise DecodeError(path, f"{where}: data_offsets [{begin}, {end}] are not ordered")
        if end > data_len:
            raise DecodeError(
                path, f"{where}: data_offsets end {end} is past the data section ({data_len} bytes)"
            )
        shp = tuple(shape)
        need = tensor_nbytes(dtype, shp)
        if need is None:
            raise DecodeError(path, f"{where}: {dtype} shape {shp} does not fill whole bytes")
        if need != end - begin:
            raise DecodeError(
                path,
                f"{where}: {dtype} x {list(shp)} needs {need} bytes but data_offsets span "
                f"{end - begin}",
            )
        entries.append((begin, end, name, dtype, shp))

    entries.sort(key=lambda e: (e[0], e[1]))
    pos = 0
    prev = "start of data"
    for begin, end, name, _, _ in entries:
        if begin > pos:
            raise DecodeError(
                path, f"gap of {begin - pos} bytes in the data section before tensor {name!r}"
            )
        if begin < pos:
            raise DecodeError(path, f"tensor {name!r} overlaps {prev} (begins at {begin} < {pos})")
        pos = end
        prev = f"tensor {name!r}"
    if pos != data_len:
        raise DecodeError(
            path, f"data section has {data_len - pos} bytes not covered by any tensor"
        )

    src = str(path)
    tensors = {
        name: TensorInfo(name, dtype, shp, data_offset + begin, end - begin, src)
        for begin, end, name, dtype, shp in entries
    }
    return tensors, metadata
