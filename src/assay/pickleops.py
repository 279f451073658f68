"""Pickle opcodes read the way CPython's unpickler reads them, without running anything.

``read_ops`` walks an opcode stream with the argument rules of the C unpickler
(``_pickle``, which ``pickle.load``, ``torch.load`` and ``numpy.load`` use): the same
lengths, signedness, line and quoting rules, string decodings and protocol limit, so
that the scan stops exactly where a load would fail and never earlier. Where the
pure-Python unpickler (``pickle._Unpickler``, joblib's) reads a text argument that the C
one refuses (``int()``/``float()`` forms such as ``1_0``), the scan reads on as it does.

Frames (protocol 4+) are where readers disagree. The C unpickler treats ``FRAME`` as a
read-ahead hint and reads on across a frame's end; the pure-Python unpickler
(``pickle._Unpickler``, which joblib and dill build on) refuses an opcode that crosses
the end of its frame; a reader that resynchronises at frame ends reads the bytes after
the end as opcodes even when the C reading swallowed them as data. ``read_ops`` follows
the C reading and yields a :data:`FRAME_ANOMALY` event for every disagreement, with the
offset where the other reading resumes, so the caller can scan that reading too.

Pure standard library: :mod:`assay.sniff` uses :func:`probe` to recognise pickles
that have no ``PROTO`` header (protocols 0 and 1).
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FRAME_ANOMALY", "HIGHEST_PROTOCOL", "PickleSyntaxError", "probe", "read_ops"]

HIGHEST_PROTOCOL = 5
FRAME_ANOMALY = -1  # pseudo opcode: arg is (message, offset where the other reading resumes | None)

_U1 = struct.Struct("<B").unpack_from
_U2 = struct.Struct("<H").unpack_from
_I4 = struct.Struct("<i").unpack_from
_U4 = struct.Struct("<I").unpack_from
_U8 = struct.Struct("<Q").unpack_from
_F8 = struct.Struct(">d").unpack_from


class PickleSyntaxError(ValueError):
    """The unpickler would stop here; ``offset`` is the opcode's offset."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset
        self.message = message


# Argument layouts, by opcode byte.
_NONE, _FIXED, _COUNTED, _LINE, _LINE2 = range(5)
_LAYOUT: dict[int, tuple[int, Any, int]] = {}
for _c in b"()012.NQRabdelostu}]\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98":
    _LAYOUT[_c] = (_NONE, None, 0)
for _c, _fn, _n in (
    (ord("J"), _I4, 4), (ord("K"), _U1, 1), (ord("M"), _U2, 2), (ord("G"), _F8, 8),
    (ord("h"), _U1, 1), (ord("j"), _U4, 4), (ord("q"), _U1, 1), (ord("r"), _U4, 4),
    (0x82, _U1, 1), (0x83, _U2, 2), (0x84, _I4, 4), (0x80, _U1, 1), (0x95, _U8, 8),
):
    _LAYOUT[_c] = (_FIXED, _fn, _n)
for _c, _fn, _n in (
    (0x8A, _U1, 1), (0x8B, _I4, 4), (ord("T"), _I4, 4), (ord("U"), _U1, 1),
    (ord("X"), _U4, 4), (0x8C, _U1, 1), (0x8D, _U8, 8), (ord("B"), _U4, 4),
    (ord("C"), _U1, 1), (0x8E, _U8, 8), (0x96, _U8, 8),
):
    _LAYOUT[_c] = (_COUNTED, _fn, _n)
for _c in b"ILSVFPgp":
    _LAYOUT[_c] = (_LINE, None, 0)
for _c in b"ci":
    _LAYOUT[_c] = (_LINE2, None, 0)
OPCODES = frozenset(_LAYOUT)
NO_ARG_OPCODES = frozenset(c for c, (kind, _, _) in _LAYOUT.items() if kind == _NONE)
_TEXT = frozenset(b"XV\x8c\x8d")  # str values
_BYTES = frozenset(b"BC\x8e\x96")  # bytes values, yielded as (start, stop) spans
_STRINGS = frozenset(b"TU")  # protocol 0-2 byte strings (str or bytes, by the loader's encoding)


_STRTOL0 = re.compile(rb"[ \t\n\v\f\r]*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_STRTOD = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.IGNORECASE
)
_C_LONG = 2**63


def _c_string(line: bytes) -> bytes:
    # The C unpickler hands text arguments to strtol/PyLong_FromString as C strings:
    # an embedded NUL ends them ("I\0junk\n" is INT 0).
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def _pylong(s: bytes, base: int) -> int | None:
    try:
        return int(s.decode("ascii"), base)
    except (ValueError, UnicodeDecodeError):
        return None


def _line_value(code: int, line: bytes, offset: int) -> Any:
    """The value of a text opcode's argument (``line`` without its newline), with the
    C unpickler's conversions (strtol, then PyLong_FromString; PyOS_string_to_double)."""
    if code == 0x49:  # I
        s = _c_string(line)
        if _STRTOL0.fullmatch(s) or not s.strip(b" \t\n\v\f\r"):
            # (strtol of nothing gives 0 and stops at the end: accepted)
            text = s.strip().lower().lstrip(b"+")
            neg = text.startswith(b"-")
            text = text.lstrip(b"-")
            if text.startswith(b"0x"):
                value = int(text, 16)
            elif text.startswith(b"0") and len(text) > 1:
                value = int(text, 8)  # strtol's base 0: a leading zero means octal
            else:
                value = int(text or b"0")
            value = -value if neg else value
            if -_C_LONG <= value < _C_LONG:
                return bool(value) if len(line) == 2 and value in (0, 1) else value
        value = _pylong(s, 0)  # overflow or other forms: the C code's fallback
        if value is None:
            raise PickleSyntaxError(offset, "could not convert string to int")
        return value
    if code == 0x4C:  # L
        s = _c_string(line[:-1] if line.endswith(b"L") else line)
        value = _pylong(s, 0)
        if value is None:
            raise PickleSyntaxError(offset, "could not convert string to int")
        return value
    if code == 0x46:  # F
        s = _c_string(line)
        if not _STRTOD.fullmatch(s):
            # The pure-Python unpickler (joblib's) reads it with float(): '1_0', ' 1.5 '
            # load there, and what follows runs. Read on as it does.
            try:
                return float(line)
            except ValueError:
                raise PickleSyntaxError(offset, "could not convert string to float") from None
        return float(s)
    if code == 0x53:  # S
        if len(line) < 2 or line[0] not in b"'\"" or line[-1] != line[0]:
            raise PickleSyntaxError(offset, "the STRING opcode argument must be quoted")
        try:
            return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
        except ValueError as exc:
            raise PickleSyntaxError(offset, f"bad STRING escape: {exc}") from None
    if code == 0x56:  # V
        try:
            return line.decode("raw-unicode-escape")
        except UnicodeDecodeError as exc:
            raise PickleSyntaxError(offset, f"bad UNICODE escape: {exc}") from None
    if code == 0x50:  # P
        try:
            return line.decode("ascii")
        except UnicodeDecodeError:
            raise PickleSyntaxError(offset, "persistent id is not ASCII") from None
    # g, p: memo indexes
    n = _pylong(_c_string(line), 10)
    if n is None:
        raise PickleSyntaxError(offset, "memo index is not an integer")
    if n < 0 and code == 0x70:
        raise PickleSyntaxError(offset, "negative PUT argument")
    return n


def decode_arg(buf: Any, pos: int, end: int, code: int) -> tuple[Any, int]:
    """The argument of the opcode ``code`` at ``pos`` and the offset after it, read as
    the C unpickler reads it (see :func:`read_ops` for the forms)."""
    kind, fn, n = _LAYOUT[code]
    p = pos + 1
    if kind == _NONE:
        return None, p
    if kind == _FIXED:
        if p + n > end:
            raise PickleSyntaxError(pos, "pickle data was truncated")
        arg = fn(buf, p)[0]
        if code == 0x80 and arg > HIGHEST_PROTOCOL:
            raise PickleSyntaxError(pos, f"unsupported pickle protocol: {arg}")
        return arg, p + n
    if kind == _COUNTED:
        if p + n > end:
            raise PickleSyntaxError(pos, "pickle data was truncated")
        size = fn(buf, p)[0]
        p += n
        if size < 0:
            raise PickleSyntaxError(pos, "negative byte count")
        stop = p + size
        if stop > end:
            raise PickleSyntaxError(pos, "pickle data was truncated")
        if code in _BYTES:
            return (p, stop), stop
        if code in _TEXT:
            try:
                return bytes(buf[p:stop]).decode("utf-8", "surrogatepass"), stop
            except UnicodeDecodeError as exc:
                raise PickleSyntaxError(pos, f"bad UTF-8 in string: {exc.reason}") from None
        if code in _STRINGS:
            return bytes(buf[p:stop]).decode("latin-1"), stop
        return int.from_bytes(buf[p:stop], "little", signed=True), stop  # LONG1, LONG4
    if kind == _LINE:
        nl = buf.find(b"\n", p, end)
        if nl < 0:
            raise PickleSyntaxError(pos, "line argument without a newline (truncated)")
        return _line_value(code, bytes(buf[p:nl]), pos), nl + 1
    # _LINE2: GLOBAL, INST
    nl = buf.find(b"\n", p, end)
    nl2 = buf.find(b"\n", nl + 1, end) if nl >= 0 else -1
    if nl2 < 0:
        raise PickleSyntaxError(pos, "GLOBAL/INST argument without a newline (truncated)")
    if nl2 == nl + 1:
        raise PickleSyntaxError(pos, "GLOBAL/INST with an empty name")
    try:
        arg = bytes(buf[p:nl]).decode("utf-8") + " " + bytes(buf[nl + 1 : nl2]).decode("utf-8")
    except UnicodeDecodeError:
        raise PickleSyntaxError(pos, "GLOBAL/INST name is not UTF-8") from None
    return arg, nl2 + 1


def frame_anomaly(pos: int, p: int, frame_end: int) -> tuple[str, int]:
    """The FRAME_ANOMALY argument for an opcode at ``pos``..``p`` that crosses the end
    of its frame."""
    return (f"opcode at byte {pos} runs {p - frame_end} bytes past the end of its "
            f"frame (byte {frame_end}): readers that honour frames read what follows "
            "the frame as opcodes", frame_end)


def new_frame(pos: int, p: int, size: int, frame_end: int, end: int) -> tuple[int, list[tuple[str, None]]]:
    """A FRAME opcode at ``pos`` (argument ``size``, next opcode at ``p``) while the
    current frame ends at ``frame_end`` (-1: none): the new frame end, and anomalies."""
    events = []
    if frame_end > p:
        events.append((f"FRAME at byte {pos} begins inside the frame that ends at byte {frame_end}",
                       None))
    frame_end = p + size
    if frame_end > end:
        events.append((f"FRAME at byte {pos} declares {size} bytes, only {end - p} follow "
                       "(the C unpickler stops here, the Python one reads on)", None))
        frame_end = -1
    return frame_end, events


def read_ops(buf: Any, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, Any, int]]:
    """Yield ``(opcode byte, argument, offset)`` from ``pos`` up to and including STOP.

    ``buf`` is bytes, a memoryview or an mmap. Byte-string arguments come as
    ``(start, stop)`` spans into ``buf`` (they can be large); text arguments as str;
    GLOBAL and INST as ``"module name"``. Raises :class:`PickleSyntaxError` where the
    C unpickler would fail (truncation, bad lengths, bad encodings, unknown opcode).
    Frame disagreements come as ``(FRAME_ANOMALY, (message, resume offset | None),
    offset)`` just before the opcode they concern.
    """
    if end is None:
        end = len(buf)
    layout = _LAYOUT
    frame_end = -1
    while pos < end:
        code = buf[pos]
        if code not in layout:
            raise PickleSyntaxError(pos, f"invalid load key {bytes([code])!r}")
        arg, p = decode_arg(buf, pos, end, code)
        if frame_end >= 0 and p >= frame_end:
            if pos < frame_end < p:
                yield FRAME_ANOMALY, frame_anomaly(pos, p, frame_end), pos
            frame_end = -1
        if code == 0x95:
            frame_end, events = new_frame(pos, p, arg, frame_end, end)
            for ev in events:
                yield FRAME_ANOMALY, ev, pos
        yield code, arg, pos
        if code == 0x2E:  # STOP
            return
        pos = p


def read_ops_until(buf: Any, pos: int, end: int) -> tuple[bool, int]:
    """(True, offset after STOP) when a well-formed pickle starts at ``pos``."""
    try:
        for code, _arg, off in read_ops(buf, pos, end):
            if code == 0x2E:
                return True, off + 1
    except PickleSyntaxError:
        return False, pos
    return False, pos


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_CALLS = frozenset(b"R\x81\x92o")  # REDUCE NEWOBJ NEWOBJ_EX OBJ (INST apart)


def _effects() -> dict[int, tuple[bool, int, int, bool]]:
    """Per opcode: (pops to a mark, values popped below the mark or in all, pushes,
    pushes a mark)."""
    import pickletools

    out = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        mark = pickletools.markobject in before
        out[op.code.encode("latin-1")[0]] = (
            mark,
            # below the mark (e.g. APPENDS' list), or all of them without a mark
            before.index(pickletools.markobject) if mark else len(before),
            len(op.stack_after),
            bool(op.stack_after) and op.stack_after[0] is pickletools.markobject,
        )
    return out


_EFFECT = _effects()


def probe(
    head: Any, *, more: bool = False, names_payload: Callable[[str, str], bool] | None = None
) -> bool | None:
    """Whether ``head`` starts with a pickle, judged by a consistent parse of its
    opcodes with a model of the C unpickler's stack: True when it reaches STOP with a
    value on top (exactly one value, or more when the pickle names a global: the C
    unpickler returns the top one and ignores the rest), or fails only after it has
    called a named global (a loader runs that call before it fails). Text files that happen to start with an opcode
    letter do not pass: names must be identifiers, marks and stack depths must match,
    and an unknown opcode, a stack underflow or a bad argument ends the probe.

    ``names_payload(module, name)`` (the caller's policy) also makes a parse that fails
    on a bad argument a pickle when a GLOBAL before the failure named a payload
    (``cbuiltins\nexec\n`` then a broken string): a broken payload, not a text file.

    With ``more`` (the data goes on past ``head``), a parse that is consistent up to
    the end of ``head`` returns None: read more and ask again (padding must not hide
    a payload).
    """
    if not len(head) or head[0] not in OPCODES or head[0] == 0x2E:
        return False
    stack: list[int] = []  # 0 value, 1 mark, 2 named global
    memo: dict[int, int] = {}
    called = False
    imported = False  # a GLOBAL, INST, STACK_GLOBAL or EXT was read
    named: list[tuple[str, str]] = []
    structure = False  # a MARK, a quoted STRING or a binary opcode: more than lines of text
    try:
        for code, arg, _off in read_ops(head):
            if code == FRAME_ANOMALY:
                continue
            if code == 0x28 or code == 0x53 or code >= 0x80:
                structure = True
            if code == 0x2E:
                if not stack or stack[-1] == 1:
                    return False
                # The C unpickler returns the top value and ignores what lies below it
                # (values, marks): "I0\ncos\nsystem\n..." loads. Below it, only a
                # pickle that names a global counts (plain text rarely parses so far).
                return len(stack) == 1 or imported
            if code in (0x63, 0x69):  # GLOBAL, INST
                module, _, name = arg.partition(" ")
                if not (_NAME.fullmatch(module) and _NAME.fullmatch(name)):
                    return False
                named.append((module, name))
                imported = True
                if code == 0x69:
                    if 1 not in stack:
                        return False
                    del stack[len(stack) - 1 - stack[::-1].index(1):]
                    stack.append(0)
                    called = True
                else:
                    stack.append(2)
                continue
            if code == 0x93:  # STACK_GLOBAL
                if len(stack) < 2 or 1 in stack[-2:]:
                    return False
                del stack[-2:]
                stack.append(2)
                imported = True
                continue
            if code in (0x82, 0x83, 0x84):  # EXT1/2/4: a global from the copyreg registry
                stack.append(2)
                imported = True
                continue
            if code == 0x30 and stack and stack[-1] == 1:
                stack.pop()  # POP right after a MARK pops the mark (the C unpickler's load_pop)
                continue
            if code in (0x70, 0x71, 0x72, 0x94):  # PUT, BINPUT, LONG_BINPUT, MEMOIZE
                if not stack or stack[-1] == 1:
                    return False
                memo[len(memo) if code == 0x94 else arg] = stack[-1]
                continue
            if code in (0x67, 0x68, 0x6A):  # GET, BINGET, LONG_BINGET
                if arg not in memo:
                    return False
                stack.append(memo[arg])
                continue
            if code in _CALLS:
                if code == 0x6F:  # OBJ: the callable sits right above the mark
                    at = len(stack) - stack[::-1].index(1) if 1 in stack else len(stack)
                    target = stack[at] if at < len(stack) else 0
                else:
                    back = 3 if code == 0x92 else 2
                    target = stack[-back] if len(stack) >= back else 0
                called = called or target == 2
            to_mark, pops, pushes, pushes_mark = _EFFECT[code]
            if to_mark:
                if 1 not in stack:
                    return False
                del stack[len(stack) - 1 - stack[::-1].index(1):]
            if pops > len(stack) or 1 in stack[len(stack) - pops:]:
                return False
            if pops:
                del stack[-pops:]
            stack.extend([1] if pushes_mark else [0] * pushes)
    except PickleSyntaxError as exc:
        if called:
            return True
        if more and "truncated" in exc.message:
            return None
        if names_payload is None or not named:
            return False
        # Lines of text can start like a GLOBAL ("ctypes\nstruct\n..."): only a parse with
        # pickle structure beside it (or failing on a quoted STRING) is a broken payload.
        quoted = head[exc.offset : exc.offset + 1] == b"S" and head[exc.offset + 1 : exc.offset + 2] in (b"'", b'"')
        return (structure or quoted) and any(names_payload(m, n) for m, n in named)
    return True if called else None if more else False
