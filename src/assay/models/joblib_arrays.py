"""joblib's own array format inside a pickle, read as joblib's unpickler reads it.

``joblib.dump`` writes each numpy array as a ``joblib.numpy_pickle.NumpyArrayWrapper``
(shape, order, dtype, alignment) built by NEWOBJ and BUILD, then writes the array's
bytes straight into the file right after that BUILD: an optional alignment byte ``n``
and ``n`` padding bytes, then ``prod(shape) * itemsize`` raw bytes; or, for arrays of
Python objects, a whole nested pickle (read by a fresh unpickler). joblib's unpickler
reads them when it applies the BUILD and goes on with the opcodes after them.

A scanner that read those bytes as opcodes would stop at the first array and never
see what follows it. :func:`array_data` evaluates the wrapper's state (literals only:
strings, numbers, tuples, dicts, the dtype's ``numpy.dtype(...)`` call; nothing is
imported or called) and says where the array's bytes end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..pickleops import FRAME_ANOMALY, PickleSyntaxError, read_ops

__all__ = ["JOBLIB_WRAPPERS", "array_data", "global_ref"]

JOBLIB_WRAPPERS = frozenset({
    "joblib.numpy_pickle NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle NumpyArrayWrapper",  # joblib vendored by old scikit-learn
})
MAX_STATE_BYTES = 64 * 1024  # a wrapper's state is a few hundred bytes
_DTYPES = frozenset({"numpy dtype", "numpy.core.multiarray dtype", "numpy._core.multiarray dtype"})
# numpy type strings that fix the item size: kind letter, then bytes ('f8', 'U10', 'V24')
_TYPESTR = re.compile(r"[<>|=]?([?biufcmMOSUVe])(\d*)(?:\[\w+\])?")
_UNIT = {"?": 1, "b": 1, "e": 2, "O": 8}


class _Call:
    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func, self.args, self.state = func, args, None


class _Global:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def global_ref(name: str) -> _Global:
    """A global the scanner resolved before a wrapper's state (a memo entry it reuses)."""
    return _Global(name)


class _Giveup(Exception):
    pass


_MARK = object()


def _state(buf: Any, start: int, stop: int, earlier: Callable[[int], Any], memo_base: int) -> Any:
    """The value the opcodes in ``buf[start:stop]`` leave on the stack: literals only.
    ``earlier(i)``: memo entry ``i`` as stored before ``start``."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    next_memo = memo_base

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise _Giveup

    for code, arg, _off in read_ops(buf, start, stop):
        if code == FRAME_ANOMALY or code in (0x95, 0x80):  # FRAME, PROTO
            continue
        if code in b"\x8cXV\x8dSTU":
            stack.append(arg if isinstance(arg, str) else None)
        elif code in b"BC\x8e\x96":  # bytes (a datetime dtype's unit): not needed
            stack.append(None)
        elif code in b"KMJIL\x8a\x8b":
            stack.append(arg if isinstance(arg, int) else None)
        elif code == 0x88 or code == 0x89:
            stack.append(code == 0x88)
        elif code == 0x4E:  # NONE
            stack.append(None)
        elif code == 0x28:
            stack.append(_MARK)
        elif code == 0x74:
            stack.append(tuple(pop_mark()))
        elif code in (0x85, 0x86, 0x87):
            n = code - 0x84
            if len(stack) < n:
                raise _Giveup
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif code == 0x29:
            stack.append(())
        elif code == 0x7D:
            stack.append({})
        elif code == 0x5D:
            stack.append([])
        elif code == 0x75:  # SETITEMS
            items = pop_mark()
            if not stack or not isinstance(stack[-1], dict) or len(items) % 2:
                raise _Giveup
            for k, v in zip(items[::2], items[1::2], strict=True):
                if isinstance(k, str):
                    stack[-1][k] = v
        elif code == 0x73:  # SETITEM
            if len(stack) < 3 or not isinstance(stack[-3], dict):
                raise _Giveup
            v, k = stack.pop(), stack.pop()
            if isinstance(k, str):
                stack[-1][k] = v
        elif code == 0x63:  # GLOBAL
            stack.append(_Global(arg) if isinstance(arg, str) else None)
        elif code == 0x93:  # STACK_GLOBAL
            if len(stack) < 2:
                raise _Giveup
            name, module = stack.pop(), stack.pop()
            stack.append(_Global(f"{module} {name}") if isinstance(module, str) and isinstance(name, str)
                         else None)  # fmt: skip
        elif code in (0x52, 0x81):  # REDUCE, NEWOBJ
            if len(stack) < 2:
                raise _Giveup
            args = stack.pop()
            stack.append(_Call(stack.pop(), args))
        elif code == 0x62:  # BUILD
            if len(stack) < 2:
                raise _Giveup
            state = stack.pop()
            if isinstance(stack[-1], _Call):
                stack[-1].state = state
        elif code == 0x94:  # MEMOIZE
            memo[next_memo] = stack[-1] if stack else None
            next_memo += 1
        elif code in b"qrp":
            memo[arg] = stack[-1] if stack else None
        elif code in b"hjg":
            stack.append(memo[arg] if arg in memo else earlier(arg))
        elif code == 0x30:  # POP
            if stack:
                stack.pop()
        else:
            raise _Giveup
    if len(stack) != 1:
        raise _Giveup
    return stack[0], memo


def _itemsize(dtype: Any, depth: int = 0) -> tuple[int, bool] | None:
    """(bytes per item, holds Python objects) of a pickled numpy.dtype, or None."""
    if depth > 8 or not (isinstance(dtype, _Call) and isinstance(dtype.func, _Global)
                         and dtype.func.name in _DTYPES):  # fmt: skip
        return None
    typestr = dtype.args[0] if isinstance(dtype.args, tuple) and dtype.args else None
    if not isinstance(typestr, str):
        return None
    m = _TYPESTR.fullmatch(typestr)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    # state: (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
    elsize = state[5] if len(state) >= 6 and isinstance(state[5], int) and state[5] > 0 else None
    parts: list[Any] = []
    if len(state) >= 5 and state[2] is not None:  # a sub-array: (base dtype, shape)
        parts.append(state[2][0] if isinstance(state[2], tuple) and state[2] else None)
    if len(state) >= 5 and state[4] is not None:  # fields: {name: (dtype, offset[, title])}
        if not isinstance(state[4], dict):
            return None
        parts.extend(v[0] if isinstance(v, tuple) and v else None for v in state[4].values())
    if parts:
        inner = [_itemsize(p, depth + 1) for p in parts]
        if elsize is None or any(i is None for i in inner):
            return None
        return elsize, any(i[1] for i in inner if i is not None)
    if kind == "O":
        return 8, True
    if elsize is not None:
        return elsize, False
    if digits:
        size = int(digits) * (4 if kind == "U" else 1)
        return (size, False) if 0 < size <= 1 << 20 else None
    return (_UNIT[kind], False) if kind in _UNIT else None


def array_data(buf: Any, state_start: int, build_offset: int, end: int, scanned: Callable[[int], Any],
               memo_base: int, known: dict[int, Any]) -> tuple[str, int] | None:
    """Where the array of the wrapper whose state spans ``buf[state_start:build_offset]``
    lies: ("raw", offset after its bytes) or ("pickle", offset where its nested pickle
    starts); None when the state is not one assay can read (the scan goes on as a
    plain pickle reader would). ``scanned(i)``: memo entry ``i`` as the scanner knows it
    (a string or a global, else None); ``known``: the dtypes and globals earlier
    wrappers' states memoised (reused by later ones), updated."""
    if build_offset - state_start > MAX_STATE_BYTES:
        return None

    def earlier(i: int) -> Any:
        return known[i] if i in known else scanned(i)

    try:
        state, memo = _state(buf, state_start, build_offset, earlier, memo_base)
    except (_Giveup, PickleSyntaxError, RecursionError):
        return None
    known.update((k, v) for k, v in memo.items() if isinstance(v, _Call | _Global))
    if not isinstance(state, dict):
        return None
    shape = state.get("shape")
    if not isinstance(shape, tuple) or len(shape) > 64 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None
    size = _itemsize(state.get("dtype"))
    if size is None:
        return None
    itemsize, objects = size
    pos = build_offset + 1
    if objects:
        return "pickle", pos
    count = 1
    for d in shape:
        count *= d
        if count * itemsize > end:
            return None  # more bytes than the file holds: not joblib's layout
    if state.get("numpy_array_alignment_bytes") is not None:
        if pos >= end:
            return None
        pos += 1 + buf[pos]
    pos += count * itemsize
    return ("raw", pos) if pos <= end else None
