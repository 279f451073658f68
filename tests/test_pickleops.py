"""assay.pickleops reads opcodes as CPython does: same opcodes and offsets as
pickletools on well-formed pickles, and wherever CPython's own (C) unpickler loads a
byte string to its end, read_ops reaches the same STOP. The unpickler here only ever
sees generated data and refuses every global, persistent id and extension code, so
nothing named by the bytes can run."""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import pickletools
import random

import pytest

from assay.pickleops import FRAME_ANOMALY, PickleSyntaxError, probe, read_ops

VALUES = [
    None, True, 7, -3, 2**70, 1.5, "text", "ünï✓" * 40, b"\x00\x01" * 300, bytearray(b"ab"),
    (1, "a", (2.5,)), [1, [2, [3]]], {"k": {"v": [1, 2]}, 3: None}, {1, 2}, frozenset("ab"),
    list(range(300)), {str(i): i for i in range(200)}, "x" * 70_000, b"y" * 70_000,
]
OBJECTS = [datetime.date(2020, 1, 2), decimal.Decimal("1.5"), collections.OrderedDict(a=1)]


def _ops(data: bytes) -> list[tuple[int, int]]:
    return [(c, pos) for c, _a, pos in read_ops(data) if c != FRAME_ANOMALY]


@pytest.mark.parametrize("protocol", range(6))
def test_same_opcodes_and_offsets_as_pickletools(protocol: int) -> None:
    for value in VALUES + OBJECTS:
        data = pickle.dumps(value, protocol=protocol)
        theirs = [(op.code.encode("latin-1")[0], pos) for op, _a, pos in pickletools.genops(data)]
        assert _ops(data) == theirs, (value, protocol)
        assert probe(data) is True


class _Refusing(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError("globals refused")

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent ids refused")


def _c_load_end(data: bytes) -> int | None:
    """Where the C unpickler stops after a successful load, or None when it fails."""
    f = io.BytesIO(data)
    try:
        _Refusing(f).load()
    except Exception:  # noqa: BLE001 - any failure: the C reading did not complete
        return None
    return f.tell()


def _ours_end(data: bytes) -> tuple[int | None, bool]:
    """(offset after STOP or None, whether a FRAME was read)."""
    framed = False
    try:
        for code, _arg, pos in read_ops(data):
            framed = framed or code == 0x95
            if code == 0x2E:
                return pos + 1, framed
    except PickleSyntaxError:
        return None, framed
    return None, framed


def test_where_cpython_loads_read_ops_reaches_the_same_stop() -> None:
    rng = random.Random(11)
    seeds = [pickle.dumps(v, protocol=p) for v in VALUES[:17] for p in range(6)]
    checked = 0
    for _ in range(4000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            if not data:
                break
            i = rng.randrange(len(data))
            mode = rng.random()
            if mode < 0.5:
                data[i] = rng.randrange(256)
            elif mode < 0.75:
                del data[i]
            else:
                data.insert(i, rng.randrange(256))
        c_end = _c_load_end(bytes(data))
        if c_end is not None:
            checked += 1
            ours, framed = _ours_end(bytes(data))
            # (the C unpickler reads a whole FRAME ahead, so with frames its file
            # position is the end of the frame holding STOP, not STOP itself)
            assert ours is not None and (ours == c_end or framed and ours <= c_end), bytes(data)
    assert checked > 300  # enough mutants that CPython still loads
