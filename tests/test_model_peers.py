"""Model-file cases from ModelAudit's test suite (promptfoo/modelaudit, tests/scanners/
test_keras_zip_scanner.py) and the Keras loader they are about (keras-team/keras,
saving/serialization_lib.py, utils/torch_utils.py, export/tfsm_layer.py), where assay
disagreed and the peer or Keras was right. Configs are written here as Keras writes
them; every embedded payload is built opcode by opcode with benign arguments, and
nothing is ever unpickled or loaded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from assay.errors import UnsafeInput
from assay.models import open_model
from assay.models.analyzer import analyze_model
from assay.models.formats.keras import scan_keras_config
from pickle_corpus import _zip, call4, keras_zip, legacy_torch_state_dict


def _verdict(tmp_path: Path, data: bytes, name: str = "m.keras") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return analyze_model(p).safety.verdict


# -- compiled models name their loss as a Keras function: not code --------------------


@pytest.mark.parametrize(("module", "name"), [
    ("keras.losses", "binary_crossentropy"),         # Keras 3 compile_config, a function loss
    ("keras.src.losses.losses", "mean_squared_error"),
    ("keras.activations", "relu"),
    ("builtins", "binary_crossentropy"),             # as Keras <= 3.6 wrote a loss given by name
    ("tensorflow.math", "tanh"),
    ("tensorflow.python.ops.nn_ops", "gelu"),           # activation=tf.nn.gelu, as Keras 3 names it
])
def test_keras_modelling_functions_are_no_finding(tmp_path: Path, module: str, name: str) -> None:
    # A compiled Keras 3 model holds {"module": "keras.losses", "class_name": "function",
    # "config": "binary_crossentropy"}: assay called every such model dangerous.
    assert _verdict(tmp_path, keras_zip(loss=(module, name))) == "safe"
    assert _verdict(tmp_path, keras_zip(function=(module, name)), "a.keras") == "safe"
    with open_model(tmp_path / "m.keras") as m:
        assert m.format == "keras"


@pytest.mark.parametrize(("module", "name"), [
    ("keras.utils", "get_file"),                          # ModelAudit: CVE-2025-8747
    ("keras.src.utils.file_utils", "get_file"),
    ("keras.config", "enable_unsafe_deserialization"),    # ModelAudit: CVE-2025-9906
    ("keras.models", "load_model"),
    ("keras.utils", "save_img"),
    ("builtins", "eval"),                                 # Keras < 3.9 reached Python's builtins
    ("os", "system"),
    ("tensorflow.python.ops.script_ops", "py_func"),
])
def test_keras_functions_that_do_more_than_compute_are_dangerous(tmp_path: Path, module: str,
                                                               name: str) -> None:
    assert _verdict(tmp_path, keras_zip(function=(module, name))) == "dangerous"
    with pytest.raises(UnsafeInput):
        open_model(tmp_path / "m.keras")


def test_keras_function_outside_the_modelling_modules_is_suspicious(tmp_path: Path) -> None:
    assert _verdict(tmp_path, keras_zip(function=("keras.utils", "normalize"))) == "suspicious"


# -- TorchModuleWrapper: a torch.save'd module unpickled at load (CVE-2025-49655) --------


def _torch_zip(data_pkl: bytes) -> bytes:
    return _zip({"archive/data.pkl": data_pkl, "archive/version": b"3\n"})


def _wrapper(module: str | None) -> dict[str, object]:
    cfg: dict[str, object] = {"name": "torch_wrapper", "trainable": True}
    if module is not None:
        cfg["module"] = module
    return {"module": "keras.layers", "class_name": "TorchModuleWrapper", "config": cfg,
            "registered_name": None}


def test_torch_module_wrapper_with_a_payload_is_dangerous(tmp_path: Path) -> None:
    evil = base64.b64encode(_torch_zip(call4("os", "system", "echo hi"))).decode()
    report = analyze_model(_write(tmp_path, keras_zip(extra_layers=[_wrapper(evil)])))
    assert report.safety.verdict == "dangerous"
    text = str(report.safety.model_dump())
    assert "TorchModuleWrapper layer 'torch_wrapper'" in text and "os.system" in text
    with pytest.raises(UnsafeInput, match="os.system"):
        open_model(tmp_path / "m.keras")
    # a bare pickle (the legacy, non-zip torch.save layout) is read the same way
    legacy = base64.b64encode(call4("posix", "system", "x")).decode()
    assert _verdict(tmp_path, keras_zip(extra_layers=[_wrapper(legacy)]), "l.keras") == "dangerous"


def test_torch_module_wrapper_with_tensors_only_is_safe_and_unreadable_is_suspicious(
        tmp_path: Path) -> None:
    plain = base64.b64encode(legacy_torch_state_dict()).decode()
    assert _verdict(tmp_path, keras_zip(extra_layers=[_wrapper(plain)])) == "safe"
    # ModelAudit's placeholder: not base64 of anything torch.load reads
    assert _verdict(tmp_path, keras_zip(extra_layers=[_wrapper("my_torch_module")]),
                    "p.keras") == "suspicious"
    # a wrapper without a saved module loads nothing
    assert _verdict(tmp_path, keras_zip(extra_layers=[_wrapper(None)]), "n.keras") == "safe"


def test_keras_archives_nested_in_torch_module_wrappers_stop_at_the_depth_limit(tmp_path: Path) -> None:
    """A .keras whose TorchModuleWrapper holds a .keras whose wrapper holds another ...: the
    depth of the archive the config came from was not passed on, so every level started
    again at 0: however deep, every level was scanned (only Python's recursion limit ended
    it: an uncaught RecursionError). Now the nesting stops at the zip depth limit (3),
    reported suspicious; six levels read 'safe' before."""
    inner = keras_zip()
    for _ in range(6):
        inner = keras_zip(extra_layers=[_wrapper(base64.b64encode(inner).decode())])
    report = analyze_model(_write(tmp_path, inner))
    assert report.safety.verdict == "suspicious"
    assert "nested too deeply" in str(report.safety.model_dump())


def test_torch_module_wrapper_in_a_nested_model_is_found() -> None:
    evil = base64.b64encode(_torch_zip(call4("subprocess", "run", "id"))).decode()
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Sequential", "config": {"layers": [_wrapper(evil)]}}]}}
    assert scan_keras_config(config, "c").verdict == "dangerous"


# -- TFSMLayer: loads another SavedModel at deserialization (Keras < 3.14 in safe mode) ---


def test_tfsm_layer_loads_a_model_outside_the_file(tmp_path: Path) -> None:
    def layer(path: str) -> dict[str, object]:
        return {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
                "config": {"name": "tfsm", "filepath": path, "call_endpoint": "serve"}}

    assert _verdict(tmp_path, keras_zip(extra_layers=[layer("/models/other")])) == "suspicious"
    assert _verdict(tmp_path, keras_zip(extra_layers=[layer("gs://bucket/m")]), "r.keras") == "dangerous"


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "m.keras"
    p.write_bytes(data)
    return p


def test_lambda_with_source_text_is_suspicious_and_says_so() -> None:
    # ModelAudit's samples/keras/malicious_lambda.h5: the function is Python source as a
    # string (no function_type): Keras cannot load it, so not dangerous, but the finding
    # must read as what it is, not as a global named 'builtins.lambda x: eval(...)'.
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "Lambda", "config": {"function": "lambda x: eval('1 + 1')"}}]}}
    report = scan_keras_config(config, "c")
    assert report.verdict == "suspicious"
    (finding,) = report.findings
    assert finding.global_name == "Lambda(?)"
    assert "holds Python source text as its function" in finding.reason
    named = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "Lambda", "config": {"name": "l", "function": "system", "module": "os"}}]}}
    assert scan_keras_config(named, "c").verdict == "dangerous"



def test_savedmodel_print_to_a_file_is_a_file_write(tmp_path: Path) -> None:
    # ModelAudit's SUSPICIOUS_OPS lists Print/PrintV2; PrintV2 only touches the file system
    # when tf.print(output_stream="file://...") made it append to a path.
    from test_model_file_findings import _pb_field

    def node(name: bytes, op: bytes, attr: bytes = b"") -> bytes:
        return _pb_field(1, _pb_field(1, name) + _pb_field(2, op) + attr)

    for i, (stream, verdict) in enumerate([(b"file:///home/user/.bashrc", "dangerous"),
                                           (b"stderr", "safe"), (b"log(info)", "safe")]):
        attr = _pb_field(5, _pb_field(1, b"output_stream") + _pb_field(2, _pb_field(2, stream)))
        graph = node(b"x", b"Placeholder") + node(b"print", b"PrintV2", attr)
        d = tmp_path / f"m{i}"
        d.mkdir()
        # SavedModel {schema 1, meta_graphs 2: MetaGraphDef {graph_def 2: GraphDef {node 1}}}
        (d / "saved_model.pb").write_bytes(b"\x08\x01" + _pb_field(2, _pb_field(2, graph)))
        report = analyze_model(d / "saved_model.pb")
        assert report.safety.verdict == verdict, stream
        assert ("PrintV2 to a file" in str(report.safety.model_dump())) == (verdict == "dangerous")


# -- skops (ModelAudit's skops scanner cases; skops-dev/skops io/_general.py node types) ---


def _node(module: str, cls: str, loader: str, content: object = None) -> dict[str, object]:
    node: dict[str, object] = {"__class__": cls, "__module__": module, "__loader__": loader}
    if content is not None:
        node["content"] = content
    return node


def _skops(*steps: dict[str, object], arrays: int = 1) -> bytes:
    """A skops archive as skops.io.dump writes it: schema.json and the arrays."""
    import io
    import json

    import numpy as np

    step_list = _node("builtins", "list", "ListNode", [
        _node("builtins", "tuple", "TupleNode", [_node("builtins", "str", "JsonNode", f'"s{i}"'), step])
        for i, step in enumerate(steps)])
    schema = _node("sklearn.pipeline", "Pipeline", "ObjectNode",
                   _node("builtins", "dict", "DictNode", {"steps": step_list}))
    schema["protocol"] = 2
    members = {"schema.json": json.dumps(schema).encode()}
    for i in range(arrays):
        buf = io.BytesIO()
        np.save(buf, np.arange(4, dtype=np.float64))
        members[f"{1000 + i}.npy"] = buf.getvalue()
    return _zip(members)


def _estimator() -> dict[str, object]:
    coef = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode",
            "type": "numpy", "file": "1000.npy"}
    return _node("sklearn.linear_model._logistic", "LogisticRegression", "ObjectNode",
                 _node("builtins", "dict", "DictNode", {"coef_": coef}))


def _function_transformer(module: str, name: str, loader: str = "FunctionNode") -> dict[str, object]:
    return _node("sklearn.preprocessing._function_transformer", "FunctionTransformer", "ObjectNode",
                 _node("builtins", "dict", "DictNode", {"func": _node(module, name, loader)}))


def test_skops_pipeline_of_sklearn_types_is_safe(tmp_path: Path) -> None:
    p = tmp_path / "m.skops"
    p.write_bytes(_skops(_function_transformer("numpy", "log1p"), _estimator()))
    report = analyze_model(p)
    assert report.format == "skops" and report.safety.verdict == "safe"
    with open_model(p) as m:
        assert m.format == "skops"


@pytest.mark.parametrize(("module", "name", "loader"), [
    ("posix", "system", "FunctionNode"),
    ("builtins", "eval", "FunctionNode"),
    ("operator", "attrgetter", "OperatorFuncNode"),       # CVE-2025-54412
    ("subprocess", "Popen", "ConstructorFromReduceNode"),
    ("sklearn.utils._testing", "assert_run_python_script", "FunctionNode"),
])
def test_skops_model_that_loads_code_is_dangerous(tmp_path: Path, module: str, name: str,
                                                  loader: str) -> None:
    p = tmp_path / "m.skops"
    p.write_bytes(_skops(_function_transformer(module, name, loader), _estimator()))
    report = analyze_model(p)
    assert report.safety.verdict == "dangerous"
    assert f"{module}.{name}" in str(report.safety.model_dump())
    with pytest.raises(UnsafeInput, match=f"skops model loads code.*{module}.{name}"):
        open_model(p)


def test_skops_custom_class_is_suspicious_and_scan_sees_a_model(tmp_path: Path) -> None:
    # ModelAudit's samples/pipeline.skops: a __main__.DivideColumns step the user must trust
    from test_containers import _scan

    custom = _node("__main__", "DivideColumns", "ObjectNode", _node("builtins", "dict", "DictNode", {}))
    p = tmp_path / "m.skops"
    p.write_bytes(_skops(custom, _estimator()))
    report = analyze_model(p)
    assert report.safety.verdict == "suspicious"
    assert "skops.io.load refuses it unless the user trusts it" in str(report.safety.model_dump())
    recs, _ = _scan([p])
    (rec,) = [r for r in recs if r.path == str(p)]
    assert rec.kind == "model" and rec.model is not None and rec.model.safety.verdict == "suspicious"


def test_skops_sklearn_function_is_suspicious_its_estimators_are_not(tmp_path: Path) -> None:
    p = tmp_path / "m.skops"
    p.write_bytes(_skops(_function_transformer("sklearn.metrics", "accuracy_score"), _estimator()))
    report = analyze_model(p)
    assert report.safety.verdict == "suspicious"
    assert "sklearn.metrics.accuracy_score" in str(report.safety.model_dump())
    assert "LogisticRegression" not in str([f.details for f in report.safety.findings])


def test_a_zip_with_a_schema_json_among_other_files_is_no_skops_model(tmp_path: Path) -> None:
    p = tmp_path / "data.zip"
    p.write_bytes(_zip({"schema.json": b"{}", "readme.txt": b"hello"}))
    from assay.models.formats import model_archive_kind

    assert model_archive_kind(p) is None


# -- Git LFS pointers (ModelAudit's tests/utils/test_lfs.py) -------------------------------

_LFS = (b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin", "model.onnx", "m.gguf"])
def test_git_lfs_pointer_is_named_as_such(tmp_path: Path, name: str) -> None:
    # A repository cloned without LFS: model.safetensors read as a safetensors header
    # 'length 2336927755350992246 exceeds 104857600 bytes'; pytorch_model.bin as 'not a
    # pickle'; scan listed them as unknown files.
    from assay.errors import UnsupportedFormat
    from assay.sniff import sniff_path
    from test_containers import _scan

    p = tmp_path / name
    p.write_bytes(_LFS)
    assert sniff_path(p).format == "git-lfs-pointer"
    with pytest.raises(UnsupportedFormat, match=r"a Git LFS pointer, not the model \(oid sha256:4d7a2146.*"
                                                 r"size 12345 bytes\).*git lfs pull"):
        open_model(p)
    recs, _ = _scan([p])
    assert [r.format for r in recs if r.path == str(p)] == ["git-lfs-pointer"]
    # the same text inside a larger file is not a pointer
    p.write_bytes(_LFS + b"x" * 2000)
    assert sniff_path(p).format != "git-lfs-pointer"
