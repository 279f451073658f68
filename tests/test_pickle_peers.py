"""Pickle cases from peer scanners' own test suites (fickling, modelscan) where assay
disagreed with the peer and the peer was right. Every payload is written here opcode by
opcode with benign arguments; nothing is ever unpickled."""

from __future__ import annotations

import base64
import json
import marshal
from pathlib import Path

import pytest

from assay.errors import UnsafeInput
from assay.models import classify_global, open_model, scan_pickle_bytes
from assay.models.analyzer import analyze_model


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
    ("tarfile", "TarFile.open", ("/tmp/x.tar", "w")),
    ("zipfile", "PyZipFile", ("/tmp/x.zip", "w")),
    ("syslog", "syslog", ("x",)),
])
def test_command_runners_and_call_amplifiers_are_dangerous(module: str, name: str,
                                                         args: tuple[str, ...]) -> None:
    r = scan_pickle_bytes(stack_global_call(module, name, *args), where="p")
    assert r.verdict == "dangerous", r.findings


# -- modelscan: SavedModelLambdaDetectScan -------------------------------------------------


def _keras_metadata(*layers: dict[str, object]) -> bytes:
    """keras_metadata.pb as tf_keras writes it: SavedMetadata.nodes(1) -> SavedObject
    {node_id(2), node_path(3), identifier(4), metadata(5): the layer's config as JSON}."""
    from test_model_file_findings import _pb_field

    nodes = b""
    for i, layer in enumerate(layers):
        node = (b"\x10" + bytes([i + 1]) + _pb_field(3, f"root.layer-{i}".encode())
                + _pb_field(4, b"_tf_keras_layer") + _pb_field(5, json.dumps(layer).encode()))
        nodes += _pb_field(1, node)
    return nodes


def _lambda_layer() -> dict[str, object]:
    code = base64.b64encode(marshal.dumps(compile("lambda x: x", "<peer>", "eval"))).decode()
    # tf_keras's SavedModel JSON encoder writes the (code, defaults, closure) tuple so
    return {"class_name": "Lambda", "name": "lambda", "trainable": True,
            "config": {"name": "lambda", "function": {"class_name": "__tuple__",
                                                      "items": [code, None, None]},
                       "function_type": "lambda", "module": "__main__", "output_shape": None}}


def _dense_layer() -> dict[str, object]:
    return {"class_name": "Dense", "name": "dense", "config": {"name": "dense", "units": 1,
                                                                 "activation": "linear"}}


def test_savedmodel_keras_lambda_layer_is_dangerous(tmp_path: Path) -> None:
    from test_model_file_findings import saved_model

    graph = saved_model(["Placeholder", "MatMul", "SaveV2", "RestoreV2"])
    bad = tmp_path / "saved_model_unsafe"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(graph)
    (bad / "keras_metadata.pb").write_bytes(_keras_metadata(_dense_layer(), _lambda_layer()))
    report = analyze_model(bad / "saved_model.pb")
    assert report.safety.verdict == "dangerous"
    text = json.dumps(report.safety.model_dump())
    assert "keras_metadata.pb" in text and "Lambda" in text
    with pytest.raises(UnsafeInput, match="Keras layers run Python code"):
        open_model(bad)

    good = tmp_path / "saved_model_safe"
    good.mkdir()
    (good / "saved_model.pb").write_bytes(graph)
    (good / "keras_metadata.pb").write_bytes(_keras_metadata(_dense_layer()))
    assert analyze_model(good / "saved_model.pb").safety.verdict == "safe"
    with open_model(good) as m:
        assert m.format == "tf-savedmodel"


def test_savedmodel_unreadable_keras_metadata_is_suspicious(tmp_path: Path) -> None:
    from test_model_file_findings import _pb_field, saved_model

    d = tmp_path / "m"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(saved_model(["Placeholder", "MatMul"]))
    (d / "keras_metadata.pb").write_bytes(_pb_field(1, _pb_field(4, b"_tf_keras_layer")
                                                    + _pb_field(5, b"{not json")))
    assert analyze_model(d / "saved_model.pb").safety.verdict == "suspicious"
    (d / "keras_metadata.pb").write_bytes(b"\x0a\xff\xff\xff\x0f")  # a length past the end
    assert analyze_model(d / "saved_model.pb").safety.verdict == "suspicious"


# -- picklescan's broken_model.pkl, fickling's STRING without its newline ------------------


BROKEN_PAYLOADS = {
    # BINUNICODE whose length runs far past the file: the load fails before the call
    "length past the end": b"cbuiltins\nexec\n(X>\nf = print('x')tRX.",
    # STRING needs a newline: the argument runs to the end of the file
    "string without newline": b"cbuiltins\ngetattr\nS'os'S'system'\x86R.",
    "obj without newline": b"(cpty\nspawn\nS'id'o.",
}


@pytest.mark.parametrize("data", BROKEN_PAYLOADS.values(), ids=BROKEN_PAYLOADS.keys())
def test_broken_headerless_payload_is_a_dangerous_pickle(tmp_path: Path, data: bytes) -> None:
    from assay.sniff import sniff_path
    from test_model_file_findings import scan_records, worst

    p = tmp_path / "broken.bin"
    p.write_bytes(data)
    assert sniff_path(p).format == "pickle"
    assert worst(p) == "dangerous"
    rec = scan_records(p)["broken.bin"]
    assert rec.model is not None and rec.model.safety.verdict == "dangerous"


@pytest.mark.parametrize("text", [b"cd\nls\nvim notes.txt\n", b"cmake\nbuild\n'oops\n",
                                  b"csv\nreader\nS'x'", b"ctypes\nstruct\nxml\n", b"cos\nsin\nSinh\n",
                                  b"csys\nexit\nquit now\n"])
def test_lines_of_text_that_start_like_a_global_are_not_a_pickle(tmp_path: Path, text: bytes) -> None:
    from assay.models import scan_file
    from assay.sniff import sniff_path

    p = tmp_path / "notes.txt"
    p.write_bytes(text)
    assert sniff_path(p).kind == "other"
    assert scan_file(p) == []


# -- picklescan's zip tricks, in `assay scan` (assay model already caught them) ----------


def _zip_trick(kind: str, payload: bytes) -> bytes:
    import io
    import struct
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("model/config.pkl" if kind == "flag" else "data.pkl",
                               date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, payload)
    data = bytearray(buf.getvalue())
    cd = data.rindex(b"PK\x01\x02")
    if kind == "flag":  # the encryption flag (bit 0) in both headers, the data stored plain
        for at in (0, cd):
            off = at + (6 if at == 0 else 8)
            struct.pack_into("<H", data, off, struct.unpack_from("<H", data, off)[0] | 0x1)
    elif kind == "crc":  # a wrong CRC-32 in both headers
        for at in (14, cd + 16):
            struct.pack_into("<I", data, at, struct.unpack_from("<I", data, at)[0] ^ 0xFFFF)
    elif kind == "name":  # the local header names the member otherwise than the directory
        data[30:38] = b"datap.kl"
    return bytes(data)


@pytest.mark.parametrize("kind", ["flag", "crc", "name"])
def test_zip_tricks_hide_no_payload_from_scan(tmp_path: Path, kind: str) -> None:
    import os
    import pickle

    from test_model_file_findings import scan_records

    class _Call:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, ("echo hi",)

    p = tmp_path / f"{kind}.zip"
    p.write_bytes(_zip_trick(kind, pickle.dumps(_Call(), 4)))
    records = scan_records(p)
    member = next(r for r in records.values() if "!/" in r.path)
    assert member.kind == "model" and member.model is not None, member
    assert member.model.safety.verdict == "dangerous"
    assert member.errors and "PyTorch's zip reader" in member.errors[0].message


def test_a_truly_encrypted_member_stays_an_encrypted_error(tmp_path: Path) -> None:
    import zipfile

    from test_model_file_findings import scan_records

    # ZipCrypto-like: the flag set, the stored bytes unreadable without the password
    p = tmp_path / "secret.zip"
    p.write_bytes(_zip_trick("flag", bytes(range(255, -1, -1)) * 4))
    assert zipfile.ZipFile(p).infolist()[0].flag_bits & 0x1
    member = next(r for r in scan_records(p).values() if "!/" in r.path)
    assert member.kind == "error" and member.errors[0].code == "encrypted"


# -- joblib files (sklearn models): arrays' bytes inline in the pickle stream -------------

JOBLIB_FIXTURES = sorted((Path(__file__).parent / "data").glob("joblib_*.joblib"))
MARKER = ("assay-joblib-marker-" + "x" * 20).encode()


def _payload_in_place_of_marker(data: bytes) -> bytes:
    """The fixture with its final string replaced, byte for byte, by posix.system('echo hi')
    (frames and offsets unchanged): something after every array, for the scan to reach."""
    at = data.index(MARKER)
    head = 2 if data[at - 2] == 0x8C else 5  # SHORT_BINUNICODE or BINUNICODE
    n = head + len(MARKER)
    call = b"cposix\nsystem\n" + b"\x8c\x07echo hi" + b"\x85R"
    pad = n - len(call)
    filler = (b"\x8c\x000" if pad % 2 else b"") + b"N0" * ((pad - 3 * (pad % 2)) // 2)
    out = data[: at - head] + filler + call + data[at + len(MARKER) :]
    assert len(out) == len(data)
    return out


@pytest.mark.parametrize("fixture", JOBLIB_FIXTURES, ids=[p.name for p in JOBLIB_FIXTURES])
def test_joblib_files_are_read_past_their_arrays(tmp_path: Path, fixture: Path) -> None:
    from assay.models import scan_file

    # made by joblib.dump (tests/data/make_joblib_fixtures.py): numpy arrays of several
    # layouts and a final string; joblib's NumpyArrayWrapper is its array record, not code
    reports = scan_file(fixture)
    assert [r.verdict for r in reports] == ["safe"], [r.findings for r in reports]
    assert reports[0].error is None and "joblib.numpy_pickle.NumpyArrayWrapper" in reports[0].globals
    evil = tmp_path / fixture.name
    evil.write_bytes(_payload_in_place_of_marker(fixture.read_bytes()))
    reports = scan_file(evil)
    assert "posix.system" in reports[0].dangerous_globals, reports[0].findings
    assert reports[0].error is None


@pytest.mark.parametrize("fixture", [p for p in JOBLIB_FIXTURES if "1_1_1" in p.name],
                         ids=lambda p: p.name)
def test_bytes_joblib_skips_are_scanned_as_plain_pickle_load_reads_them(fixture: Path) -> None:
    import numpy as np

    # joblib before 1.2 writes an array's bytes right after its wrapper's BUILD (no
    # alignment byte): joblib reads them as data, pickle.load as opcodes. A payload there
    # must not hide behind joblib's reading.
    data = fixture.read_bytes()
    raw = np.arange(10, dtype=np.float64).tobytes()
    at = data.index(raw)
    call = b"cposix\nsystem\n" + b"\x8c\x07echo hi" + b"\x85R."
    crafted = data[:at] + call + bytes(len(raw) - len(call)) + data[at + len(raw) :]
    r = scan_pickle_bytes(crafted, where="p")
    assert "posix.system" in r.dangerous_globals, r.findings
    assert any("plain pickle.load" in f.reason for f in r.findings)


def test_damaged_joblib_files_never_crash_the_scan() -> None:
    import random

    rng = random.Random(11)
    files = [p.read_bytes() for p in JOBLIB_FIXTURES]
    for _ in range(400):
        data = bytearray(rng.choice(files))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        report = scan_pickle_bytes(bytes(data), where="f")  # raises nothing
        assert report.verdict in ("safe", "suspicious", "dangerous")


@pytest.mark.parametrize("compressor", ["zlib", "lzma"])
def test_compressed_joblib_files_are_walked_and_judged(tmp_path: Path, compressor: str) -> None:
    import lzma
    import zlib

    from assay.sniff import sniff_path
    from test_model_file_findings import scan_records

    # joblib.dump(..., compress=3) writes a raw zlib stream (compress="lzma": .lzma "alone")
    pack = zlib.compress if compressor == "zlib" else (lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE))
    plain = JOBLIB_FIXTURES[-1].read_bytes()
    good, bad = tmp_path / "good.joblib", tmp_path / "bad.joblib"
    good.write_bytes(pack(plain))
    bad.write_bytes(pack(_payload_in_place_of_marker(plain)))
    assert sniff_path(bad).kind == "archive" and sniff_path(bad).format == compressor
    verdicts = {r.path.split("/")[-1]: r.model.safety.verdict
                for r in scan_records(good, bad).values() if r.model is not None}  # fmt: skip
    assert verdicts == {"good.joblib.decompressed": "safe", "bad.joblib.decompressed": "dangerous"}, verdicts


def test_a_zlib_stream_of_something_else_is_not_taken_for_one(tmp_path: Path) -> None:
    import zlib

    from assay.sniff import sniff_path

    p = tmp_path / "notes.z"
    p.write_bytes(zlib.compress(b"plain text, not a pickle" * 20))
    assert sniff_path(p).format not in ("zlib", "lzma")


def test_array_bytes_of_old_joblib_files_are_no_payload_by_chance() -> None:
    import numpy as np

    # joblib before 1.2: random weights right after each BUILD. Read as opcodes they make
    # stray STACK_GLOBALs and calls that pickle.load would fail on: none is a finding.
    data = next(p for p in JOBLIB_FIXTURES if "1_1_1_p4" in p.name).read_bytes()
    raw = np.arange(10, dtype=np.float64).tobytes()
    at = data.index(raw)
    rng = np.random.default_rng(0)
    for _ in range(300):
        noise = rng.integers(0, 256, len(raw), dtype=np.uint8).tobytes()
        r = scan_pickle_bytes(data[:at] + noise + data[at + len(raw) :], where="p")
        assert r.verdict == "safe", r.findings


# -- torch.load(weights_only=True)'s own allow-list: what it loads is no payload ---------


def test_what_torch_weights_only_allows_is_safe() -> None:
    # a sparse tensor as torch.save writes it: the layout by name through _get_layout
    sparse = (b"\x80\x02ctorch._utils\n_rebuild_sparse_tensor\n"
              b"ctorch.serialization\n_get_layout\n" + _s("torch.sparse_coo") + b"\x85R"
              b"(NNNt\x86R.")  # fmt: skip
    quantized = (b"\x80\x02ctorch._utils\n_rebuild_qtensor\n(ctorch\nqint8\n"
                 b"ctorch\nper_tensor_affine\nctorch\nFloatTensor\nctorch.cuda\nHalfStorage\ntR.")  # fmt: skip
    for data in (sparse, quantized):
        r = scan_pickle_bytes(data, where="p")
        assert r.verdict == "safe", r.findings
    # the rest of torch.serialization stays dangerous
    assert classify_global("torch.serialization", "load")[0] == "dangerous"
    assert classify_global("torch.cuda", "set_device")[0] != "safe"


def test_assay_model_on_a_compressed_joblib_points_to_scan(tmp_path: Path) -> None:
    import zlib

    from assay.errors import UnsupportedFormat

    p = tmp_path / "model.joblib"
    p.write_bytes(zlib.compress(JOBLIB_FIXTURES[-1].read_bytes()))
    with pytest.raises(UnsupportedFormat, match="assay scan"):
        open_model(p)


# -- chat templates (ModelAudit's jinja2 cases; CVE-2024-34359) ---------------------------

SSTI = ("{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
        "{{ c()._module.__builtins__['__import__']('os').system('echo hi') }}{% endif %}{% endfor %}")
HIDDEN = "{{ request['application']['\\x5f\\x5fglobals\\x5f\\x5f']['\\x5f\\x5fbuiltins\\x5f\\x5f'] }}"
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _gguf_with_template(path: Path, template: str) -> Path:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_chat_template_that_reaches_code_is_dangerous(tmp_path: Path) -> None:
    from assay.models.chat_templates import template_findings

    for template in (SSTI, HIDDEN):
        p = _gguf_with_template(tmp_path / "evil.gguf", template)
        report = analyze_model(p)
        assert report.safety.verdict == "dangerous", report.safety
        assert "CVE-2024-34359" in json.dumps(report.safety.model_dump())
    good = _gguf_with_template(tmp_path / "good.gguf", CHATML)
    assert analyze_model(good).safety.verdict == "no-code"  # (GGUF carries no pickle)
    with open_model(good) as m:
        assert m.metadata["tokenizer.chat_template"] == CHATML
    # a special token that merely looks like a dunder is no walk
    assert template_findings("{{ '<|__end__|>' }}{{ message['content'] }}", "t") == []


def test_template_tags_are_found_in_one_pass_as_the_lazy_expression_finds_them() -> None:
    """The tags are what ``{{.*?}}|{%.*?%}`` finds (its specification, kept here), in one
    pass: the expression retried from every unclosed opening (1,000,000 characters of
    "{{" took about an hour of a scan worker)."""
    import random
    import re

    from assay.models.chat_templates import _tags, template_findings

    lazy = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
    rng = random.Random(3)
    pieces = ["{", "}", "%", "{{", "}}", "{%", "%}", "a", " ", "\n", "_"]
    for _ in range(5000):
        t = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert list(_tags(t)) == [m.group(0) for m in lazy.finditer(t)], t
    assert template_findings("{{" * 400_000, "t") == []
    # the other kind is still searched once one kind has no closing left
    assert template_findings("{%" * 400_000 + "{{ ().__class__ }}", "t")[0].severity == "dangerous"
    # what lies past the characters checked is not called safe
    (beyond,) = template_findings("{%" * 500_000 + "{{ ().__class__ }}", "t")
    assert beyond.severity == "suspicious" and "not checked" in beyond.reason


def test_transformers_folder_chat_template_that_reaches_code_is_dangerous(tmp_path: Path) -> None:
    import struct

    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    assert analyze_model(d).safety.verdict == "safe"
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "default", "template": CHATML}, {"name": "tool_use", "template": SSTI}]}))
    assert analyze_model(d).safety.verdict == "dangerous"
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    (d / "chat_template.jinja").write_text(HIDDEN)
    with pytest.raises(UnsafeInput, match="chat_template.jinja"):
        open_model(d)


def test_items_set_on_a_tensor_are_dangerous() -> None:
    # CVE-2026-24747: torch's weights_only unpickler corrupted memory on SETITEM(S) aimed
    # at a non-dict; a tensor rebuilt by the pickle is such a target
    tensor = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + _s("x") + b"K\x00(K\x01t(K\x01t\x89"
              b"ccollections\nOrderedDict\n)RtR")  # fmt: skip
    for tail in (b"K\x00K\x01s.", b"(K\x00K\x01K\x02K\x03u."):
        r = scan_pickle_bytes(tensor + tail, where="p")
        assert r.verdict == "dangerous" and "CVE-2026-24747" in r.findings[-1].reason, r.findings
    # items on dicts, as every checkpoint sets them, stay safe
    state = b"\x80\x02ccollections\nOrderedDict\n)R" + _s("w") + b"K\x01s}(" + _s("a") + b"K\x02u\x86."
    assert scan_pickle_bytes(state, where="p").verdict == "safe"


def test_numpy_ufunc_reconstructor_is_judged_by_what_it_imports() -> None:
    # numpy 1.x pickled ufuncs as numpy.core._ufunc_reconstruct(module, name): it imports
    # any module's attribute, so ('os', 'system') is os.system (no peer scanner knew it)
    head = b"\x80\x02cnumpy.core\n_ufunc_reconstruct\n"
    evil = scan_pickle_bytes(head + _s("os") + _s("system") + b"\x86R" + _s("echo hi") + b"\x85R.", where="p")
    assert evil.verdict == "dangerous" and "os.system" in evil.dangerous_globals, evil.findings
    computed = scan_pickle_bytes(head + _s("os") + b"K\x01\x86R.", where="p")
    assert computed.verdict == "dangerous"
    ufunc = scan_pickle_bytes(head + _s("numpy.core._multiarray_umath") + _s("log1p") + b"\x86R.", where="p")
    assert ufunc.verdict == "suspicious" and not ufunc.dangerous_globals


# -- ModelAudit's regression corpus: pickles carried as base64 or hex text ------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("encode", [_b64, bytes.hex, lambda d: base64.urlsafe_b64encode(d).decode().rstrip("=")],
                         ids=["base64", "hex", "urlsafe"])
def test_a_pickle_carried_as_text_is_scanned_like_pickle_bytes(encode) -> None:
    # nested_pickle_base64.pkl / nested_pickle_hex.pkl / decode_exec_chain.pkl: a dict whose
    # value is an encoded pickle. Raw pickle bytes there were already scanned; as text the
    # same payload was 'safe'.
    inner = stack_global_call("os", "system", "echo hi")
    outer = b"\x80\x04}" + _s("payload") + b"X" + len(encode(inner)).to_bytes(4, "little") \
        + encode(inner).encode() + b"s."
    r = scan_pickle_bytes(outer, where="p")
    assert r.verdict == "dangerous", r.findings
    assert "-encoded pickle nested at byte" in r.findings[0].reason
    harmless = stack_global_call("collections", "OrderedDict")
    ok = b"\x80\x04}" + _s("payload") + b"X" + len(encode(harmless)).to_bytes(4, "little") \
        + encode(harmless).encode() + b"s."
    assert scan_pickle_bytes(ok, where="p").verdict == "safe"


@pytest.mark.parametrize("text", ["gASoline prices rose", "gASolineAndDieselPrices", "8004deadbeefcafe00",
                                  "gAUAAAAAAAAAAAAAAAAAAAAAA"])
def test_text_that_only_starts_like_an_encoded_pickle_is_no_finding(text: str) -> None:
    data = b"\x80\x04]" + _s(text) + b"a."
    assert scan_pickle_bytes(data, where="p").verdict == "safe"
