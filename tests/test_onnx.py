"""ONNX model files: sniffed by content, weights located without onnx, exporter names
given back, lineage across the conversion, and what a hostile ONNX file can do.

Fixtures are written with the ``onnx`` package (the reference writer, a test
dependency; assay never imports it) the way PyTorch's exporter lays models out: a
parameter used as is keeps its name; a ``Linear`` weight folded into ``MatMul`` is stored
transposed under a generated name (``onnx::MatMul_7``) and its node is named by module
scope (``/model/layers.0/self_attn/q_proj/MatMul``). Weights are random (tests/modelgen's
Llama layout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelgen
from assay.errors import DecodeError, InputError
from assay.models.analyzer import analyze_model
from assay.models.fingerprint import fingerprint_arrays, fingerprint_file
from assay.models.formats import open_model
from assay.models.lineage import BankModel, answer
from assay.sniff import sniff_bytes, sniff_path

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ASSAY = [sys.executable, "-m", "assay"]
LLAMA = {"hidden": 64, "layers": 2, "vocab": 128, "ff": 96, "kv": 32}


def random_model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, (_dt, shape) in modelgen.llama(**LLAMA).items():
        if len(shape) == 1:
            out[k] = (1.0 + 0.02 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[k] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    return out


def fine_tune(a: Mapping[str, np.ndarray], scale: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + scale * np.std(v) * rng.standard_normal(v.shape)).astype(np.float32) for k, v in a.items()}


def export(path: Path, weights: Mapping[str, np.ndarray], *, dtype: type = np.float32,
           external: bool = False, doc: str = "", extra_nodes: list | None = None) -> Path:
    """An ONNX graph laid out as torch.onnx.export writes a Llama: Gather for the
    embedding, MatMul with transposed, generated-name weights for every Linear, Mul
    for norms (the graph is plausible, not meant to be run)."""
    inits, nodes, x, n = [], [], "input_ids", 0
    for name, w in weights.items():
        module = name.removesuffix(".weight")
        scope = "/" + module.replace(".", "/").replace("/layers/", "/layers.") + "/"
        if name.endswith("embed_tokens.weight"):
            inits.append(numpy_helper.from_array(w.astype(dtype), name))
            nodes.append(helper.make_node("Gather", [name, x], [f"h{n}"], name=scope + "Gather"))
        elif w.ndim == 2:
            gen = f"onnx::MatMul_{1000 + n}"
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T).astype(dtype), gen))
            nodes.append(helper.make_node("MatMul", [x, gen], [f"h{n}"], name=scope + "MatMul"))
        else:
            inits.append(numpy_helper.from_array(w.astype(dtype), name))
            nodes.append(helper.make_node("Mul", [x, name], [f"h{n}"], name=scope + "Mul"))
        x, n = f"h{n}", n + 1
    nodes += extra_nodes or []
    graph = helper.make_graph(
        nodes, "main_graph", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 8])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, producer_name="pytorch", producer_version="2.5.1")
    if doc:
        model.doc_string = doc
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def world() -> dict[str, dict[str, np.ndarray]]:
    a = random_model(1)
    return {"A": a, "A_ft": fine_tune(a, 0.05, 2), "U": random_model(3)}


def bank(world: Mapping[str, Mapping[str, np.ndarray]]) -> list[BankModel]:
    return [BankModel("flagged", "A", "checkpoint", fingerprint_arrays(world["A"], kind="checkpoint"))]


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize("external", [False, True])
def test_weights_read_under_their_parameter_names(tmp_path: Path, world, external: bool) -> None:
    path = export(tmp_path / "model.onnx", world["A"], external=external)
    with open_model(path) as mf:
        assert mf.format == "onnx"
        assert set(mf.tensors) == set(world["A"])  # onnx::MatMul_* given back their names
        for name, w in world["A"].items():
            assert np.array_equal(mf.array(name), w), name
            assert mf.array(name, convert=True).shape == w.shape
        info = mf.metadata["onnx"]
        assert info["producer_name"] == "pytorch" and info["ops"]["MatMul"] == 15
        assert info["renamed"]["onnx::MatMul_1001"] == "model.layers.0.self_attn.q_proj.weight"
        assert (info.get("external_data") == ["model.onnx.data"]) is external
        sources = {Path(t.source).name for t in mf.tensors.values()}
        assert sources == {"model.onnx.data" if external else "model.onnx"}


def test_sniffed_by_content_whatever_the_name(tmp_path: Path, world) -> None:
    path = export(tmp_path / "model.onnx", world["A"])
    data = path.read_bytes()
    for name in ("weights.bin", "model", "photo.jpg"):
        (tmp_path / name).write_bytes(data)
        assert sniff_path(tmp_path / name).format == "onnx", name
    # a doc string longer than the sniffer's head: it reads on to the graph
    long_doc = export(tmp_path / "doc.onnx", world["A"], doc="licence text " * 400)
    assert sniff_bytes(long_doc.read_bytes()[:512], long_doc.stat().st_size).kind == "other"
    assert sniff_path(long_doc).format == "onnx"
    # protobufs that are not ONNX models: a TensorFlow SavedModel's head, a bare tensor
    saved_model = b"\x08\x01\x12\x84\x10" + bytes(2052)
    assert sniff_bytes(saved_model, len(saved_model)).format != "onnx"
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "w").SerializeToString()
    assert sniff_bytes(tensor, len(tensor)).format != "onnx"
    # a graph length past the end of the file (a cut copy) is not taken for a model
    assert sniff_bytes(data[:512], 512).format != "onnx"


def test_model_functions_and_subgraphs_are_walked(tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    inner = helper.make_graph(
        [helper.make_node("Relu", ["w_in"], ["o"], domain="com.evil")], "then",
        [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w_in")])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)
    const = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(w * 2, "k"))
    g = helper.make_graph([const, cond], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(g), str(path))
    with open_model(path) as mf:
        assert np.array_equal(mf.array("w_in"), w) and np.array_equal(mf.array("k"), w * 2)
        assert mf.metadata["onnx"]["custom_ops"] == ["com.evil.Relu"]  # found inside the branch
        assert mf.pickles[0].verdict == "suspicious"


# ------------------------------------------------------------------ lineage


def test_an_export_of_a_flagged_model_is_the_same_weights(tmp_path: Path, world) -> None:
    rep = answer(fingerprint_file(export(tmp_path / "a.onnx", world["A"])), bank(world))
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    # fp16 with its weights in an external file, as large exports are
    rep = answer(fingerprint_file(export(tmp_path / "a16.onnx", world["A"], dtype=np.float16, external=True)),
                 bank(world))
    assert [s.entry for s in rep.same] == ["flagged/A"], rep.explanations()


def test_an_export_of_a_fine_tune_is_derived_and_an_unrelated_one_is_nothing(tmp_path: Path, world) -> None:
    rep = answer(fingerprint_file(export(tmp_path / "ft.onnx", world["A_ft"], external=True)), bank(world))
    # A's base is not banked: a relative whose direction is not measured
    assert [d.entry for d in rep.related] == ["flagged/A"] and not rep.same, rep.explanations()
    rep = answer(fingerprint_file(export(tmp_path / "u.onnx", world["U"])), bank(world))
    assert not rep.found, rep.explanations()


def qdq(src: Path, dst: Path, *, per_channel: bool = False, unsigned: bool = False, qoperator: bool = False) -> Path:
    """``src`` quantized as ONNX Runtime's quantize_static writes a QDQ model (its names:
    W_quantized, W_scale, W_zero_point, a DequantizeLinear node giving
    W_DequantizeLinear_Output to the MatMul): every MatMul weight to 8 bits, one scale for
    the tensor or one per output column (axis 1 of the (in, out) weight). ``qoperator``: as
    quantize_dynamic writes it instead (QOperator format: the MatMul becomes a
    MatMulInteger node named NAME_quant taking W_quantized and W_zero_point; W_scale is
    applied after it by a Mul)."""
    model = onnx.load(str(src))
    g = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    kept, added = [], []
    for node in list(g.node):
        if node.op_type != "MatMul" or node.input[1] not in weights:
            continue
        name = node.input[1]
        w = weights[name].astype(np.float32)
        amax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
        scale = (np.asarray(amax) / 127.0).astype(np.float32)
        q = np.clip(np.round(w / scale), -127, 127)
        zero = np.zeros(scale.shape, np.int8)
        if unsigned:
            q, zero = q + 128, zero.astype(np.int16) + 128
        qtype = np.uint8 if unsigned else np.int8
        added += [numpy_helper.from_array(q.astype(qtype), f"{name}_quantized"),
                  numpy_helper.from_array(scale, f"{name}_scale"),
                  numpy_helper.from_array(zero.astype(qtype), f"{name}_zero_point")]
        weights.pop(name)
        if qoperator:
            a, y = node.input[0], node.output[0]
            kept += [helper.make_node("DynamicQuantizeLinear", [a], [f"{a}_q", f"{a}_s", f"{a}_z"]),
                     helper.make_node("MatMulInteger", [f"{a}_q", f"{name}_quantized", f"{a}_z",
                                                        f"{name}_zero_point"], [f"{y}_i32"], name=node.name + "_quant"),
                     helper.make_node("Cast", [f"{y}_i32"], [f"{y}_f"], to=TensorProto.FLOAT),
                     helper.make_node("Mul", [f"{a}_s", f"{name}_scale"], [f"{y}_scale"]),
                     helper.make_node("Mul", [f"{y}_f", f"{y}_scale"], [y])]
            node.op_type = "Identity"  # replaced: removed below
            continue
        out = f"{name}_DequantizeLinear_Output"
        attrs = {"axis": 1} if per_channel else {}
        kept.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                                          f"{name}_zero_point"], [out],
                                     name=f"{name}_DequantizeLinear", **attrs))
        node.input[1] = out
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()] + added
    nodes = kept + [n for n in g.node if n.op_type != "Identity"]
    graph = helper.make_graph(nodes, g.name, list(g.input), list(g.output), initializer=inits)
    onnx.save(helper.make_model(graph, producer_name="onnx.quantize", producer_version="1.20"), str(dst))
    return dst


@pytest.mark.parametrize("per_channel,unsigned,qoperator", [(False, False, False), (True, False, False),
                                                            (False, True, False), (False, False, True),
                                                            (True, True, True)])
def test_an_onnx_runtime_qdq_export_is_the_same_weights_within_its_rounding(
        tmp_path: Path, world, per_channel: bool, unsigned: bool, qoperator: bool) -> None:
    """An export quantized to 8 bits (ONNX Runtime's QDQ format) kept only int8 weights under
    '_quantized' names: 'non-float tensors not fingerprinted', linked to nothing. The
    weights behind each DequantizeLinear are read as (q - zero point) * scale under the
    parameter name of the MatMul that uses them."""
    qtype = f"ONNX-{'uint8' if unsigned else 'int8'}{'-per-channel' if per_channel else ''}"
    kw = {"per_channel": per_channel, "unsigned": unsigned, "qoperator": qoperator}
    f = fingerprint_file(qdq(export(tmp_path / "a.onnx", world["A"]), tmp_path / "aq.onnx", **kw))
    assert f.source["quantized"] == {qtype: 7 * LLAMA["layers"] + 1}, f.source  # the linears and lm_head
    rep = answer(f, bank(world))
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    assert f"quantized ({qtype})" in rep.same[0].explanation
    rep = answer(fingerprint_file(qdq(export(tmp_path / "u.onnx", world["U"]), tmp_path / "uq.onnx", **kw)),
                 bank(world))
    assert not rep.found, rep.explanations()
    rep = analyze_model(qdq(export(tmp_path / "ft.onnx", world["A_ft"]), tmp_path / "ftq.onnx", **kw))
    arch = rep.model_dump(mode="json")["arch"]
    assert arch["family"] == "llm" and arch["dtypes"][qtype] == 7 * LLAMA["layers"] + 1


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*ASSAY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_cli_model_and_scan_find_the_export_of_a_banked_checkpoint(tmp_path: Path, world) -> None:
    db = str(tmp_path / "b.sqlite3")
    flagged = modelgen.write_safetensors(tmp_path / "flagged.safetensors",
                                         {k: ("F32", v.shape) for k, v in world["A"].items()}, values=world["A"])
    assert _run("--db", db, "bank", "create", "models", "--create").returncode == 0
    r = _run("--db", db, "bank", "add-model", "models", str(flagged), "--id", "bad-llama")
    assert r.returncode == 0, r.stderr
    (tmp_path / "case").mkdir()
    # renamed: what the file is called does not decide what it is
    export(tmp_path / "case" / "export.onnx", world["A"], external=True).rename(tmp_path / "case" / "notes.dat")
    r = _run("--db", db, "model", str(tmp_path / "case" / "notes.dat"))
    assert r.returncode in (0, 1) and r.stderr == "", r.stderr
    assert "onnx model" in r.stdout and "ONNX: IR" in r.stdout and "made by pytorch 2.5.1" in r.stdout
    assert "15 weight(s) with exporter-generated names" in r.stdout
    assert "bad-llama" in r.stdout.split("lineage", 1)[1]
    # the external data file was named notes.dat's at export: found as export.onnx.data
    assert "weights in: export.onnx.data" in r.stdout
    out = tmp_path / "r.jsonl"
    r = _run("--db", db, "scan", str(tmp_path / "case"), "-o", str(out), "--workers", "1")
    assert r.returncode in (0, 1), r.stderr
    recs = {Path(x["path"]).name: x for x in map(json.loads, out.read_text().splitlines())
            if x.get("schema") == "assay.file/1"}
    model = recs["notes.dat"]["model"]
    assert model["format"] == "onnx" and model["safety"]["verdict"] == "no-code"
    assert [s["entry"] for s in model["lineage"]["same"]] == ["models/bad-llama"]


# ------------------------------------------------------------------ hostile files


def _tiny(tmp_path: Path, name: str = "m.onnx", *, nodes: list | None = None, inits: list | None = None) -> Path:
    g = helper.make_graph(nodes or [helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=inits or [])
    path = tmp_path / name
    onnx.save(helper.make_model(g), str(path))
    return path


def _external(name: str, location: str, dims: tuple[int, ...] = (1,)) -> object:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    return t


def test_custom_and_python_operators_are_suspicious_standard_ones_are_not(tmp_path: Path) -> None:
    rep = analyze_model(_tiny(tmp_path, nodes=[helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")]))
    assert rep.safety.verdict == "no-code"
    rep = analyze_model(_tiny(tmp_path, "c.onnx", nodes=[helper.make_node("Decrypt", ["x"], ["y"], domain="com.acme.ops")]))
    assert rep.safety.verdict == "suspicious"
    assert "custom operator 'Decrypt' in domain 'com.acme.ops'" in " ".join(rep.safety.findings[0].details["findings"])
    rep = analyze_model(_tiny(tmp_path, "p.onnx", nodes=[helper.make_node("PythonOp", ["x"], ["y"], domain="com.microsoft")]))
    assert rep.safety.verdict == "suspicious"
    assert "Python operator 'PythonOp'" in " ".join(rep.safety.findings[0].details["findings"])


@pytest.mark.parametrize("location", ["../outside/secret.bin", "/etc/passwd", "a/../../x", "..\\x",
                                      "C:\\Windows\\win.ini", "link/secret.bin",
                                      # inside as text, outside once the link is followed
                                      "link/../outside/secret.bin"])
def test_external_data_outside_the_folder_is_dangerous_and_never_opened(tmp_path: Path, location: str) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "outside").mkdir()
    # a FIFO: opening it for reading would block until a writer comes, so a reader
    # that opened the target would hang this test (the subprocess's timeout)
    os.mkfifo(tmp_path / "outside" / "secret.bin")
    (model_dir / "link").symlink_to(tmp_path / "outside")
    path = _tiny(model_dir, inits=[_external("W", location)])
    r = _run("model", str(path), "--json", timeout=60)
    rec = json.loads(r.stdout)
    assert rec["safety"]["verdict"] == "dangerous", rec
    text = " ".join(rec["safety"]["findings"][0]["details"]["findings"])
    assert "outside the model's folder" in text and "CVE-2022-25882" in text
    r = _run("model", str(path), timeout=60)
    assert "DANGEROUS" in r.stdout and r.stderr == ""


def test_external_data_inside_the_folder_but_missing_or_short_is_a_warning(tmp_path: Path) -> None:
    path = _tiny(tmp_path, inits=[_external("W", "weights.bin", (4,)), _external("V", "sub/v.bin", (2,))])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "v.bin").write_bytes(np.array([1, 2], np.float32).tobytes())
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)  # 4 floats need 16 bytes
    with open_model(path) as mf:
        assert list(mf.tensors) == ["V"] and mf.array("V").tolist() == [1.0, 2.0]
        assert any("does not hold its 16 bytes" in w for w in mf.metadata["onnx"]["warnings"])
    (tmp_path / "weights.bin").unlink()
    rep = analyze_model(path)
    assert rep.safety.verdict == "no-code"
    with open_model(path) as mf:
        assert any("missing or unreadable" in w for w in mf.metadata["onnx"]["warnings"])


def test_external_data_whose_dotdot_stays_inside_is_read(tmp_path: Path) -> None:
    # ModelAudit's test_normalized_in_dir_path_with_dotdot_no_traversal_flag: ONNX's own
    # check normalises 'sub/../w.bin' to 'w.bin' and loads it; assay called it dangerous.
    (tmp_path / "sub").mkdir()
    (tmp_path / "w.bin").write_bytes(np.array([1, 2], np.float32).tobytes())
    path = _tiny(tmp_path, inits=[_external("W", "sub/../w.bin", (2,))])
    assert analyze_model(path).safety.verdict == "no-code"
    with open_model(path) as mf:
        assert mf.array("W").tolist() == [1.0, 2.0]


def test_damaged_files_are_refused_by_name(tmp_path: Path, world) -> None:
    data = export(tmp_path / "ok.onnx", world["A"]).read_bytes()
    for cut in (40, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(InputError) as e:
            open_model(bad)
        assert str(bad) in str(e.value)
    # raw data shorter than its dims say
    t = numpy_helper.from_array(np.ones((2, 2), np.float32), "W")
    t.raw_data = t.raw_data[:-4]
    with pytest.raises(DecodeError, match="12 bytes of data for F32"):
        open_model(_tiny(tmp_path, "short.onnx", inits=[t]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzzed_models_give_a_model_or_an_error_naming_the_file(tmp_path: Path, flips) -> None:
    src = Path(tmp_path / "seed.onnx")
    if not src.exists():
        w = {k: v for k, v in random_model(9).items() if "layers.1" not in k}
        export(src, w, extra_nodes=[helper.make_node("Relu", ["x"], ["z"], domain="com.x")])
    data = bytearray(src.read_bytes())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(bytes(data))
    try:
        with open_model(path) as mf:
            for name in list(mf.tensors)[:5]:
                mf.array(name)
    except InputError as exc:
        assert str(path) in str(exc)


def test_an_onnx_diffusers_pipeline_folder_reads_its_components(tmp_path: Path, world) -> None:
    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    (pipe / "text_encoder").mkdir()
    (pipe / "model_index.json").write_text(json.dumps({
        "_class_name": "ORTStableDiffusionPipeline", "unet": ["diffusers", "OnnxRuntimeModel"],
        "text_encoder": ["diffusers", "OnnxRuntimeModel"]}))
    export(pipe / "unet" / "model.onnx", world["A"], external=True)
    _tiny(pipe / "text_encoder", "model.onnx",
          nodes=[helper.make_node("Tokenize", ["x"], ["y"], domain="com.acme.text")])
    with open_model(pipe) as mf:
        assert mf.format == "diffusers"
        assert {k.split("/", 1)[1] for k in mf.tensors if k.startswith("unet/")} == set(world["A"])
        assert np.array_equal(mf.array("unet/model.layers.1.mlp.down_proj.weight"),
                              world["A"]["model.layers.1.mlp.down_proj.weight"])
    assert analyze_model(pipe).safety.verdict == "suspicious"  # the text encoder's custom operator


def test_hostile_graph_sizes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.models.formats import onnx as reader

    nodes = [helper.make_node(f"Op{i}", ["x"], [f"y{i}"], domain=f"com.d{i % 7}") for i in range(400)]
    path = _tiny(tmp_path, "many.onnx", nodes=nodes)
    monkeypatch.setattr(reader, "MAX_OP_KINDS", 50)
    with open_model(path) as mf:
        info = mf.metadata["onnx"]
        assert len(info["ops"]) == 51 and info["ops"]["(other)"] == 350
        assert info["nodes"] == 400 and len(info["custom_ops"]) <= 200
        assert mf.pickles[0].verdict == "suspicious"
    monkeypatch.setattr(reader, "MAX_NODES", 100)
    with pytest.raises(DecodeError, match="more than 100 nodes"):
        open_model(path)
