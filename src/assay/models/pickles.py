"""Malicious-pickle detection at the opcode level, and a restricted unpickler.

Nothing here ever imports or calls a global named by the input. The scanner walks
the opcode stream as CPython's unpickler reads it (:mod:`assay.pickleops`, frames
included: a frame boundary that disagrees with the opcodes is a finding, and the
bytes a frame-honouring loader would read as opcodes are scanned too) and simulates the unpickler's stack and
memo with inert placeholders, so that a global whose name is built from string
opcodes (``STACK_GLOBAL``) or hidden behind memo ``PUT``/``GET`` is still resolved.
Each global is judged by an allow-list policy:

- **safe**: known data builders (tensor/storage rebuilders, ``collections.OrderedDict``,
  numpy array reconstruction, TorchScript's ``torch.jit._pickle`` helpers and its
  ``__torch__`` class table, plain builtin containers);
- **dangerous**: anything that can run code, touch files, processes or the network,
  or reach another global (``getattr``, ``importlib``, nested ``pickle.loads``...);
- **suspicious**: every other global. Unknown is not safe.

``scan_file`` finds every pickle in a file: zip entries are recognised by their
content (not their name), nested archives are opened (bounded depth), the several
consecutive pickles of legacy ``torch.save`` files are all scanned, as are the
pickles inside .npy/.npz object arrays (``numpy.load(allow_pickle=True)``), joblib files
past the array bytes joblib writes into the stream (:mod:`.joblib_arrays`), and zip tricks
that make loaders and scanners see different bytes (encryption, local headers that
disagree with the central directory, bad CRCs, duplicate names) are findings.
"""

from __future__ import annotations

import ast
import collections
import functools
import io
import mmap
import os
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from ..errors import InputError, TooLarge
from ..pickleops import (
    FRAME_ANOMALY,
    NO_ARG_OPCODES,
    OPCODES,
    PickleSyntaxError,
    decode_arg,
    frame_anomaly,
    new_frame,
    probe,
    read_ops_until,
)
from ..sniff import names_payload, sniff_bytes
from .joblib_arrays import JOBLIB_WRAPPERS, array_data, global_ref
from .pickle_policy import KERAS_DESERIALISERS, Verdict, classify_global
from .pickle_zip import (  # noqa: F401 - read here and by the archive walk through this module
    MAX_ZIP_ENTRIES,
    ZipEntry,
    _decompressor,
    _inflate_other,
    miniz_directory,
    read_zip_entry,
    zip_entries,
)

Severity = Literal["suspicious", "dangerous"]

__all__ = [
    "PickleFinding",
    "PickleReport",
    "RestrictedUnpickler",
    "ZipEntry",
    "classify_global",
    "looks_like_pickle",
    "read_zip_entry",
    "scan_file",
    "scan_pickle_bytes",
    "zip_entries",
]

# Bounds against hostile inputs; real checkpoints stay far below them.
MAX_PICKLE_BYTES = 512 * 1024**2  # one pickle read into memory for scanning
MAX_ZIP_SCAN_BYTES = 2 * 1024**3  # total bytes inflated while scanning one archive
MAX_ZIP_DEPTH = 3  # zip inside zip inside zip
MAX_NESTED_PICKLE_DEPTH = 3  # pickle bytes inside a pickle
MAX_CONSECUTIVE_PICKLES = 64
SUSPICIOUS_RATIO = 200  # inflated/compressed; pickles and weights compress far less
PROBE_BYTES = 64 * 1024  # how much of a non-pickle-looking entry is tried as a pickle

_RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}


@dataclass(frozen=True)
class PickleFinding:
    """One reason a pickle is not safe. ``global_name`` is ``module.attr`` (empty for
    findings about the container); ``offset`` is the opcode's byte offset in the
    pickle (or the zip header's offset in the archive)."""

    severity: Severity
    global_name: str
    opcode: str
    offset: int
    reason: str


@dataclass
class PickleReport:
    """Safety verdict for one pickle (or one archive's container-level problems)."""

    where: str
    verdict: Verdict = "safe"
    findings: list[PickleFinding] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)  # every global referenced, first-seen order
    protocol: int | None = None
    error: str | None = None  # the pickle is malformed; findings cover the part before it

    def add(self, finding: PickleFinding) -> None:
        self.findings.append(finding)
        if _RANK[finding.severity] > _RANK[self.verdict]:
            self.verdict = finding.severity

    @property
    def dangerous_globals(self) -> list[str]:
        return sorted({f.global_name for f in self.findings if f.severity == "dangerous" and f.global_name})


# -- policy ---------------------------------------------------------------------------

# -- opcode-level scanner ---------------------------------------------------------------


class _Mark:
    __slots__ = ()


_MARK = _Mark()


class _Str:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


class _Bytes:
    """A span of the scanned buffer: values can be large, read them on demand."""

    __slots__ = ("start", "stop")

    def __init__(self, start: int, stop: int) -> None:
        self.start = start
        self.stop = stop


class _Global:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name  # "module attr"; "?" when it could not be resolved statically


class _Made:
    __slots__ = ("by",)

    def __init__(self, by: str) -> None:
        self.by = by  # the global whose call built this object


class _ArrayWrapper(_Made):
    """A joblib NumpyArrayWrapper: its array's bytes follow the BUILD of its state."""

    __slots__ = ("memo_base", "state_start")

    def __init__(self, by: str, state_start: int, memo_base: int) -> None:
        super().__init__(by)
        self.state_start = state_start
        self.memo_base = memo_base


_UNKNOWN = object()
# numpy 1.x pickled a ufunc as _ufunc_reconstruct(module, name): an import of any name
UFUNC_RECONSTRUCTORS = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})
# the globals that rebuild a tensor or a parameter ("module name", as the scanner names them)
_TENSOR_BUILDERS = ("torch._utils _rebuild_", "torch._tensor _rebuild_", "torch.nn.parameter Parameter")
_PROTO_HEAD = re.compile(rb"\x80[\x02-\x05]")
MAX_FRAME_READINGS = 8  # other readings of one pickle scanned after frame anomalies
MAX_JOBLIB_READINGS = 100_000  # joblib arrays whose bytes are also read as opcodes


_GLOBAL_OPENERS = frozenset(OPCODES)  # (bytes that may open a header-less pickle)
_ENCODED_HEADS = frozenset({"gA", "80"})  # how base64 and hex of a pickle header begin
_B64_PICKLE = re.compile(r"gA[IMSU][A-Za-z0-9+/_-]+={0,2}")
_HEX_PICKLE = re.compile(r"800[2-5](?:[0-9a-fA-F]{2})+")


def _encoded_pickle(text: str) -> tuple[str, bytes] | None:
    """The pickle a string carries as base64 (of a protocol 2-5 header: 'gAI', 'gAM',
    'gAS', 'gAU') or as hex ('8002'...'8005'), with the encoding's name; else None."""
    import base64
    import binascii

    if not isinstance(text, str) or len(text) < 16 or len(text) > MAX_PICKLE_BYTES * 2:
        return None
    try:
        if _HEX_PICKLE.fullmatch(text):
            return "hex", bytes.fromhex(text)
        if _B64_PICKLE.fullmatch(text):
            alt = b"-_" if ("-" in text or "_" in text) else None
            data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt)
            return ("base64", data) if _PROTO_HEAD.match(data[:2]) else None
    except (ValueError, binascii.Error):
        return None
    return None


@functools.lru_cache(maxsize=8192)
def _judge(global_name: str) -> tuple[Verdict, str, str]:
    """classify_global for the scanner's "module attr" form, with the dotted name."""
    module, _, attr = global_name.partition(" ")
    verdict, reason = classify_global(module, attr)
    return verdict, reason, f"{module}.{attr}"


def _effect_table() -> dict[int, tuple[bool, int, tuple[Any, ...]]]:
    """Per opcode: (pops down to a mark, values popped below the mark or in all,
    values pushed) as pickletools documents them."""
    out = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        mark = pickletools.markobject in before
        out[op.code.encode("latin-1")[0]] = (
            mark,
            before.index(pickletools.markobject) if mark else len(before),
            tuple(_MARK if x is pickletools.markobject else _UNKNOWN for x in op.stack_after),
        )
    return out


_EFFECTS = _effect_table()


def _tables() -> tuple[list[int], list[int]]:
    """Per opcode byte: how its argument is read (0 not an opcode, 1 none, 2 one
    unsigned byte, 3 SHORT_BINUNICODE, 4 decode_arg), and how run() applies it
    (0 handler or generic stack effect, 1-10 inline cases)."""
    kind = [0] * 256
    for c in OPCODES:
        kind[c] = 1 if c in NO_ARG_OPCODES else 4
    for c in b"Khq\x82":  # BININT1, BINGET, BINPUT, EXT1 (PROTO's limit: decode_arg)
        kind[c] = 2
    kind[0x8C] = 3
    act = [0] * 256
    act[0x94] = 1
    for c in b"qrp":
        act[c] = 2
    for op in pickletools.opcodes:
        c = op.code.encode("latin-1")[0]
        if not op.stack_before and len(op.stack_after) == 1 and op.stack_after[0] is not \
                pickletools.markobject and op.name not in _INLINE_EXCLUDED:
            act[c] = 3
    for c in b"\x8cXVSTU\x8d":
        act[c] = 4
    act[0x28] = 5
    for c in b"hjg":
        act[c] = 6
    act[0x52] = 7
    act[0x2E] = 8
    act[0x80] = 9
    act[0x95] = 10
    return kind, act


# Single-push opcodes with a handler of their own (values assay tracks).
_INLINE_EXCLUDED = frozenset({
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "GLOBAL",
    "GET", "BINGET", "LONG_BINGET", "EMPTY_TUPLE", "PERSID", "EXT1", "EXT2", "EXT4",
})


class _Scan:
    """Simulates the unpickler's stack and memo over one opcode stream of ``buf``."""

    def __init__(self, report: PickleReport, buf: Any, depth: int) -> None:
        self.report = report
        self.buf = buf
        self.depth = depth
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.seen: set[str] = set()
        self.flagged: set[tuple[str, str]] = set()
        self.readings = 0  # other readings started after frame anomalies
        self.resume: int | None = None  # set by a handler: go on reading from here
        self.end = 0
        self.joblib_memo: dict[int, Any] = {}  # memo values joblib wrapper states left
        self.joblib_readings = 0  # arrays' bytes also read as plain pickle.load would

    def run(self, pos: int, end: int) -> tuple[bool, int]:
        """Consume ops from ``pos`` until STOP: (True, offset after STOP), or raise
        PickleSyntaxError where a load would fail (findings so far stand).

        The same reading as :func:`assay.pickleops.read_ops`, fused with the stack
        simulation: opcodes are classified by table, the frequent ones decoded and
        applied inline (this loop is the scanner's hot path)."""
        buf = self.buf
        handlers = _HANDLERS
        effects = _EFFECTS
        arg_kind = _ARG_KIND
        action = _ACTION
        stack = self.stack
        memo = self.memo
        unknown = _UNKNOWN
        frame_end = -1
        self.end = end
        while pos < end:
            code = buf[pos]
            # -- decode
            k = arg_kind[code]
            if k == 1:  # no argument
                arg: Any = None
                p = pos + 1
            elif k == 2:  # one unsigned byte
                if pos + 2 > end:
                    raise PickleSyntaxError(pos, "pickle data was truncated")
                arg = buf[pos + 1]
                p = pos + 2
            elif k == 3:  # SHORT_BINUNICODE
                if pos + 2 > end:
                    raise PickleSyntaxError(pos, "pickle data was truncated")
                p = pos + 2 + buf[pos + 1]
                if p > end:
                    raise PickleSyntaxError(pos, "pickle data was truncated")
                try:
                    arg = bytes(buf[pos + 2 : p]).decode("utf-8", "surrogatepass")
                except UnicodeDecodeError as exc:
                    raise PickleSyntaxError(pos, f"bad UTF-8 in string: {exc.reason}") from None
            elif k == 4:
                arg, p = decode_arg(buf, pos, end, code)
            else:
                raise PickleSyntaxError(pos, f"invalid load key {bytes([code])!r}")
            # -- frames (see assay.pickleops)
            if frame_end >= 0 and p >= frame_end:
                if pos < frame_end < p:
                    self.op_frame_anomaly(frame_anomaly(pos, p, frame_end), pos)
                frame_end = -1
            # -- apply
            a = action[code]
            if a == 1:  # MEMOIZE
                memo[len(memo)] = stack[-1] if stack else unknown
            elif a == 2:  # BINPUT, LONG_BINPUT, PUT
                memo[arg] = stack[-1] if stack else unknown
            elif a == 3:  # a value assay does not track (ints, floats, None, ...)
                stack.append(unknown)
            elif a == 4:  # strings
                stack.append(_Str(arg))
                if arg[:2] in _ENCODED_HEADS:
                    self._encoded(arg, pos)
            elif a == 5:  # MARK
                stack.append(_MARK)
            elif a == 6:  # BINGET, LONG_BINGET, GET
                stack.append(memo.get(arg, unknown))
            elif a == 7 and len(stack) >= 2 and type(stack[-2]) is _Global:  # REDUCE
                args = stack.pop()
                target = stack.pop()
                made: Any = None
                if target.name != "?":
                    self.reference(target.name, "REDUCE", pos, "calls")
                    dotted = _judge(target.name)[2]
                    if dotted in KERAS_DESERIALISERS:
                        self._keras_call(dotted, args, pos)
                    elif dotted in UFUNC_RECONSTRUCTORS:
                        made = self._import_call(dotted, args, pos)
                stack.append(made or _Made(target.name))
            elif a == 8:  # STOP
                return True, pos + 1
            elif a == 9:  # PROTO
                self.report.protocol = arg
            elif a == 10:  # FRAME
                frame_end, events = new_frame(pos, p, arg, frame_end, end)
                for ev in events:
                    self.op_frame_anomaly(ev, pos)
            else:
                h = handlers.get(code)
                if h is not None:
                    h(self, arg, pos)
                    if self.resume is not None:  # joblib array bytes skipped
                        p, self.resume = self.resume, None
                else:
                    to_mark, pops, pushes = effects[code]
                    if to_mark:
                        self.pop_mark()
                    for _ in range(pops):
                        if stack:
                            stack.pop()
                    stack.extend(pushes)
            pos = p
        return False, end

    # stack helpers that tolerate malformed streams (the scan must not crash on them)
    def pop(self) -> Any:
        return self.stack.pop() if self.stack else _UNKNOWN

    def pop_mark(self) -> list[Any]:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        items = stack[:]  # no mark: a malformed stream, take what there is
        stack.clear()
        return items

    def reference(self, global_name: str, opcode: str, offset: int, how: str) -> None:
        if global_name not in self.seen:
            self.seen.add(global_name)
            self.report.globals.append(global_name.replace(" ", ".", 1))
        if global_name == "?":
            return
        verdict, reason, dotted = _judge(global_name)
        if verdict == "safe" or (global_name, how) in self.flagged:
            return  # one finding per global and kind of use is enough
        self.flagged.add((global_name, how))
        if dotted not in KERAS_DESERIALISERS:
            # (a Keras deserialiser is judged by the archive it is called on: _keras_call)
            self.report.add(PickleFinding(verdict, dotted, opcode, offset, f"{how}: {reason}"))

    def op_frame_anomaly(self, arg: Any, offset: int) -> None:
        message, resume = arg
        self.report.add(PickleFinding("suspicious", "", "FRAME", offset, f"anomalous framing: {message}"))
        if resume is None or self.readings >= MAX_FRAME_READINGS:
            return
        self.readings += 1
        # The reading a frame-honouring loader makes: resume at the frame's end with
        # the stack and memo as they were (copies: the C reading goes on too).
        other = _Scan(PickleReport(where=self.report.where), self.buf, self.depth)
        other.stack = list(self.stack)
        other.memo = dict(self.memo)
        other.readings = self.readings
        try:
            other.run(resume, len(self.buf))
        except PickleSyntaxError:
            pass
        for f in other.report.findings:
            self.report.add(PickleFinding(
                f.severity, f.global_name, f.opcode, f.offset,
                f"hidden from the C reading by a frame overrun (read from byte {resume}): {f.reason}",
            ))
        for g in other.report.globals:
            if g not in self.report.globals:
                self.report.globals.append(g)

    def op_proto(self, arg: Any, offset: int) -> None:
        self.report.protocol = arg

    def op_frame(self, arg: Any, offset: int) -> None:
        pass

    # strings and bytes
    def _push_str(self, arg: Any, offset: int) -> None:
        self.stack.append(_Str(arg))
        if arg[:2] in _ENCODED_HEADS:
            self._encoded(arg, offset)

    def _encoded(self, arg: Any, offset: int) -> None:
        """A pickle carried as base64 or hex text: the same nested payload as pickle
        bytes (_push_bytes), one decode further (ModelAudit's nested_pickle_base64/_hex)."""
        decoded = _encoded_pickle(arg) if self.depth < MAX_NESTED_PICKLE_DEPTH else None
        if decoded is None:
            return
        how, data = decoded
        inner = scan_pickle_bytes(data, where=f"{self.report.where}@{offset}", _depth=self.depth + 1)
        if inner.error is not None:
            return  # text that only starts like one ('gASoline'): not a pickle
        for f in inner.findings:
            self.report.add(PickleFinding(f.severity, f.global_name, f.opcode, offset,
                                          f"in a {how}-encoded pickle nested at byte {offset}: {f.reason}"))

    def _push_bytes(self, arg: Any, offset: int) -> None:
        start, stop = arg
        self.stack.append(_Bytes(start, stop))
        if self.depth >= MAX_NESTED_PICKLE_DEPTH or stop - start <= 2:
            return
        headed = bool(_PROTO_HEAD.match(self.buf[start : start + 2]))
        # A header-less (protocol 0/1) pickle is read by pickle.loads as well: probed (array
        # data fails at once), scanned when it parses to its end, and only the globals it
        # names count (bytes that merely parse are no finding).
        if not headed and not (self.buf[start] in _GLOBAL_OPENERS and probe(
                self.buf[start : min(stop, start + PROBE_BYTES)], more=stop - start > PROBE_BYTES) is True):
            return
        # Pickle bytes inside a pickle: harmless unless something loads them,
        # but whatever would load them must not hide what they carry.
        inner = scan_pickle_bytes(bytes(self.buf[start:stop]), where=f"{self.report.where}@{offset}",
                                  _depth=self.depth + 1)
        for f in inner.findings:
            if headed or f.global_name:
                self.report.add(PickleFinding(f.severity, f.global_name, f.opcode, offset,
                                              f"in a pickle nested at byte {offset}: {f.reason}"))

    # memo
    def _put(self, arg: Any, offset: int) -> None:
        self.memo[arg] = self.stack[-1] if self.stack else _UNKNOWN

    def op_memoize(self, arg: Any, offset: int) -> None:
        self.memo[len(self.memo)] = self.stack[-1] if self.stack else _UNKNOWN

    def _get(self, arg: Any, offset: int) -> None:
        self.stack.append(self.memo.get(arg, _UNKNOWN))

    def op_dup(self, arg: Any, offset: int) -> None:
        self.stack.append(self.stack[-1] if self.stack else _UNKNOWN)

    def _tuple(self, n: int) -> None:
        stack = self.stack
        if len(stack) >= n:
            items = tuple(stack[-n:])
            del stack[-n:]
        else:
            items = (*[_UNKNOWN] * (n - len(stack)), *stack)
            stack.clear()
        stack.append(items)

    def op_tuple(self, arg: Any, offset: int) -> None:
        self.stack.append(tuple(self.pop_mark()))

    def op_tuple1(self, arg: Any, offset: int) -> None:
        self._tuple(1)

    def op_tuple2(self, arg: Any, offset: int) -> None:
        self._tuple(2)

    def op_tuple3(self, arg: Any, offset: int) -> None:
        self._tuple(3)

    def op_empty_tuple(self, arg: Any, offset: int) -> None:
        self.stack.append(())

    # globals
    def op_global(self, arg: Any, offset: int) -> None:
        self.reference(arg, "GLOBAL", offset, "imports")
        self.stack.append(_Global(arg))

    def op_stack_global(self, arg: Any, offset: int) -> None:
        attr = self.pop()
        module = self.pop()
        if isinstance(module, _Str) and isinstance(attr, _Str):
            name = f"{module.value} {attr.value}"
            self.reference(name, "STACK_GLOBAL", offset, "imports")
        else:
            name = "?"
            self.reference(name, "STACK_GLOBAL", offset, "imports")
            self.report.add(PickleFinding(
                "dangerous", "", "STACK_GLOBAL", offset,
                "imports a global whose name is computed at load time (hidden from scanners)",
            ))
        self.stack.append(_Global(name))

    def _ext(self, arg: Any, offset: int) -> None:
        self.report.add(PickleFinding(
            "suspicious", "", "EXT", offset,
            f"imports global #{arg} from the copyreg extension registry (not resolvable statically)",
        ))
        self.stack.append(_Global("?"))

    # calls
    def _called(self, target: Any, args: Any, opcode: str, offset: int) -> None:
        if isinstance(target, _Global):
            if target.name != "?":
                self.reference(target.name, opcode, offset, "calls")
                if target.name.replace(" ", ".", 1) in KERAS_DESERIALISERS:
                    self._keras_call(target.name.replace(" ", ".", 1), args, offset)
            if target.name in JOBLIB_WRAPPERS:
                self.stack.append(_ArrayWrapper(target.name, offset + 1, len(self.memo)))
                return
            dotted = target.name.replace(" ", ".", 1)
            if dotted in UFUNC_RECONSTRUCTORS:
                self.stack.append(self._import_call(dotted, args, offset))
                return
            self.stack.append(_Made(target.name))
        else:
            self.report.add(PickleFinding(
                "suspicious", "", opcode, offset,
                "calls an object that is not a named global (callable computed at load time)",
            ))
            self.stack.append(_UNKNOWN)

    def _import_call(self, name: str, args: Any, offset: int) -> _Global:
        """numpy 1.x's _ufunc_reconstruct(module, name) imports module and returns its
        attribute (any one: ('os', 'system') gives os.system): judged as that import,
        and its result is that global for what the pickle does with it next."""
        if (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], _Str)
                and isinstance(args[1], _Str)):  # fmt: skip
            resolved = f"{args[0].value} {args[1].value}"
            self.reference(resolved, "REDUCE", offset, f"imports through {name}")
            return _Global(resolved)
        self.report.add(PickleFinding(
            "dangerous", name, "REDUCE", offset,
            f"{name} imports a module and attribute computed at load time (hidden from scanners)",
        ))
        return _Global("?")

    def _keras_call(self, name: str, args: Any, offset: int) -> None:
        """deserialize_model_from_bytecode(archive): judged by the archive it loads."""
        blob = args[0] if isinstance(args, tuple) and len(args) == 1 else None
        if not isinstance(blob, _Bytes):
            self.report.add(PickleFinding(
                "dangerous", name, "REDUCE", offset,
                "Keras deserialiser called on something other than archive bytes "
                "(it loads with safe_mode off)",
            ))
            return
        from .formats.keras import scan_keras_bytes

        for f in scan_keras_bytes(bytes(self.buf[blob.start : blob.stop]),
                                  where=f"{self.report.where}@{offset}"):
            self.report.add(PickleFinding(
                f.severity, f.global_name or name, "REDUCE", offset,
                f"in the Keras archive {name} loads (safe_mode off): {f.reason}",
            ))

    def op_reduce(self, arg: Any, offset: int) -> None:
        args = self.pop()
        self._called(self.pop(), args, "REDUCE", offset)

    def op_newobj(self, arg: Any, offset: int) -> None:
        args = self.pop()
        self._called(self.pop(), args, "NEWOBJ", offset)

    def op_newobj_ex(self, arg: Any, offset: int) -> None:
        self.pop()
        args = self.pop()
        self._called(self.pop(), args, "NEWOBJ_EX", offset)

    def op_obj(self, arg: Any, offset: int) -> None:
        items = self.pop_mark()
        self._called(items[0] if items else _UNKNOWN, tuple(items[1:]), "OBJ", offset)

    def op_inst(self, arg: Any, offset: int) -> None:
        self.pop_mark()
        self.reference(arg, "INST", offset, "imports and calls")
        self.stack.append(_Made(arg))

    def op_build(self, arg: Any, offset: int) -> None:
        self.pop()  # state; BUILD calls obj.__setstate__(state) on the object below
        target = self.stack[-1] if self.stack else _UNKNOWN
        if isinstance(target, _ArrayWrapper):
            self._joblib_array(target, offset)
            return
        if isinstance(target, _Global) and target.name != "?":
            # BUILD on a class or function object itself (not an instance) sets its
            # attributes: a known gadget for patching modules at load time.
            self.report.add(PickleFinding(
                "dangerous", target.name.replace(" ", "."), "BUILD", offset,
                "sets attributes on an imported global (monkey-patching at load time)",
            ))

    def _joblib_array(self, wrapper: _ArrayWrapper, offset: int) -> None:
        """joblib's unpickler reads the wrapped array's bytes right after this BUILD
        (joblib_arrays): go on after them, as it does. A plain pickle.load would read
        those bytes as opcodes instead: that reading is scanned too."""
        def scanned(i: int) -> Any:
            v = self.memo.get(i)
            return v.value if isinstance(v, _Str) else global_ref(v.name) if isinstance(v, _Global) else None

        where = array_data(self.buf, wrapper.state_start, offset, self.end, scanned, wrapper.memo_base,
                           self.joblib_memo)  # fmt: skip
        if where is None:
            return  # not joblib's layout after all: read on as pickle.load would
        kind, pos = where
        if kind == "raw":
            # Array bytes read as opcodes are mostly noise (a stray STACK_GLOBAL on two
            # numbers, a call on nothing: pickle.load fails there): only a dangerous
            # global named in them is a payload.
            self._other_reading(offset + 1, "read as plain pickle.load reads it (joblib reads "
                                "these bytes as array data)", named_dangerous_only=True)  # fmt: skip
            self.resume = pos
            return
        # An array of Python objects: a whole pickle, which joblib loads with a fresh
        # unpickler (a plain pickle.load would read it with this one's memo and fail).
        if self.depth >= MAX_NESTED_PICKLE_DEPTH:
            self.report.add(PickleFinding("suspicious", "", "BUILD", offset,
                                          "joblib object array nested too deep to scan"))
            return
        inner = PickleReport(where=self.report.where)
        after = _scan_buffer(self.buf, pos, self.end, inner, self.depth + 1)
        for f in inner.findings:
            self.report.add(PickleFinding(f.severity, f.global_name, f.opcode, f.offset,
                                          f"in a joblib object array at byte {pos}: {f.reason}"))
        for g in inner.globals:
            if g not in self.report.globals:
                self.report.globals.append(g)
        if after is not None:
            self.resume = after

    def _other_reading(self, start: int, how: str, *, named_dangerous_only: bool = False) -> None:
        """Scan the opcodes another loader would read from ``start`` (a copy of the
        stack, the memo seen through an overlay: this reading goes on too); its findings,
        labelled with ``how``. ``named_dangerous_only``: the bytes are mostly data (joblib
        arrays, one reading each, as many as there are arrays), only a named dangerous
        global counts."""
        if named_dangerous_only:
            if self.joblib_readings >= MAX_JOBLIB_READINGS:
                return
            self.joblib_readings += 1
        elif self.readings >= MAX_FRAME_READINGS:
            return
        else:
            self.readings += 1
        other = _Scan(PickleReport(where=self.report.where), self.buf, self.depth)
        other.stack = list(self.stack)
        other.memo = cast(dict[int, Any], collections.ChainMap({}, self.memo))
        other.readings = MAX_FRAME_READINGS if named_dangerous_only else self.readings
        other.joblib_readings = MAX_JOBLIB_READINGS
        try:
            other.run(start, self.end)
        except PickleSyntaxError:
            pass
        for f in other.report.findings:
            if named_dangerous_only and not (f.severity == "dangerous" and f.global_name):
                continue
            self.report.add(PickleFinding(f.severity, f.global_name, f.opcode, f.offset,
                                          f"{how} (from byte {start}): {f.reason}"))

    # items set on a container: a dict (or a list for APPENDS) in any real pickle
    def op_setitem(self, arg: Any, offset: int) -> None:
        stack = self.stack
        del stack[-2:]
        self._item_target(stack[-1] if stack else _UNKNOWN, "SETITEM", offset)

    def op_setitems(self, arg: Any, offset: int) -> None:
        self.pop_mark()
        self._item_target(self.stack[-1] if self.stack else _UNKNOWN, "SETITEMS", offset)

    def _item_target(self, target: Any, opcode: str, offset: int) -> None:
        if isinstance(target, _Made) and target.by.startswith(_TENSOR_BUILDERS):
            # torch.load(weights_only=True) before 2.10 wrote past a tensor's memory
            # when a pickle set items on one (CVE-2026-24747): no checkpoint does this.
            self.report.add(PickleFinding(
                "dangerous", target.by.replace(" ", "."), opcode, offset,
                "sets items on a tensor (corrupts memory in torch.load(weights_only=True) "
                "before torch 2.10, CVE-2026-24747; no checkpoint does this)",
            ))

    def op_persid(self, arg: Any, offset: int) -> None:
        self.stack.append(_UNKNOWN)

    def op_binpersid(self, arg: Any, offset: int) -> None:
        pid = self.pop()
        if (isinstance(pid, tuple) and len(pid) == 4 and isinstance(pid[0], _Str)
                and pid[0].value == "module" and isinstance(pid[1], _Global)):
            # Legacy whole-model torch.save: ('module', class, file, source); torch's
            # persistent_load hands back the class, which the pickle then calls.
            self.stack.append(pid[1])
            return
        self.stack.append(_UNKNOWN)


def _handlers() -> dict[int, Callable[[_Scan, Any, int], None]]:
    s = _Scan
    table: dict[str, Callable[[_Scan, Any, int], None]] = {
        "PROTO": s.op_proto, "FRAME": s.op_frame,
        "STRING": s._push_str, "BINSTRING": s._push_str, "SHORT_BINSTRING": s._push_str,
        "UNICODE": s._push_str, "BINUNICODE": s._push_str, "SHORT_BINUNICODE": s._push_str,
        "BINUNICODE8": s._push_str,
        "BINBYTES": s._push_bytes, "SHORT_BINBYTES": s._push_bytes, "BINBYTES8": s._push_bytes,
        "BYTEARRAY8": s._push_bytes,
        "PUT": s._put, "BINPUT": s._put, "LONG_BINPUT": s._put, "MEMOIZE": s.op_memoize,
        "GET": s._get, "BINGET": s._get, "LONG_BINGET": s._get, "DUP": s.op_dup,
        "TUPLE": s.op_tuple, "TUPLE1": s.op_tuple1, "TUPLE2": s.op_tuple2,
        "TUPLE3": s.op_tuple3, "EMPTY_TUPLE": s.op_empty_tuple,
        "GLOBAL": s.op_global, "STACK_GLOBAL": s.op_stack_global,
        "EXT1": s._ext, "EXT2": s._ext, "EXT4": s._ext,
        "REDUCE": s.op_reduce, "NEWOBJ": s.op_newobj, "NEWOBJ_EX": s.op_newobj_ex,
        "OBJ": s.op_obj, "INST": s.op_inst, "BUILD": s.op_build,
        "SETITEM": s.op_setitem, "SETITEMS": s.op_setitems,
        "PERSID": s.op_persid, "BINPERSID": s.op_binpersid,
    }
    out = {op.code.encode("latin-1")[0]: table[op.name] for op in pickletools.opcodes
           if op.name in table}
    out[FRAME_ANOMALY] = s.op_frame_anomaly
    return out


_HANDLERS = _handlers()
_ARG_KIND, _ACTION = _tables()


def scan_pickle_bytes(data: bytes, *, where: str, _depth: int = 0) -> PickleReport:
    """Scan one pickle (the first in ``data``) without executing it."""
    report = PickleReport(where=where)
    if len(data) > MAX_PICKLE_BYTES:
        report.error = f"pickle of {len(data)} bytes exceeds the scan limit of {MAX_PICKLE_BYTES}"
        report.add(PickleFinding("suspicious", "", "", 0, report.error))
        return report
    _scan_buffer(data, 0, len(data), report, _depth)
    return report


def _scan_buffer(buf: Any, pos: int, end: int, report: PickleReport, depth: int = 0) -> int | None:
    """Scan from ``pos`` to STOP; the offset after STOP, or None when the pickle is
    malformed or ends early (then ``report.error`` says why; findings for the part a
    loader would run before failing stand)."""
    scan = _Scan(report, buf, depth)
    try:
        done, after = scan.run(pos, end)
    except PickleSyntaxError as exc:
        report.error = f"malformed pickle: {exc}"
        report.add(PickleFinding("suspicious", "", "", exc.offset, report.error))
        return None
    if not done:
        report.error = "pickle ends without a STOP opcode"
        report.add(PickleFinding("suspicious", "", "", end, report.error))
        return None
    return after


def looks_like_pickle(path: Path) -> bool:
    """Whether the start of ``path`` is a pickle (protocols 0-5), judged by a
    consistent parse of its opcodes (see :func:`assay.pickleops.probe`)."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _is_pickle_at(mm, 0, len(mm))
    except (OSError, ValueError):
        return False


# -- whole files -----------------------------------------------------------------------

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_MAGIC_PICKLE = b"\x80\x02\x8a\x0a" + _TORCH_MAGIC.to_bytes(10, "little") + b"."
_STORAGE_ENTRY = re.compile(r"(?:^|/)(?:data|\.data)/\d+$|(?:^|/)constants/\d+$")
MAX_PROBE_BYTES = 16 * 1024**2  # how far a consistent-so-far opcode stream is followed


def scan_file(path: Path | str) -> list[PickleReport]:
    """Safety reports for every pickle in ``path`` (empty for pickle-free formats).

    Raises InputError subclasses only when the file cannot be read at all.
    """
    where = os.fspath(path)
    try:
        # os-level reads: a scan of many small files is dominated by opening them,
        # and a plain descriptor costs half of a buffered file object.
        fd = os.open(where, _O_READ)
        try:
            size = os.fstat(fd).st_size
            head = os.read(fd, size + 1 if size <= SMALL_FILE_BYTES else 64)
            if size <= SMALL_FILE_BYTES:
                while len(head) < size:  # (short reads: pipes, network file systems)
                    more = os.read(fd, size - len(head))
                    if not more:
                        break
                    head += more
            kind = _file_kind(head, size)
            if kind == "zip":
                with os.fdopen(os.dup(fd), "rb") as f:
                    return _scan_zip(f, where, depth=0)
            if kind == "hdf5":
                from .formats.keras import scan_h5

                return scan_h5(Path(where))
            if kind == "none":
                if not head or head[0] not in OPCODES:
                    return []  # pickle-free formats, validated by their readers
                # A safetensors (or GGUF) file whose first bytes are also opcodes: its
                # header length can start a pickle whose strings swallow the JSON
                # header, then run a payload in the tensor data under pickle.load
                # (torch.load of a .bin). Scanned as the pickle it also is.
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                    if not _is_pickle_at(mm, 0, size):
                        return []
                    reports = _scan_raw(mm, where)
                poly = PickleReport(where=where)
                poly.add(PickleFinding("suspicious", "", "polyglot", 0, (
                    f"file is both a {sniff_bytes(head[:64], size, pickles=False).format} file and a "
                    "pickle (a polyglot): pickle.load and torch.load read it as a pickle")))
                return [poly, *reports]
            if size <= SMALL_FILE_BYTES:
                reports = _scan_raw(head, where)
            else:
                # A memory map reads like bytes but never allocates what a length field
                # claims: a slice past the end just returns the bytes that exist.
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                    reports = _scan_raw(mm, where)
            return reports + _hdf5_behind(fd, size, where, bool(reports))
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(Path(where), f"cannot read: {exc.strerror or exc}") from exc


def _hdf5_behind(fd: int, size: int, where: str, pickled: bool) -> list[PickleReport]:
    """The Keras config of an HDF5 file behind a user block (hdf5_superblock), which
    can hold a pickle: h5py and Keras read the file from its superblock, pickle.load
    from byte 0."""
    from ..sniff import hdf5_superblock

    with os.fdopen(os.dup(fd), "rb") as f:
        at = hdf5_superblock(f, size)
    if at is None:
        return []
    from .formats.keras import scan_h5

    found = scan_h5(Path(where))
    if pickled:
        poly = PickleReport(where=where)
        poly.add(PickleFinding("suspicious", "", "polyglot", at, (
            f"file is both a pickle and an HDF5 file (its superblock at byte {at}, behind a user block)")))
        found.insert(0, poly)
    return found


def _file_kind(head: bytes, size: int) -> str:
    if head[:2] in _PICKLE_STARTS:
        return "raw"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if not head:
        return "none"
    fmt = sniff_bytes(head[:64], size, pickles=False).format
    if fmt == "hdf5":
        return "hdf5"
    return "none" if fmt in ("safetensors", "gguf") else "raw"


SMALL_FILE_BYTES = 256 * 1024  # read at once; larger files are memory-mapped
_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_PICKLE_STARTS = frozenset(b"\x80" + bytes([p]) for p in range(2, 6))


def _scan_raw(buf: Any, where: str) -> list[PickleReport]:
    ends: list[int] = []
    reports = _scan_consecutive(buf, where, ends)
    # An end-of-central-directory inside a pickle's own byte string (a Keras archive
    # pickled by tf_keras) is data; one after the pickles makes the file a zip too.
    if _has_zip_directory(buf, max(ends, default=0)):
        # A pickle that is also a zip: loaders that check the first bytes unpickle
        # it, scanners that trust zipfile.is_zipfile look inside. Scan both.
        poly = PickleReport(where=where)
        poly.add(PickleFinding("suspicious", "", "zip", 0,
                               "file is both a pickle/other data and a zip archive (polyglot)"))
        reports.append(poly)
        try:
            if isinstance(buf, bytes):
                buf = io.BytesIO(buf)
            buf.seek(0)
            reports.extend(_scan_zip(buf, where, depth=0))
        except InputError:
            pass
    return reports


def scan_embedded_bytes(data: bytes, *, where: str, depth: int = 0) -> list[PickleReport]:
    """Safety reports for torch.save output (a zip or a legacy pickle) held in memory,
    as a model carries one inside another (Keras' TorchModuleWrapper)."""
    if data[:4] == b"PK\x03\x04":
        if depth >= MAX_ZIP_DEPTH:
            report = PickleReport(where=where)
            report.add(PickleFinding("suspicious", "", "zip", 0, "archives nested too deeply, not scanned"))
            return [report]
        try:
            return _scan_zip(io.BytesIO(data), where, depth)
        except InputError as exc:
            report = PickleReport(where=where, error=exc.reason)
            report.add(PickleFinding("suspicious", "", "zip", 0, f"embedded archive unreadable: {exc.reason}"))
            return [report]
    reports = _scan_consecutive(data, where)
    if not reports:
        report = PickleReport(where=where)
        report.add(PickleFinding("suspicious", "", "data", 0,
                                 "embedded data is neither a pickle nor a zip archive"))
        reports = [report]
    return reports


def _has_zip_directory(buf: Any, after: int = 0) -> bool:
    return b"PK\x05\x06" in buf[max(after, len(buf) - 65_557):]  # EOCD + longest comment


_NPY_HEADER = re.compile(
    rb"\{'descr': '(?P<descr>[<>|=]?[a-zA-Z]\d*)', 'fortran_order': (?P<fo>True|False), "
    rb"'shape': \((?P<shape>(?:\d+, ?)*\d*)\), \}[ ]*\n"
)


def npy_header(head: bytes) -> tuple[dict[str, Any], int] | None:
    """The header dict of a .npy file and the offset where its data starts, or None
    when ``head`` is not a well-formed .npy header. Parsed as a literal, never run."""
    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        return None
    major = head[6]
    if major == 1:
        (n,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif major in (2, 3) and len(head) >= 12:
        (n,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        return None
    raw = head[start : start + n]
    if len(raw) < n:
        return None
    m = _NPY_HEADER.match(raw)
    if m is not None:
        # numpy's own layout, read without the general literal parser
        try:
            shape = tuple(int(d) for d in m["shape"].split(b",") if d.strip())
        except ValueError:  # a dimension of more digits than int() converts (4,300)
            return None
        return {"descr": m["descr"].decode("ascii"), "fortran_order": m["fo"] == b"True",
                "shape": shape}, start + n
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        try:
            header = ast.literal_eval(text)
        except SyntaxError:
            if major == 3:
                raise
            # numpy reads version 1 and 2 headers written by Python 2 ('shape': (3L,))
            # after dropping the L suffixes; so does this reading
            header = ast.literal_eval(_drop_long_suffixes(text))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return None
    if not isinstance(header, dict) or not {"descr", "shape"} <= header.keys():
        return None
    return header, start + n


def _drop_long_suffixes(text: str) -> str:
    """numpy's _filter_header: a NAME token 'L' right after a NUMBER token is dropped."""
    import tokenize

    tokens = []
    after_number = False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if not (after_number and tok.type == tokenize.NAME and tok.string == "L"):
                tokens.append(tok)
            after_number = tok.type == tokenize.NUMBER
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return text


def _descr_has_object(descr: Any) -> bool:
    """Whether numpy.load reads an array of this ``descr`` with pickle.load: its dtype
    holds Python objects however it is spelt ('|O', 'object', '2O', 'i4,O', a field or
    sub-array of objects), as numpy itself parses it."""
    try:
        from numpy.lib.format import descr_to_dtype

        return bool(descr_to_dtype(descr).hasobject)
    except Exception:  # noqa: BLE001 - what numpy refuses: judged by the spelling below
        pass
    # (older numpy versions read a few more spellings: 'object0', 'O8')
    if isinstance(descr, str):
        return "O" in descr or "object" in descr
    if isinstance(descr, tuple) and descr:  # a sub-array: (type, shape)
        return _descr_has_object(descr[0])
    if isinstance(descr, list):  # fields: (name, type) or (name, type, shape)
        return any(isinstance(f, tuple | list) and len(f) >= 2 and _descr_has_object(f[1]) for f in descr)
    return False


MAX_NPY_HEADER = 64 * 1024**2  # numpy writes a few hundred bytes; 10,000 without allow_pickle


def npy_header_end(head: Any) -> int | None:
    """Where a .npy header says it ends (version 1: 2-byte length, 2 and 3: 4 bytes)."""
    if len(head) < 10 or head[:6] != b"\x93NUMPY":
        return None
    if head[6] == 1:
        return 10 + struct.unpack_from("<H", head, 8)[0]
    if head[6] in (2, 3) and len(head) >= 12:
        return 12 + struct.unpack_from("<I", head, 8)[0]
    return None


def _npy_pickle_offset(head: bytes) -> int | None:
    """Where the pickle of a .npy object array starts (numpy.load(allow_pickle=True)
    unpickles it), or None for other files and plain arrays."""
    parsed = npy_header(head)
    if parsed is None:
        return None
    header, start = parsed
    return start if _descr_has_object(header["descr"]) else None


def _is_pickle_at(buf: Any, start: int, end: int) -> bool:
    """Whether a pickle starts at ``start``: a protocol 2+ header, or a consistent
    parse of the opcodes (followed as far as MAX_PROBE_BYTES when it stays consistent)."""
    head = buf[start : start + PROBE_BYTES]
    if _PROTO_HEAD.match(head):
        return True
    verdict = probe(head, more=start + PROBE_BYTES < end, names_payload=names_payload)
    if verdict is None:
        stop = min(end, start + MAX_PROBE_BYTES)
        verdict = probe(buf[start:stop], more=stop < end, names_payload=names_payload)
    # Still consistent after MAX_PROBE_BYTES of opcodes: data is not like that.
    return verdict is not False


def _scan_consecutive(buf: Any, where: str, ends: list[int] | None = None) -> list[PickleReport]:
    """Scan the pickles at the start of ``buf``. Legacy torch.save files hold
    five (magic number, protocol, system info, data, storage keys) before raw
    storage bytes; other files hold one, sometimes more (several pickle.load calls).
    A .npy object array holds one after its header."""
    reports: list[PickleReport] = []
    end = len(buf)
    start = 0
    if buf[:6] == b"\x93NUMPY":
        # (numpy.load(allow_pickle=True) reads a header of any length: read all of it)
        header_end = npy_header_end(buf[:12]) or PROBE_BYTES
        if header_end > MAX_NPY_HEADER:
            report = PickleReport(where=where)
            report.add(PickleFinding("suspicious", "", "npy", 0, (
                f".npy header of {header_end} bytes not read (numpy.load(allow_pickle=True) reads it, "
                "and unpickles what follows when it declares objects)")))
            return [report]
        npy = _npy_pickle_offset(buf[: max(header_end, PROBE_BYTES)])
        if npy is None:
            return reports
        start = npy
    first: PickleReport | None = None
    if buf[start : start + 2] not in _PICKLE_STARTS:
        # Header-less (protocol 0/1) or not a pickle: a scan that reaches STOP says
        # it is one; otherwise a consistent parse of its opcodes decides.
        first = PickleReport(where=where if start == 0 else f"{where}#pickle1@{start}")
        after = _scan_buffer(buf, start, end, first)
        if (after is None or after - start < 3) and not _is_pickle_at(buf, start, end):
            return reports
    expected: int | None = None
    scanned: dict[int, PickleReport] = {}
    for i in range(MAX_CONSECUTIVE_PICKLES):
        if i > 0 and expected is None:
            # Past the first pickle only clean, complete pickles count: trailing
            # bytes that are not one are data, not a finding. A header-less one
            # (protocol 0/1) counts too: a second pickle.load reads any protocol (a
            # legacy torch file whose magic number is pickled some other way than
            # torch.save's, then a protocol 0 payload where the protocol number goes).
            if not read_ops_until(buf, start, end)[0] or (
                    buf[start : start + 2] not in _PICKLE_STARTS and not _is_pickle_at(buf, start, end)):
                break
        label = where if i == 0 and start == 0 else f"{where}#pickle{i + 1}@{start}"
        if i == 0 and first is not None:
            report = first
        else:
            report = PickleReport(where=label)
            after = _scan_buffer(buf, start, end, report)
        reports.append(report)
        scanned[start] = report
        if i == 0 and start == 0 and after is not None and _is_torch_magic(buf):
            expected = 5
        if after is None:
            break
        start = after
        if ends is not None:
            ends.append(after)
        if expected is not None and len(reports) >= expected:
            break
    if expected is None and start < end and 0 in scanned:
        _legacy_tar_member(buf, where, reports, scanned)
    return reports


# torch.save's element sizes by storage or tensor type name (torch.FloatStorage, torch.cuda.HalfTensor)
_LEGACY_ELEMENT = {"Double": 8, "Float": 4, "Half": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
                   "Bool": 1, "BFloat16": 2, "ComplexDouble": 16, "ComplexFloat": 8, "QUInt8": 1, "QInt8": 1,
                   "QInt32": 4, "QUInt4x2": 1, "QUInt2x4": 1, "Untyped": 1}
_LEGACY_TYPE = re.compile(r"torch\.(?:cuda\.)?(\w*?)(Storage|Tensor)")
MAX_LEGACY_RECORDS = 1_000_000


def _int_pickle(buf: Any, start: int, end: int) -> int | None:
    """The value of a pickle that is one integer (torch's record counts), else None."""
    from ..pickleops import read_ops

    body = []
    try:
        for code, arg, _ in read_ops(buf, start, end):
            if code not in (0x80, 0x95, FRAME_ANOMALY):
                body.append((code, arg))
            if len(body) > 2:
                return None
    except PickleSyntaxError:
        return None
    if len(body) == 2 and body[0][0] in b"KMJIL\x8a\x8b" and type(body[0][1]) is int:
        return body[0][1]
    return None


def _legacy_tar_member(buf: Any, where: str, reports: list[PickleReport],
                       scanned: dict[int, PickleReport]) -> None:
    """The 'storages' and 'tensors' members of torch's legacy tar checkpoints, which
    torch.load still reads (torch.serialization.legacy_load): a pickled count, then per
    record a pickled tuple naming a storage type (or tensor type) and raw bytes (a
    storage: its element count, then its data; a tensor: its dimensions, sizes,
    strides and offset), and for storages one more pickle (the views). Every one of
    those pickles is unpickled by torch.load: each is scanned, past the raw bytes."""
    end = len(buf)
    count = _int_pickle(buf, 0, end)
    if count is None or not 0 < count <= MAX_LEGACY_RECORDS:
        return
    pos = read_ops_until(buf, 0, end)[1]
    layout = None
    for i in range(count + 1):
        if layout == "Tensor" and i == count:
            return
        report = scanned.get(pos)
        if report is None:
            report = PickleReport(where=f"{where}#pickle{len(reports) + 1}@{pos}")
            after = _scan_buffer(buf, pos, end, report)
            reports.append(report)
        else:
            after = read_ops_until(buf, pos, end)[1] if report.error is None else None
        if after is None or i == count:
            return
        if layout is None:
            kinds = {m[2] for g in report.globals if (m := _LEGACY_TYPE.fullmatch(g))}
            if len(kinds) != 1:
                return  # not torch's layout: the records are what they are
            layout = kinds.pop()
        if layout == "Storage":
            types = [m[1] for g in report.globals if (m := _LEGACY_TYPE.fullmatch(g))]
            item = _LEGACY_ELEMENT.get(types[0]) if types else None
            if after + 8 > end or item is None:
                report.add(PickleFinding("suspicious", "", "", after, (
                    "legacy torch storage record that cannot be followed past this pickle "
                    "(torch.load unpickles what follows its data)")))
                return
            numel = int.from_bytes(buf[after : after + 8], "little", signed=True)
            pos = after + 8 + numel * item
        else:
            if after + 8 > end:
                return
            ndim = int.from_bytes(buf[after : after + 4], "little", signed=True)
            numel = ndim
            pos = after + 8 + 16 * ndim + 8
        if numel < 0 or pos >= end:
            return


def _is_torch_magic(buf: Any) -> bool:
    # torch.save writes the magic number as its own protocol 2 pickle (LONG1).
    return buf[:15] == _TORCH_MAGIC_PICKLE


def _scan_zip(f: BinaryIO, where: str, depth: int) -> list[PickleReport]:
    container = PickleReport(where=where)
    entries = zip_entries(f, where, container)
    reports: list[PickleReport] = []
    from .formats.keras import is_keras_zip, scan_keras_member

    if is_keras_zip([e.name for e in entries]):
        # Keras archives carry their code in config.json, not in a pickle. Every copy of
        # it is judged: keras reads it by name through zipfile, which hands out the
        # last of duplicates, other readers the first.
        reports.extend(scan_keras_member(f, e, where, depth) for e in entries if e.name == "config.json")
    from .formats.skops import SCHEMA, is_skops_zip, scan_skops_member

    if is_skops_zip([e.name for e in entries]):
        # skops archives name what they load in schema.json (every copy, likewise).
        reports.extend(scan_skops_member(f, e, where) for e in entries if e.name == SCHEMA)
    budget = MAX_ZIP_SCAN_BYTES
    for e in entries:
        label = f"{where}:{e.name}"
        if e.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            container.add(PickleFinding("suspicious", "", "zip", e.header_offset,
                                        f"entry {e.name!r}: compression method {e.method} not scanned"))
            continue
        if e.compressed_size and e.size / e.compressed_size > SUSPICIOUS_RATIO and e.size > 1 << 20:
            container.add(PickleFinding(
                "suspicious", "", "zip", e.header_offset,
                f"entry {e.name!r}: compression ratio {e.size // e.compressed_size}:1 (zip bomb?)",
            ))
        head = _entry_head(f, e, where)
        if head is None:
            if not e.flags & 0x1:
                container.add(PickleFinding("suspicious", "", "zip", e.header_offset,
                                            f"entry {e.name!r}: corrupt compressed data"))
            continue
        is_nested_zip = head[:4] == b"PK\x03\x04"
        # an .npy (or .npz member) holding objects, or one whose header runs past the head
        npy = _npy_pickle_offset(head) is not None or (
            head[:6] == b"\x93NUMPY" and (npy_header_end(head[:12]) or 0) > len(head))
        proto = bool(_PROTO_HEAD.match(head))
        looks = (probe(head, more=len(head) < e.size, names_payload=names_payload)
                 if not (proto or npy or is_nested_zip) else None)
        if e.flags & 0x1 and not (proto or npy or looks is not False):
            continue  # encrypted, already a finding, and not readable as a pickle anyway
        if not (is_nested_zip or proto or npy or looks is not False):
            continue
        if proto and _STORAGE_ENTRY.search(e.name) and probe(head, more=len(head) < e.size) is False:
            continue  # raw tensor bytes that happen to start like a pickle
        limit = min(budget, MAX_PICKLE_BYTES)
        try:
            data = read_zip_entry(f, e, where, limit, ignore_encryption=True)
        except InputError as exc:
            container.add(PickleFinding("suspicious", "", "zip", e.header_offset,
                                        f"entry {e.name!r} not scanned whole: {exc.reason}"))
            if isinstance(exc, TooLarge) and not is_nested_zip and limit > 0:
                # A loader unpickles up to the first STOP and ignores the rest (a payload,
                # then a gigabyte of zeros): the part within the limit is judged.
                reports.extend(_scan_consecutive(_entry_prefix(f, e, limit), f"{label}[first {limit} bytes]"))
                budget -= limit
            continue
        budget -= len(data)
        if zlib.crc32(data) != e.crc and not e.flags & 0x1:
            container.add(PickleFinding(
                "suspicious", "", "zip", e.header_offset,
                f"entry {e.name!r}: CRC mismatch (some loaders skip the check, some scanners stop)",
            ))
        if is_nested_zip:
            if depth + 1 >= MAX_ZIP_DEPTH:
                container.add(PickleFinding("suspicious", "", "zip", e.header_offset,
                                            f"entry {e.name!r}: archives nested too deeply, not scanned"))
                continue
            try:
                reports.extend(_scan_zip(io.BytesIO(data), label, depth + 1))
            except InputError as exc:
                container.add(PickleFinding("suspicious", "", "zip", e.header_offset,
                                            f"entry {e.name!r}: nested archive unreadable: {exc.reason}"))
            continue
        found = _scan_consecutive(data, label)
        if found and e.flags & 0x1:
            container.add(PickleFinding(
                "suspicious", "", "zip", e.header_offset,
                f"entry {e.name!r} is flagged encrypted but holds a plain pickle "
                "(loaders that ignore the flag load it)",
            ))
        reports.extend(found)
    if container.findings:
        reports.insert(0, container)
    return reports


def _entry_prefix(f: BinaryIO, e: ZipEntry, n: int) -> bytes:
    """At most the first ``n`` uncompressed bytes of ``e`` (what is readable of them)."""
    import lzma

    f.seek(e.data_offset)
    if e.method == zipfile.ZIP_STORED:
        return f.read(min(n, e.compressed_size))
    d: Any = zlib.decompressobj(-15) if e.method == zipfile.ZIP_DEFLATED else _decompressor(e.method)
    out: list[bytes] = []
    got, remaining = 0, e.compressed_size
    try:
        while remaining > 0 and got < n:
            chunk = f.read(min(1 << 20, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            while chunk and got < n:
                piece = d.decompress(chunk, n - got)
                out.append(piece)
                got += len(piece)
                chunk = getattr(d, "unconsumed_tail", b"")  # (zlib: input held back by max_length)
                if not piece:
                    break
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError, struct.error):
        pass
    return b"".join(out)


def _entry_head(f: BinaryIO, e: ZipEntry, where: str) -> bytes | None:
    f.seek(e.data_offset)
    if e.method == zipfile.ZIP_STORED:
        return f.read(min(PROBE_BYTES, e.compressed_size))
    if e.method != zipfile.ZIP_DEFLATED:
        import lzma

        try:  # (bzip2, LZMA: their first block may need more input for any output)
            d = _decompressor(e.method)
            out, remaining = b"", e.compressed_size
            while remaining > 0 and len(out) < PROBE_BYTES and not d.eof:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                out += d.decompress(chunk, PROBE_BYTES - len(out))
            return out
        except (OSError, EOFError, ValueError, lzma.LZMAError, struct.error):
            return None
    d = zlib.decompressobj(-15)
    try:
        return d.decompress(f.read(min(e.compressed_size, PROBE_BYTES)), PROBE_BYTES)
    except zlib.error:
        return None


# -- restricted unpickler --------------------------------------------------------------


class RefusedGlobal(Exception):
    """Raised inside unpickling when the input names a global not on the allow-list."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` only hands out what ``resolve(module, name)``
    returns (inert stubs) and refuses every global it returns None for.

    It never imports a module named by the input, so no code from the input runs;
    the stubs only record their arguments. Run the opcode scan first anyway: the
    refusal message is more useful when it comes with the whole list of globals.
    """

    def __init__(
        self,
        file: BinaryIO,
        resolve: Callable[[str, str], Any],
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file, fix_imports=False, encoding="latin1")
        self._resolve = resolve
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        stub = self._resolve(module, name)
        if stub is None:
            raise RefusedGlobal(f"{module}.{name}")
        return stub

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError("persistent ids are not allowed here")
        return self._persistent(pid)
