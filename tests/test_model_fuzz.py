"""Hostile inputs for every model reader: each ends in a model or in an InputError
naming the file, never in another exception, a hang or unbounded memory."""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.errors import DecodeError, InputError
from assay.models import open_model, scan_file, scan_pickle_bytes
from assay.models import pickles as pickles_mod

# Random STRING opcodes carry bad escapes; pickletools warns about them, rightly.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

DATA = Path(__file__).parent / "data"
# ASSAY_FUZZ_EXAMPLES raises the count for a long local run; CI keeps it fast.
EXAMPLES = int(os.environ.get("ASSAY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _clear_error(exc: InputError, path: Path) -> None:
    """What a user reads: one line that starts with the file's name and says why."""
    assert exc.path == str(path)
    assert exc.reason and "\n" not in exc.reason and "Traceback" not in exc.reason
    assert str(exc).startswith(f"{path}: {exc.reason}")


def _outcome(path: Path) -> tuple[str, Any]:
    try:
        m = open_model(path)
    except InputError as exc:
        return "error", (type(exc), exc.reason)
    with m:
        return "model", (m.format, {n: (i.dtype, i.shape, i.offset, i.nbytes) for n, i in m.tensors.items()})


def open_or_input_error(path: Path) -> None:
    """The contract: a model whose every tensor can be read, within the file and of the
    size its dtype and shape give, or an InputError naming path; the same either way
    when the file is opened again."""
    try:
        m = open_model(path)
    except InputError as exc:
        _clear_error(exc, path)
    else:
        with m:
            size = path.stat().st_size
            for name, info in m.tensors.items():
                if info.entry is None:
                    assert 0 <= info.offset and info.offset + info.nbytes <= size, name
                assert all(d >= 0 for d in info.shape), name
                a = m.array(name)
                if info.strides is None:
                    assert a.nbytes == info.nbytes, name
                if a.dtype != np.uint8:  # packed and quantized types come back as raw bytes
                    assert a.shape == info.shape, name
    first = _outcome(path)
    assert _outcome(path) == first  # deterministic: nothing about a file changes on a second look


def scan_or_input_error(path: Path) -> None:
    """A safety report per pickle (or an InputError naming path), the same on a second scan."""
    try:
        reports = scan_file(path)
    except InputError as exc:
        _clear_error(exc, path)
        with pytest.raises(InputError):
            scan_file(path)
        return
    for r in reports:
        assert r.verdict in ("safe", "suspicious", "dangerous")
        if r.verdict == "dangerous":
            assert r.findings  # a dangerous verdict always says what it found
    assert scan_file(path) == reports


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6)
CUTS = st.one_of(st.none(), st.integers(0, 5000))


# -- safetensors ---------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=8),
)
DTYPE = st.one_of(st.sampled_from(["F32", "F16", "BF16", "F8_E4M3", "I64", "BOOL", "F4", "U8"]),
                  st.text(max_size=6))
TENSOR = st.fixed_dictionaries({
    "dtype": DTYPE,
    "shape": st.lists(st.one_of(st.integers(-2, 5), st.integers(0, 2**64)), max_size=4),
    "data_offsets": st.lists(st.integers(-4, 80), min_size=0, max_size=3),
})
HEADER = st.dictionaries(
    st.text(max_size=6),
    st.one_of(TENSOR, JSON_LEAF, st.dictionaries(st.text(max_size=3), JSON_LEAF, max_size=2)),
    max_size=5,
)


@FUZZ
@given(header=HEADER, data_len=st.integers(0, 96))
def test_fuzz_safetensors_header(tmp_path: Path, header: dict[str, Any], data_len: int) -> None:
    h = json.dumps(header).encode()
    p = tmp_path / "f.safetensors"
    p.write_bytes(struct.pack("<Q", len(h)) + h + bytes(range(256))[:data_len])
    open_or_input_error(p)


def _valid_safetensors() -> bytes:
    header = {
        "__metadata__": {"a": "b"},
        "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]},
    }
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + bytes(20)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_fuzz_safetensors_mutations(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    p = tmp_path / "m.safetensors"
    p.write_bytes(mutate(_valid_safetensors(), edits, cut))
    open_or_input_error(p)


# -- torch pickles and zips ------------------------------------------------------------------

ZIP_FIXTURE = (DATA / "tiny_state_dict_zip.pt").read_bytes()
LEGACY_FIXTURE = (DATA / "tiny_state_dict_legacy.pt").read_bytes()


@FUZZ
@given(edits=EDITS, cut=st.one_of(st.none(), st.integers(0, len(ZIP_FIXTURE))))
def test_fuzz_torch_zip(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    p = tmp_path / "m.pt"
    p.write_bytes(mutate(ZIP_FIXTURE, edits, cut))
    scan_or_input_error(p)
    open_or_input_error(p)


@FUZZ
@given(edits=EDITS, cut=st.one_of(st.none(), st.integers(0, len(LEGACY_FIXTURE))))
def test_fuzz_torch_legacy(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    p = tmp_path / "m.pt"
    p.write_bytes(mutate(LEGACY_FIXTURE, edits, cut))
    scan_or_input_error(p)
    open_or_input_error(p)


OPCODES = st.sampled_from(
    [b"(", b"]", b"}", b")", b"a", b"e", b"s", b"u", b"t", b"l", b"d", b"0", b"1", b"2",
     b"N", b"\x88", b"K\x05", b"J\xff\xff\xff\xff", b"X\x01\x00\x00\x00a", b"\x8c\x02os",
     b"\x8c\x06system", b"\x93", b"R", b"b", b"\x81", b"o", b"q\x00", b"h\x00", b"\x94",
     b"g0\n", b"p1\n", b"cos\nsystem\n", b"\x85", b"\x86", b"\x87", b"Q", b"\x82\x01",
     b"\x95\x10\x00\x00\x00\x00\x00\x00\x00", b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f", b"."]
)


@settings(max_examples=5 * EXAMPLES, deadline=None)
@given(ops=st.lists(OPCODES, max_size=40), proto=st.sampled_from([b"", b"\x80\x02", b"\x80\x04"]))
def test_fuzz_pickle_opcodes(ops: list[bytes], proto: bytes) -> None:
    data = proto + b"".join(ops)
    r = scan_pickle_bytes(data, where="fuzz")
    assert r.verdict in ("safe", "suspicious", "dangerous")
    # The stdlib's own opcode parser is the reference for "os.system is imported
    # before the stream ends or breaks": then the verdict must be dangerous.
    imported = False
    try:
        for op, arg, _ in pickletools.genops(data):
            imported = imported or (op.name == "GLOBAL" and arg == "os system")
    except ValueError:
        pass
    if imported:
        assert r.verdict == "dangerous"


@settings(max_examples=3 * EXAMPLES, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_pickle_random_bytes(data: bytes) -> None:
    r = scan_pickle_bytes(data, where="fuzz")
    assert r.verdict in ("safe", "suspicious", "dangerous")
    assert scan_pickle_bytes(data, where="fuzz") == r
    if r.verdict == "dangerous":
        assert r.findings


def _torch_zip(path: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
    return path


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02" + b"(" * 200_000 + b".",  # marks, never closed
        b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".",  # lists nested 100k deep
        b"\x80\x02" + b"}" * 50_000 + b".",  # junk left on the stack
        b"\x80\x02]q\x00h\x00a.",  # a list that contains itself
        b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.",  # a dict that contains itself
        b"\x80\x02" + b"h\x00" * 1000 + b".",  # memo gets with no puts
    ],
    ids=["marks", "deep-lists", "stack-junk", "self-list", "self-dict", "bad-memo"],
)
def test_nested_and_looping_pickles(tmp_path: Path, data: bytes) -> None:
    r = scan_pickle_bytes(data, where="x")
    assert r.verdict in ("safe", "suspicious")
    p = _torch_zip(tmp_path / "n.pt", data)
    open_or_input_error(p)


@pytest.mark.parametrize("length", [2**62, 2**40, 2**31])
def test_forged_length_fields_allocate_nothing(tmp_path: Path, length: int) -> None:
    # BINBYTES8 / BINUNICODE8 claiming far more bytes than the file holds, in a raw
    # pickle and inside the data pickle of a legacy torch checkpoint.
    forged = b"\x80\x02\x8e" + struct.pack("<Q", length) + b"abc."
    p = tmp_path / "forged.pkl"
    p.write_bytes(forged)
    (r,) = scan_file(p)
    assert r.error and r.verdict == "suspicious"
    with open_model(p) as m:  # a plain pickle is reported, never rebuilt
        assert m.format == "pickle" and m.pickles[0].error
    legacy = LEGACY_FIXTURE
    f = io.BytesIO(legacy)
    ends = []
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        ends.append(f.tell())
    body = b"\x80\x02\x8d" + struct.pack("<Q", length) + b"xyz."
    p2 = tmp_path / "forged_legacy.pt"
    p2.write_bytes(legacy[: ends[2]] + body + legacy[ends[3]:])
    assert any(r.error for r in scan_file(p2))
    with pytest.raises(InputError):
        open_model(p2)


def test_zip_bomb_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles_mod, "MAX_PICKLE_BYTES", 1 << 20)
    p = tmp_path / "bomb.pt"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + bytes(32 << 20))
    reports = scan_file(p)
    reasons = [f.reason for r in reports for f in r.findings]
    assert any("compression ratio" in x for x in reasons)
    assert any("not scanned" in x for x in reasons)
    with pytest.raises(InputError):
        open_model(p)


def test_zip_entry_lying_about_its_size(tmp_path: Path) -> None:
    payload = zlib.compress(bytes(1 << 20), 9)[2:-4]  # raw deflate of 1 MiB of zeros
    entry = pickles_mod.ZipEntry("archive/data.pkl", zipfile.ZIP_DEFLATED, 0, 0, len(payload),
                                 100, 0, 0)
    with pytest.raises(DecodeError, match="declared 100 bytes"):
        pickles_mod.read_zip_entry(io.BytesIO(payload), entry, "x.pt", 1 << 30)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_fuzz_nested_zip(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x/data.pkl", pickle.dumps({"a": 1}, protocol=2))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("archive/inner.zip", mutate(inner.getvalue(), edits, cut))
    p = tmp_path / "n.pt"
    p.write_bytes(outer.getvalue())
    scan_or_input_error(p)


def test_zip_nesting_depth_is_bounded(tmp_path: Path) -> None:
    blob = pickle.dumps({}, protocol=2)
    for i in range(6):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"l{i}/data.pkl" if i == 0 else f"l{i}/inner.zip", blob)
        blob = buf.getvalue()
    p = tmp_path / "deep.zip"
    p.write_bytes(blob)
    reasons = [f.reason for r in scan_file(p) for f in r.findings]
    assert any("nested too deeply" in x for x in reasons)


# -- GGUF ----------------------------------------------------------------------------------


def _gguf_kv_header(n_tensors: int, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_gguf_kv_header(0, 2**62), "more than"),
        (_gguf_kv_header(2**62, 0), "more than"),
        # an array of 2**40 strings in a tiny file
        (_gguf_kv_header(0, 1) + _gguf_str("k") + struct.pack("<IIQ", 9, 8, 2**40), "array claims"),
        (_gguf_kv_header(0, 1) + _gguf_str("k") + struct.pack("<IIQ", 9, 8, 1000), "past the end"),
        # a uint8 array claiming 2**40 elements: gguf.GGUFReader loops on it for minutes
        (_gguf_kv_header(0, 1) + _gguf_str("k") + struct.pack("<IIQ", 9, 0, 2**40) + bytes(64),
         "array claims"),
        (_gguf_kv_header(0, 1) + _gguf_str("k") + struct.pack("<IIQ", 9, 0, 2**20) + bytes(64),
         "past the end"),
        # a string whose length is past the end
        (_gguf_kv_header(0, 1) + struct.pack("<Q", 2**63) + b"k", "claims"),
        (_gguf_kv_header(0, 1) + _gguf_str("k") + struct.pack("<I", 99), "unknown value type"),
        # tensor with dims whose product overflows 64 bits
        (_gguf_kv_header(1, 0) + _gguf_str("t") + struct.pack("<I", 2) + struct.pack("<QQ", 2**63, 2**63)
         + struct.pack("<IQ", 0, 0) + bytes(64), "past the end of the data section"),
        (_gguf_kv_header(1, 0) + _gguf_str("t") + struct.pack("<I", 1) + struct.pack("<Q", 4)
         + struct.pack("<IQ", 999, 0) + bytes(64), "unknown tensor type"),
        (_gguf_kv_header(1, 0) + _gguf_str("t") + struct.pack("<I", 99), "dimensions"),
        (b"GGUF" + struct.pack("<I", 7) + bytes(16), "version 7"),
        (b"GGU", "magic"),
    ],
)
def test_gguf_lies(tmp_path: Path, body: bytes, reason: str) -> None:
    pytest.importorskip("gguf")
    p = tmp_path / "x.gguf"
    p.write_bytes(body)
    with pytest.raises(InputError) as ei:
        from assay.models.formats.gguf import read_gguf

        read_gguf(p)
    assert reason in ei.value.reason
    assert ei.value.path == str(p)


@pytest.mark.parametrize("what", ["key/values", "tensors"])
def test_gguf_with_tens_of_thousands_of_entries_is_refused_before_reading_them(tmp_path: Path, what: str) -> None:
    # gguf's reader takes ~50 us a key/value and ~70 us a tensor: a 30 MB file of a million
    # one-word key/values kept `assay model` (and a scan's worker) busy for a minute.
    from assay.models.formats.gguf import read_gguf

    n = 65_537
    if what == "key/values":
        body = _gguf_kv_header(0, n) + b"".join(_gguf_str(f"k{i}") + struct.pack("<II", 4, i) for i in range(n))
    else:
        body = _gguf_kv_header(n, 0) + b"".join(_gguf_str(f"t{i}") + struct.pack("<IQIQ", 1, 1, 0, 32 * i)
                                                 for i in range(n))
    p = tmp_path / "many.gguf"
    p.write_bytes(body + bytes(-len(body) % 32) + bytes(32 * n if what == "tensors" else 0))
    with pytest.raises(DecodeError, match=f"claims .*{what}.*more than assay reads") as ei:
        read_gguf(p)
    assert ei.value.path == str(p) and "65,537" in ei.value.reason


def _valid_gguf(tmp_path: Path) -> bytes:
    gguf = pytest.importorskip("gguf")
    p = tmp_path / "v.gguf"
    w = gguf.GGUFWriter(str(p), arch="llama")
    w.add_name("v")
    w.add_token_list(["a", "b"])
    w.add_tensor("t", np.arange(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p.read_bytes()


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_fuzz_gguf_mutations(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = _valid_gguf(tmp_path)
    p = tmp_path / "m.gguf"
    p.write_bytes(mutate(data, edits, cut))
    open_or_input_error(p)


# -- folders ---------------------------------------------------------------------------------

JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)
NAMES = st.sampled_from(["unet", "vae", "text_encoder", "../x", "", "a/b", "weird name"])


@FUZZ
@given(
    index=st.one_of(JSON, st.dictionaries(NAMES, st.one_of(JSON, st.just(["diffusers", "X"])),
                                          max_size=3)),
    weight_map=st.one_of(JSON, st.dictionaries(st.text(max_size=4), st.one_of(
        st.sampled_from(["w.safetensors", "../w.safetensors", "/etc/passwd", "", "missing.bin"]),
        JSON_LEAF), max_size=3)),
    raw=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_fuzz_diffusers_folder(tmp_path: Path, index: Any, weight_map: Any, raw: bytes | None) -> None:
    import shutil

    root = tmp_path / "pipe"
    shutil.rmtree(root, ignore_errors=True)
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_bytes(raw if raw is not None else json.dumps(index).encode())
    (root / "unet" / "w.safetensors").write_bytes(_valid_safetensors())
    (root / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    try:
        m = open_model(root)
    except InputError as exc:
        assert exc.reason and str(root) in exc.path
        return
    with m:
        for name in m.tensors:
            m.array(name)


@FUZZ
@given(config=JSON, weights=st.one_of(st.none(), st.binary(max_size=64)))
def test_fuzz_peft_folder(tmp_path: Path, config: Any, weights: bytes | None) -> None:
    import shutil

    root = tmp_path / "lora"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "adapter_config.json").write_text(json.dumps(config))
    (root / "adapter_model.safetensors").write_bytes(
        weights if weights is not None else _valid_safetensors()
    )
    try:
        m = open_model(root)
    except InputError as exc:
        assert exc.reason and str(root) in exc.path
        return
    with m:
        for name in m.tensors:
            m.array(name)
