"""Malicious-pickle detection. Payloads are written as raw opcodes or with
pickle.dumps of harmless stand-in objects whose __reduce__ names a dangerous
callable; nothing here is ever unpickled except by assay's restricted unpickler."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

from assay.errors import UnsafeInput
from assay.models import classify_global, open_model, scan_file, scan_pickle_bytes

DATA = Path(__file__).parent / "data"


class Payload:
    """pickle.dumps(Payload(f, args)) writes 'call f(*args)'; it is never loaded."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def p0_call(module: str, name: str, arg: str = "true") -> bytes:
    """Protocol 0: GLOBAL module name, then REDUCE with one string argument."""
    return f"c{module}\n{name}\n(S'{arg}'\ntR.".encode()


def p4_stack_global(module: str, name: str, arg: str = "true") -> bytes:
    """Protocol 4: the global's name built from string opcodes (STACK_GLOBAL)."""

    def s(x: str) -> bytes:
        b = x.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return b"\x80\x04" + s(module) + s(name) + b"\x93" + s(arg) + b"\x85R."


def memo_hidden(module: str, name: str) -> bytes:
    """Module and name strings memoised early, fetched back (BINGET) for STACK_GLOBAL
    much later, and the global itself re-used from the memo for the call."""

    def s(x: str) -> bytes:
        b = x.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return (
        b"\x80\x04" + s(module) + b"q\x00" + s(name) + b"q\x01" + b"0" + b"0"  # PUT, then POP
        + b"]" + s("noise") + b"a" + b"0"  # unrelated work
        + b"h\x00h\x01\x93q\x02" + b"0"  # STACK_GLOBAL from memo, memoise it, drop it
        + b"h\x02" + s("true") + b"\x85R."  # fetch the global from the memo and call it
    )


DANGEROUS = [
    ("posix", "system"), ("os", "system"), ("nt", "system"), ("os", "popen"), ("os", "execv"),
    ("os", "spawnl"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "compile"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("builtins", "open"), ("builtins", "breakpoint"),
    ("__builtin__", "eval"), ("importlib", "import_module"), ("runpy", "run_path"),
    ("pickle", "loads"), ("_pickle", "loads"), ("marshal", "loads"), ("code", "interact"),
    ("pty", "spawn"), ("socket", "create_connection"), ("shutil", "rmtree"),
    ("webbrowser", "open"), ("sys", "exit"), ("types", "FunctionType"), ("types", "CodeType"),
    ("torch._dynamo.guards", "GuardBuilder.get"), ("torch.fx.experimental.symbolic_shapes", "x"),
    ("torch.serialization", "load"), ("torch.storage", "_load_from_bytes"),
    ("operator", "attrgetter"), ("operator", "methodcaller"), ("_operator", "attrgetter"),
    ("numpy", "load"), ("numpy.lib.npyio", "load"), ("numpy.testing._private.utils", "runstring"),
    ("timeit", "timeit"), ("_pickle", "Unpickler"),
    ("torch", "serialization.load"),  # protocol 4 dotted attribute walk
    ("collections", "OrderedDict.__init__.__globals__"),
]


@pytest.mark.parametrize(("module", "name"), DANGEROUS, ids=[f"{m}.{n}" for m, n in DANGEROUS])
@pytest.mark.parametrize("builder", [p0_call, p4_stack_global, memo_hidden])
def test_dangerous_globals_flagged(module: str, name: str, builder: Any) -> None:
    r = scan_pickle_bytes(builder(module, name), where="payload")
    assert r.verdict == "dangerous", r
    assert f"{module}.{name}" in r.dangerous_globals
    finding = next(f for f in r.findings if f.global_name == f"{module}.{name}")
    assert finding.opcode in ("GLOBAL", "STACK_GLOBAL", "REDUCE")
    assert finding.offset >= 0


@pytest.mark.parametrize("protocol", range(6))
def test_pickle_dumps_payloads_all_protocols(protocol: int) -> None:
    for func, args in [(os.system, ("true",)), (eval, ("1",)), (getattr, (Path("x"), "write_text"))]:
        data = pickle.dumps(Payload(func, args), protocol=protocol)
        r = scan_pickle_bytes(data, where="p")
        assert r.verdict == "dangerous"
        assert r.protocol == (protocol if protocol >= 2 else None)


def test_functools_partial_of_dangerous() -> None:
    import functools

    data = pickle.dumps(Payload(functools.partial(os.system, "true"), ()), protocol=2)
    r = scan_pickle_bytes(data, where="p")
    assert r.verdict == "dangerous"
    assert any(g.endswith(".system") for g in r.dangerous_globals)
    assert "functools.partial" in r.globals


def test_stack_global_with_computed_name_is_dangerous() -> None:
    # The module name comes out of a call, not a string opcode: hidden from static reading.
    data = (
        b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R"  # str("os") at load time
        b"\x8c\x06system\x93\x8c\x04true\x85R."
    )
    r = scan_pickle_bytes(data, where="p")
    assert r.verdict == "dangerous"
    assert any("computed at load time" in f.reason for f in r.findings)


def test_nested_pickle_bytes_are_scanned() -> None:
    inner = pickle.dumps(Payload(os.system, ("true",)), protocol=4)
    outer = pickle.dumps({"blob": inner}, protocol=4)
    r = scan_pickle_bytes(outer, where="p")
    assert r.verdict == "dangerous"
    assert any("nested" in f.reason for f in r.findings)


def test_build_on_a_global_is_dangerous() -> None:
    # 'collections OrderedDict' then BUILD with a dict: sets attributes on the class.
    data = b"ccollections\nOrderedDict\n}S'x'\nI1\nsb."
    r = scan_pickle_bytes(data, where="p")
    assert r.verdict == "dangerous"
    assert any(f.opcode == "BUILD" for f in r.findings)


@pytest.mark.parametrize(
    "obj",
    [
        {"a": [1, 2.5, "x", b"y", None, True]},
        OrderedDict(a=1),
        (set([1]), frozenset([2]), bytearray(b"z"), complex(1, 2)),
        list(range(100)),
    ],
)
@pytest.mark.parametrize("protocol", range(6))
def test_benign_pickles_are_safe(obj: Any, protocol: int) -> None:
    r = scan_pickle_bytes(pickle.dumps(obj, protocol=protocol), where="p")
    assert r.verdict == "safe", r.findings
    assert r.error is None


def test_numpy_array_pickle_is_safe() -> None:
    np = pytest.importorskip("numpy")
    for protocol in (2, 4, 5):
        r = scan_pickle_bytes(pickle.dumps(np.arange(5, dtype=np.float32), protocol=protocol), where="p")
        assert r.verdict == "safe", (protocol, r.findings)


def test_unknown_global_is_suspicious() -> None:
    r = scan_pickle_bytes(p0_call("mypackage.models", "Thing"), where="p")
    assert r.verdict == "suspicious"
    assert r.findings[0].global_name == "mypackage.models.Thing"


def test_truncated_pickle_is_suspicious_with_prefix_findings() -> None:
    data = p0_call("os", "system")[:-1]  # no STOP
    r = scan_pickle_bytes(data, where="p")
    assert r.verdict == "dangerous"  # the loader would run the call before failing
    assert r.error


def test_policy_examples() -> None:
    assert classify_global("torch._utils", "_rebuild_tensor_v2")[0] == "safe"
    assert classify_global("torch", "BFloat16Storage")[0] == "safe"
    assert classify_global("torch", "float8_e4m3fn")[0] == "safe"
    assert classify_global("__torch__.foo", "Bar")[0] == "safe"
    assert classify_global("torch.jit._pickle", "build_intlist")[0] == "safe"
    assert classify_global("torch.jit", "load")[0] == "dangerous"
    assert classify_global("torch", "load")[0] == "dangerous"
    # Python 2 names resolve through the same mapping a real unpickler uses
    assert classify_global("__builtin__", "getattr")[0] == "dangerous"
    assert classify_global("commands", "getoutput")[0] == "dangerous"
    assert classify_global("copy_reg", "_reconstructor")[0] == "safe"


# -- files: torch layouts, zips, legacy ------------------------------------------------------


def torch_zip(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None,
              compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for name, blob in (extra or {}).items():
            z.writestr(name, blob)
    return path


def test_canary_scan_and_open_never_run_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "PWNED"
    monkeypatch.delenv("ASSAY_CANARY", raising=False)
    cmd = f"touch {marker}"
    payloads = [
        pickle.dumps(Payload(os.system, (cmd,)), protocol=2),
        pickle.dumps(Payload(exec, (f"import os; os.environ['ASSAY_CANARY']='1'; open({str(marker)!r},'w')",)),
                     protocol=4),
    ]
    for i, payload in enumerate(payloads):
        pt = torch_zip(tmp_path / f"evil{i}.pt", payload)
        raw = tmp_path / f"evil{i}.ckpt"
        raw.write_bytes(payload)
        for f in (pt, raw):
            reports = scan_file(f)
            assert any(r.verdict == "dangerous" for r in reports)
            with pytest.raises(UnsafeInput) as ei:
                open_model(f)
            assert ("posix.system" in str(ei.value)) or ("builtins.exec" in str(ei.value))
            assert ei.value.details
    assert not marker.exists()
    assert "ASSAY_CANARY" not in os.environ


def test_pickle_in_zip_found_by_content_not_name(tmp_path: Path) -> None:
    evil0 = p0_call("os", "system")  # protocol 0: no header bytes at all
    evil4 = pickle.dumps(Payload(os.system, ("true",)), protocol=4)
    benign = pickle.dumps({"a": 1}, protocol=2)
    p = torch_zip(tmp_path / "m.pt", benign, {"archive/data/0": evil4, "notes/readme.txt": evil0})
    reports = scan_file(p)
    bad = {r.where.rsplit(":", 1)[-1] for r in reports if r.verdict == "dangerous"}
    assert bad == {"archive/data/0", "notes/readme.txt"}


def test_padded_headerless_payload_is_found(tmp_path: Path) -> None:
    # A protocol 0 payload longer than any probe window: padding must not hide it.
    padded = p0_call("os", "system", "true #" + "A" * 200_000)
    raw = tmp_path / "model.ckpt"
    raw.write_bytes(padded)
    assert [r.verdict for r in scan_file(raw)] == ["dangerous"]
    with pytest.raises(UnsafeInput, match="posix.system|os.system"):
        open_model(raw)
    padded2 = pickle.dumps(Payload(os.system, ("true #" + "A" * 200_000,)), protocol=2)
    z = torch_zip(tmp_path / "m.pt", pickle.dumps({}, protocol=2),
                  {"archive/data/0": padded, "archive/data/1": padded2})
    assert [r.where.rsplit(":", 1)[-1] for r in scan_file(z) if r.verdict == "dangerous"] == [
        "archive/data/0", "archive/data/1"
    ]


def test_nested_zip(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x/data.pkl", pickle.dumps(Payload(os.system, ("true",)), protocol=2))
    p = torch_zip(tmp_path / "m.pt", pickle.dumps({}, protocol=2), {"archive/extra.zip": inner.getvalue()},
                  compress=zipfile.ZIP_DEFLATED)
    reports = scan_file(p)
    hit = [r for r in reports if r.verdict == "dangerous"]
    assert hit and hit[0].where.endswith("archive/extra.zip:x/data.pkl")


def _patch(data: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert data.count(old) >= count
    return data.replace(old, new, count)


def test_bad_crc_still_scanned_and_flagged(tmp_path: Path) -> None:
    evil = pickle.dumps(Payload(os.system, ("true",)), protocol=2)
    p = torch_zip(tmp_path / "m.pt", evil)
    raw = bytearray(p.read_bytes())
    crc = struct.pack("<I", zlib.crc32(evil))
    raw = bytearray(bytes(raw).replace(crc, b"\0\0\0\0"))  # both headers: a consistent lie
    p.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile):  # what a CRC-checking scanner runs into
        zipfile.ZipFile(p).read("archive/data.pkl")
    reports = scan_file(p)
    reasons = [f.reason for r in reports for f in r.findings]
    assert any("CRC mismatch" in x for x in reasons)
    assert any(r.verdict == "dangerous" for r in reports)


def test_zip_header_tricks(tmp_path: Path) -> None:
    benign = pickle.dumps({"a": 1}, protocol=2)
    p = torch_zip(tmp_path / "m.pt", benign)
    raw = p.read_bytes()
    # local header name differs from the central directory's (same length)
    forged = raw.replace(b"archive/data.pkl", b"archive/data.pkX", 1)
    p2 = tmp_path / "forged.pt"
    p2.write_bytes(forged)
    reasons = [f.reason for r in scan_file(p2) for f in r.findings]
    assert any("local header names it" in x for x in reasons)
    # encrypted flag set in the central directory only
    cd = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"archive/byteorder"))
    enc = bytearray(raw)
    enc[cd + 8] |= 1
    p3 = tmp_path / "enc.pt"
    p3.write_bytes(bytes(enc))
    reasons = [f.reason for r in scan_file(p3) for f in r.findings]
    assert any("encrypted" in x for x in reasons)


def test_duplicate_entries(tmp_path: Path) -> None:
    p = tmp_path / "dup.pt"
    with zipfile.ZipFile(p, "w") as z, pytest.warns(UserWarning):
        z.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("archive/data.pkl", pickle.dumps(Payload(os.system, ("true",)), protocol=2))
    reports = scan_file(p)
    assert any("duplicate" in f.reason for r in reports for f in r.findings)
    assert any(r.verdict == "dangerous" for r in reports)  # both copies scanned


def test_legacy_torch_every_pickle_scanned(tmp_path: Path) -> None:
    good = (DATA / "tiny_state_dict_legacy.pt").read_bytes()
    f = io.BytesIO(good)
    import pickletools

    ends = []
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        ends.append(f.tell())
    evil = pickle.dumps(Payload(os.system, ("true",)), protocol=2)
    # replace the storage-keys pickle (the 5th) by a payload
    forged = good[: ends[3]] + evil + good[ends[4]:]
    p = tmp_path / "legacy.pt"
    p.write_bytes(forged)
    reports = scan_file(p)
    assert len(reports) == 5
    assert [r.verdict for r in reports] == ["safe"] * 4 + ["dangerous"]
    assert "#pickle5@" in reports[4].where
    with pytest.raises(UnsafeInput, match="posix.system"):
        open_model(p)


def test_polyglot_pickle_and_zip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    buf.write(pickle.dumps({"a": 1}, protocol=2))
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr("x/data.pkl", pickle.dumps(Payload(os.system, ("true",)), protocol=2))
    p = tmp_path / "poly.pt"
    p.write_bytes(buf.getvalue())
    reports = scan_file(p)
    assert any("polyglot" in f.reason for r in reports for f in r.findings)
    assert any(r.verdict == "dangerous" for r in reports)


class Config:
    """Stands for a training-framework class (e.g. Lightning's AttributeDict)."""

    def __init__(self, r: int) -> None:
        self.r = r


def test_unknown_global_in_checkpoint_opens_inertly(tmp_path: Path) -> None:
    # Lightning-style checkpoints hold objects of classes assay never imports.
    data = pickle.dumps({"hparams": Config(4), "epoch": 3}, protocol=2)
    p = torch_zip(tmp_path / "l.ckpt", data)
    with open_model(p) as m:
        assert m.metadata["epoch"] == 3
        assert [r.verdict for r in m.pickles] == ["suspicious"]
        assert any(g.endswith(".Config") for g in m.pickles[0].globals)


def test_numpy_object_arrays(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(os.system, ("true",))
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    np.save(tmp_path / "plain.npy", np.arange(4))
    np.savez(tmp_path / "evil.npz", w=np.arange(3), obj=evil)
    (r,) = scan_file(tmp_path / "evil.npy")
    assert r.verdict == "dangerous" and "posix.system" in r.dangerous_globals
    assert scan_file(tmp_path / "plain.npy") == []
    reports = scan_file(tmp_path / "evil.npz")
    assert [r.where.rsplit(":", 1)[-1].split("#")[0] for r in reports if r.verdict == "dangerous"] == [
        "obj.npy"
    ]


def test_benign_real_files(testdata: Path) -> None:
    for r in scan_file(testdata / "models" / "silero_vad.jit"):
        assert r.verdict == "safe", (r.where, r.findings)
    assert scan_file(testdata / "models" / "silero_vad_16k.safetensors") == []
    for f in ("tiny_state_dict_zip.pt", "tiny_state_dict_legacy.pt"):
        assert all(r.verdict == "safe" for r in scan_file(DATA / f))


# -- side by side with picklescan ------------------------------------------------------------


def _fixtures(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, our expected verdict)"""
    out: dict[str, tuple[Path, str]] = {}

    def add(name: str, data: bytes, verdict: str, zipped: bool = True) -> None:
        p = tmp_path / f"{name}.pt"
        if zipped:
            torch_zip(p, data)
        else:
            p.write_bytes(data)
        out[name] = (p, verdict)

    add("os_system", pickle.dumps(Payload(os.system, ("true",)), protocol=2), "dangerous")
    add("importlib", p4_stack_global("importlib", "import_module", "os"), "dangerous")
    add("memo_hidden_exec", memo_hidden("builtins", "exec"), "dangerous")
    add("torch_load", p0_call("torch.serialization", "load"), "dangerous", zipped=False)
    add("pydoc_locate", p4_stack_global("pydoc", "locate", "os.system"), "dangerous")
    add("dotted_attr", p4_stack_global("torch", "serialization.load"), "dangerous")
    np = pytest.importorskip("numpy")
    add("numpy_array", pickle.dumps(np.arange(3), protocol=2), "safe")
    add("unknown_class", p0_call("my_pkg", "Thing"), "suspicious")
    out["torch_zip"] = (DATA / "tiny_state_dict_zip.pt", "safe")
    out["torch_legacy"] = (DATA / "tiny_state_dict_legacy.pt", "safe")
    return out


def test_compare_picklescan(tmp_path: Path, testdata: Path) -> None:
    """We must flag everything picklescan (default mode) calls dangerous, and be at
    least as strict; differences are listed in the report (see the module docstring)."""
    scanner = pytest.importorskip("picklescan.scanner")
    fixtures = _fixtures(tmp_path)
    fixtures["silero_jit"] = (testdata / "models" / "silero_vad.jit", "safe")
    rank = {"safe": 0, "suspicious": 1, "dangerous": 2}
    rows = []
    for name, (path, expected) in fixtures.items():
        ours = max((r.verdict for r in scan_file(path)), key=rank.__getitem__, default="safe")
        theirs = scanner.scan_file_path(str(path))
        their_verdict = (
            "dangerous" if theirs.infected_files
            else "suspicious" if theirs.suspicious_count or theirs.scan_err
            else "safe"
        )
        rows.append((name, ours, their_verdict))
        assert ours == expected, name
        if their_verdict == "dangerous":
            assert ours == "dangerous", name
    # the documented gaps: picklescan lets these through as not dangerous, we do not
    by_name = {n: (o, t) for n, o, t in rows}
    assert by_name["importlib"] == ("dangerous", "suspicious")
    assert by_name["silero_jit"][0] == "safe"
