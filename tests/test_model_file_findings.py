"""Issue 11, "What was found", model files: each test failed on the old main.

Payload files are written, never loaded; assay only reads them."""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from assay.config import ScanSettings
from assay.errors import UnsafeInput
from assay.models import is_model_archive, open_model, scan_file, scan_pickle_bytes
from assay.models.analyzer import analyze_model
from assay.report.schema import FileRecord
from assay.scan.run import run_scan
from assay.sniff import sniff_path
from pickle_corpus import (
    Payload,
    call0,
    call4,
    frame_hidden,
    keras_pickle,
    keras_zip,
    legacy_torch_module,
)

RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}


def worst(path: Path) -> str:
    return max((r.verdict for r in scan_file(path)), key=RANK.__getitem__, default="safe")


def scan_records(*paths: Path) -> dict[str, FileRecord]:
    out: dict[str, FileRecord] = {}
    run_scan(list(paths), ScanSettings(workers=1), None, lambda r: out.__setitem__(Path(r.path).name, r))
    return out


# -- protocol 0/1 pickles in scan ---------------------------------------------------------


def test_protocol0_pickle_is_a_model_in_scan_with_the_model_verdict(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    p = tmp_path / "payload.bin"
    p.write_bytes(call0("posix", "system", f"touch {canary}"))
    p1 = tmp_path / "proto1.dat"
    p1.write_bytes(pickle.dumps(Payload(os.system, (f"touch {canary}",)), protocol=1))
    assert sniff_path(p).kind == "model" and sniff_path(p).format == "pickle"
    records = scan_records(p, p1)
    for name, path in (("payload.bin", p), ("proto1.dat", p1)):
        rec = records[name]
        assert (rec.kind, rec.format) == ("model", "pickle")
        assert rec.model is not None and rec.model.safety is not None
        assert rec.model.safety.verdict == "dangerous"
        assert rec.model.safety.verdict == analyze_model(path).safety.verdict
        assert any("posix.system" in f.globals for f in rec.model.safety.findings)
    assert not canary.exists()


@pytest.mark.parametrize("text", [
    b"config\nvalue\nmore text here\n", b"I love pickles\n", b"(this is a note)\n",
    b"S'quoted'\nnot more\n", b"cat\ndog\nbird\n", b"hello world", b"# README\n\nSome text.\n",
    b"a,b,c\n1,2,3\n", b'{"json": true}\n', b"lorem ipsum " * 1000,
])
def test_text_files_are_not_pickles(tmp_path: Path, text: bytes) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(text)
    assert sniff_path(p).kind == "other"
    assert scan_file(p) == []


def test_pickle_padded_in_front_of_its_payload_is_sniffed(tmp_path: Path) -> None:
    # 200 KB of string, popped, then the call: the first 64 KiB stay consistent.
    p = tmp_path / "padded.ckpt"
    p.write_bytes(b"S'" + b"A" * 200_000 + b"'\n0" + call0("os", "system", "true"))
    assert sniff_path(p).format == "pickle"
    assert worst(p) == "dangerous"


# -- numpy -----------------------------------------------------------------------------------


def _npy_object(obj: object) -> bytes:
    arr = np.empty(1, dtype=object)
    arr[0] = obj
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(("func", "args", "name"), [
    (eval, ("1",), "builtins.eval"),
    (__import__("ssl").get_server_certificate, (("127.0.0.1", 9),), "ssl.get_server_certificate"),
])
def test_npy_object_arrays_are_scanned(tmp_path: Path, func: object, args: tuple, name: str) -> None:
    p = tmp_path / "x.npy"
    p.write_bytes(_npy_object(Payload(func, args)))
    assert sniff_path(p) == sniff_path(p).__class__("model", "npy")
    report = analyze_model(p)
    assert report.safety.verdict == "dangerous"
    assert any(name in f.globals for f in report.safety.findings)
    rec = scan_records(p)["x.npy"]
    assert rec.model is not None and rec.model.safety.verdict == "dangerous"


def test_numeric_npy_and_npz_are_safe_tensors(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    f = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "f.npy", f)
    np.savez(tmp_path / "z.npz", a=a, f=f, i=np.arange(5))
    np.savez_compressed(tmp_path / "zc.npz", a=a)
    with open_model(tmp_path / "a.npy") as m:
        assert m.format == "npy" and m.pickles == []
        assert np.array_equal(m.array("a"), a)
    with open_model(tmp_path / "f.npy") as m:
        assert np.array_equal(m.array("f"), f)
    with open_model(tmp_path / "z.npz") as m:
        assert m.format == "npz" and set(m.tensors) == {"a", "f", "i"}
        assert np.array_equal(m.array("f"), f) and np.array_equal(m.array("i"), np.arange(5))
    with open_model(tmp_path / "zc.npz") as m:
        assert np.array_equal(m.array("a"), a)
    for name in ("a.npy", "z.npz", "zc.npz"):
        assert analyze_model(tmp_path / name).safety.verdict == "safe"
    assert is_model_archive(tmp_path / "z.npz")


# -- zips ----------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], flags: int = 0) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.flag_bits |= flags
            z.writestr(info, data)
    return path


@pytest.mark.parametrize("flags", [0, 0x8, 0x800, 0x1])
def test_any_zip_member_that_is_a_pickle_is_scanned(tmp_path: Path, flags: int) -> None:
    evil = pickle.dumps(Payload(os.system, ("true",)), protocol=2)
    p = _zip(tmp_path / "bundle.zip", {"model/config.pkl": evil, "model/readme.txt": b"hi"}, flags)
    assert worst(p) == "dangerous"
    with pytest.raises(UnsafeInput):
        open_model(p)
    report = analyze_model(p)
    assert report.safety.verdict == "dangerous"
    assert any("posix.system" in f.globals for f in report.safety.findings)


def test_zip_of_benign_pickles_opens_as_such(tmp_path: Path) -> None:
    p = _zip(tmp_path / "cfg.zip", {"a/settings.bin": pickle.dumps({"lr": 0.1}, 2)})
    with open_model(p) as m:
        assert m.format == "zip-pickles" and len(m.pickles) == 1
    assert analyze_model(p).safety.verdict == "safe"
    assert not is_model_archive(p)


def test_model_archive_kinds(tmp_path: Path) -> None:
    data = Path(__file__).parent / "data"
    assert is_model_archive(data / "tiny_state_dict_zip.pt")
    keras = tmp_path / "m.keras"
    keras.write_bytes(keras_zip())
    assert is_model_archive(keras)
    photos = _zip(tmp_path / "photos.zip", {"a.jpg": b"\xff\xd8\xff" + bytes(100), "b/c.jpg": b"\xff\xd8\xff"})
    assert not is_model_archive(photos)


# -- malformed tails, frames ---------------------------------------------------------------


@pytest.mark.parametrize("head", [
    call0("builtins", "exec", "print(1)")[:-1],  # protocol 0, no STOP
    b"\x80\x02cbuiltins\nexec\n(X\x08\x00\x00\x00print(1)tR",  # protocol 2
])
def test_malformed_tail_after_dangerous_call_is_dangerous(tmp_path: Path, head: bytes) -> None:
    p = tmp_path / "broken.pkl"
    p.write_bytes(head + b"X\xff\xff\xff\x7fabc")  # a BINUNICODE that claims 2 GB
    assert sniff_path(p).format == "pickle"
    reports = scan_file(p)
    assert reports and reports[0].verdict == "dangerous"
    assert "builtins.exec" in reports[0].dangerous_globals
    assert reports[0].error and "truncated" in reports[0].error
    with pytest.raises(UnsafeInput):
        open_model(p)
    assert analyze_model(p).safety.verdict == "dangerous"


def test_frame_overrun_hiding_a_call_is_dangerous_and_anomalous(tmp_path: Path) -> None:
    data = frame_hidden("touch /nonexistent/x")
    assert pickle.loads.__module__  # (never called on data: just the library in use)
    r = scan_pickle_bytes(data, where="f")
    assert r.verdict == "dangerous"
    assert "posix.system" in r.globals or "os.system" in r.globals
    reasons = [f.reason for f in r.findings]
    assert any(x.startswith("anomalous framing") for x in reasons)
    assert any("hidden from the C reading by a frame overrun" in x for x in reasons)


def test_well_framed_pickles_have_no_frame_findings() -> None:
    for obj in ({"k": "v" * 100_000, "b": b"\x00" * 200_000}, list(range(50_000)), [b"x" * 70_000] * 3):
        for proto in (4, 5):
            r = scan_pickle_bytes(pickle.dumps(obj, protocol=proto), where="x")
            assert r.verdict == "safe" and not r.findings, r


def test_frame_that_overruns_the_data_is_anomalous() -> None:
    data = b"\x80\x04\x95" + struct.pack("<Q", 1000) + b"K\x01."
    r = scan_pickle_bytes(data, where="x")
    assert r.verdict == "suspicious"
    assert any("declares 1000 bytes" in f.reason for f in r.findings)


# -- false alarms --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(6))
def test_standard_values_are_safe(protocol: int) -> None:
    import __future__

    import collections
    import datetime
    import decimal

    for value in ({1, 2}, frozenset([3]), datetime.datetime(2020, 1, 2, 3, 4, 5), datetime.date(2020, 1, 1),
                  datetime.timedelta(3), decimal.Decimal("1.5"), collections.deque([1, 2]), len,
                  __future__.annotations, [set(), frozenset()]):
        r = scan_pickle_bytes(pickle.dumps(value, protocol=protocol), where="v")
        assert r.verdict == "safe", (value, protocol, r.findings)


def test_python2_names_map_as_compat_pickle_does() -> None:
    assert scan_pickle_bytes(b"c__builtin__\nset\n((lp0\nI1\natR.", where="p").verdict == "safe"
    assert scan_pickle_bytes(b"c__builtin__\nfrozenset\n((lp0\nI1\natR.", where="p").verdict == "safe"
    assert scan_pickle_bytes(b"ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nobject\nNtR.",
                             where="p").verdict == "safe"
    # ...and a Python 2 name that maps onto something dangerous stays dangerous
    assert scan_pickle_bytes(b"c__builtin__\nreduce\n(tR.", where="p").verdict == "dangerous"


def test_legacy_whole_model_torch_save_opens_with_classes_listed(tmp_path: Path) -> None:
    p = tmp_path / "model.pt"
    p.write_bytes(legacy_torch_module())
    with open_model(p) as m:
        assert m.format == "torch-legacy"
        assert m.metadata["module_classes"] == ["torch.nn.modules.container.Sequential",
                                                "torch.nn.modules.linear.Linear"]
        assert np.array_equal(m.array("0.weight"), np.arange(6, dtype=np.float32).reshape(2, 3))
        assert np.array_equal(m.array("0.bias"), np.array([-1, 1], dtype=np.float32))
    assert analyze_model(p).safety.verdict == "safe"


# -- recall --------------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "name"), [
    ("nntplib", "NNTP"), ("_interpreters", "exec"), ("_xxsubinterpreters", "run_string"),
    ("picklescan.scanner", "scan_file_path"), ("modelscan.modelscan", "ModelScan"),
    ("fickling.hook", "activate_safe_ml_environment"), ("pathlib", "os.system"),
    ("shutil", "os.system"), ("asyncio", "subprocess.subprocess.Popen"), ("tempfile", "_os.system"),
    ("mymod.os", "system"),
])
def test_recall_misses_are_dangerous(module: str, name: str) -> None:
    for data in (call4(module, name, "x"), call0(module, name, "x")):
        r = scan_pickle_bytes(data, where="p")
        assert r.verdict == "dangerous", (module, name, r.findings)


# -- Keras and TensorFlow ------------------------------------------------------------------


def test_keras_lambda_layer_is_dangerous_with_the_layer_named(tmp_path: Path) -> None:
    p = tmp_path / "m.keras"
    p.write_bytes(keras_zip(lambda_layer=True))
    assert worst(p) == "dangerous"
    report = analyze_model(p)
    assert report.safety.verdict == "dangerous"
    text = json.dumps(report.safety.model_dump())
    assert "evil_lambda" in text
    ok = tmp_path / "ok.keras"
    ok.write_bytes(keras_zip())
    with open_model(ok) as m:
        assert m.format == "keras" and m.metadata["keras_class"] == "Sequential"
    assert analyze_model(ok).safety.verdict == "safe"
    named = tmp_path / "fn.keras"
    named.write_bytes(keras_zip(function=("os", "system")))
    assert analyze_model(named).safety.verdict == "dangerous"


def _h5_model(path: Path, *, lambda_layer: bool) -> Path:
    h5py = pytest.importorskip("h5py")
    layers = [{"class_name": "Dense", "config": {"name": "dense", "units": 2}}]
    if lambda_layer:
        code = base64.b64encode(marshal.dumps(compile("lambda x: x", "<t>", "eval"))).decode()
        layers.append({"class_name": "Lambda", "config": {
            "name": "sneaky", "function": [code, None, None], "function_type": "lambda"}})
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("model_weights/dense/kernel", data=np.arange(6, dtype=np.float32).reshape(3, 2))
    return path


def test_h5_lambda_layer_is_dangerous_with_the_layer_named(tmp_path: Path) -> None:
    bad = _h5_model(tmp_path / "bad.h5", lambda_layer=True)
    assert sniff_path(bad).format == "hdf5"
    report = analyze_model(bad)
    assert report.safety.verdict == "dangerous"
    assert "sneaky" in json.dumps(report.safety.model_dump())
    good = _h5_model(tmp_path / "good.h5", lambda_layer=False)
    with open_model(good) as m:
        assert m.format == "keras-h5"
        assert np.array_equal(m.array("model_weights/dense/kernel"),
                              np.arange(6, dtype=np.float32).reshape(3, 2))
    assert analyze_model(good).safety.verdict == "safe"


def _pb_field(field: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return varint(field << 3 | 2) + varint(len(payload)) + payload


def saved_model(ops: list[str], function_ops: list[str] = ()) -> bytes:
    nodes = b"".join(_pb_field(1, _pb_field(1, f"n{i}".encode()) + _pb_field(2, op.encode()))
                     for i, op in enumerate(ops))
    fn = _pb_field(1, _pb_field(1, b"__inference_f")) + b"".join(
        _pb_field(3, _pb_field(1, f"fn{i}".encode()) + _pb_field(2, op.encode()))
        for i, op in enumerate(function_ops))
    graph = nodes + _pb_field(2, _pb_field(1, fn))
    meta = _pb_field(2, graph)
    return b"\x08\x01" + _pb_field(2, meta)


def test_savedmodel_file_system_ops_are_reported(tmp_path: Path) -> None:
    d = tmp_path / "exported"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(saved_model(["Placeholder", "MatMul", "SaveV2", "RestoreV2"],
                                                   ["ReadFile", "WriteFile"]))
    assert sniff_path(d / "saved_model.pb").format == "tf-savedmodel"
    report = analyze_model(d / "saved_model.pb")
    assert report.safety.verdict == "dangerous"
    text = json.dumps(report.safety.model_dump())
    assert "tf.ReadFile" in text and "tf.WriteFile" in text and "SaveV2" not in text
    rec = scan_records(d)["saved_model.pb"]
    assert rec.model is not None and rec.model.safety.verdict == "dangerous"
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "saved_model.pb").write_bytes(saved_model(["Placeholder", "MatMul", "SaveV2"]))
    with open_model(ok) as m:
        assert m.format == "tf-savedmodel" and m.metadata["tf_ops"]["MatMul"] == 1
    assert analyze_model(ok / "saved_model.pb").safety.verdict == "safe"


def test_tf_keras_pickle_is_judged_by_the_archive_it_loads(tmp_path: Path) -> None:
    plain = scan_pickle_bytes(keras_pickle(keras_zip()), where="p")
    assert plain.verdict == "safe", plain.findings
    bad = scan_pickle_bytes(keras_pickle(keras_zip(lambda_layer=True)), where="p")
    assert bad.verdict == "dangerous"
    assert any("evil_lambda" in f.reason for f in bad.findings)
    # the deserialiser called on anything but literal archive bytes is not trusted
    opaque = (b"\x80\x04\x8c tf_keras.src.saving.pickle_utils\x8c\x1fdeserialize_model_from_bytecode"
              b"\x93\x8c\x08builtins\x8c\x03str\x93K\x01\x85R\x85R.")
    assert scan_pickle_bytes(opaque, where="p").verdict == "dangerous"


# -- what a person sees ----------------------------------------------------------------------


def test_readable_model_report_names_the_loader_and_the_layer(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assay.cli import app

    runner = CliRunner()
    keras = tmp_path / "m.keras"
    keras.write_bytes(keras_zip(lambda_layer=True))
    payload = tmp_path / "payload.bin"
    payload.write_bytes(call0("posix", "system", f"touch {tmp_path / 'CANARY'}"))
    db = str(tmp_path / "store.db")
    res = runner.invoke(app, ["--db", db, "--create", "model", str(keras)])
    out = res.output
    assert "SAFETY: DANGEROUS — do not load this file with Keras/TensorFlow" in out
    assert "Lambda layer 'evil_lambda' holds marshalled Python bytecode" in out
    assert "pickle offsets" not in out and "Traceback" not in out
    res = runner.invoke(app, ["--db", db, "model", str(payload)])
    assert "do not load this file with pickle/torch.load" in res.output
    assert "posix.system" in res.output
    res = runner.invoke(app, ["--db", db, "scan", str(tmp_path), "--json"])
    records = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    by_name = {Path(r["path"]).name: r for r in records if "path" in r}
    assert by_name["payload.bin"]["kind"] == "model"
    assert by_name["payload.bin"]["model"]["safety"]["verdict"] == "dangerous"
    assert by_name["m.keras"]["model"]["safety"]["verdict"] == "dangerous"
    assert not (tmp_path / "CANARY").exists()
