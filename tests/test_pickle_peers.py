"""Pickle cases from peer scanners' own test suites (fickling, modelscan) where assay
disagreed with the peer and the peer was right. Every payload is written here opcode by
opcode with benign arguments; nothing is ever unpickled."""

from __future__ import annotations

import pytest

from assay.models import classify_global, scan_pickle_bytes


def _s(x: str) -> bytes:
    b = x.encode()
    return b"\x8c" + bytes([len(b)]) + b


def stack_global_call(module: str, name: str, *args: str) -> bytes:
    return b"\x80\x04" + _s(module) + _s(name) + b"\x93(" + b"".join(_s(a) for a in args) + b"tR."


def test_future_module_walk_to_builtins_is_dangerous() -> None:
    # __future__ only holds feature records, but a dotted name walks on from them:
    # _Feature.__init__.__builtins__ is the builtins dict, and its .get hands out eval.
    data = (b"\x80\x04" + _s("__future__") + _s("_Feature.__init__.__builtins__.get") + b"\x93"
            + _s("eval") + b"\x85R" + _s("print('hi')") + b"\x85R.")
    r = scan_pickle_bytes(data, where="p")
    assert r.verdict == "dangerous", r.findings
    assert "__future__._Feature.__init__.__builtins__.get" in r.dangerous_globals


def test_future_dotted_names_are_not_feature_records() -> None:
    # fickling's anti-widening case: a dotted name under __future__ is not allow-listed
    assert classify_global("__future__", "_ssl.RAND_bytes")[0] != "safe"
    assert classify_global("__future__", "__builtins__")[0] == "dangerous"
    assert classify_global("__future__", "annotations")[0] == "safe"
    assert scan_pickle_bytes(stack_global_call("__future__", "annotations")[:-4] + b".",
                             where="p").verdict == "safe"


@pytest.mark.parametrize("module", ["modelaudit", "saferpickle", "model_unpickler"])
def test_calls_into_other_model_scanners_are_dangerous(module: str) -> None:
    # fickling's ScannerDeactivation list: turning a scanner off is an attack
    r = scan_pickle_bytes(stack_global_call(module, "some_func"), where="p")
    assert r.verdict == "dangerous", r.findings
    assert "scanner" in r.findings[0].reason


@pytest.mark.parametrize(("module", "name", "args"), [
    ("pexpect", "run", ("echo hi",)),
    ("ptyprocess", "PtyProcess.spawn", ("echo",)),
    ("pipes", "Template", ()),
    ("_signal", "pthread_kill", ("0", "9")),
    ("atexit", "register", ("x",)),
    ("unittest", "main", ()),
    ("antigravity", "geohash", ()),
])
def test_command_runners_and_call_amplifiers_are_dangerous(module: str, name: str,
                                                         args: tuple[str, ...]) -> None:
    r = scan_pickle_bytes(stack_global_call(module, name, *args), where="p")
    assert r.verdict == "dangerous", r.findings
