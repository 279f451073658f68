"""Keras models (``.keras`` zips, legacy ``.h5``) judged without TensorFlow or Keras.

What runs when Keras loads a model is named in its configuration (JSON), not in a
pickle: a ``Lambda`` layer carries marshalled Python bytecode (Keras 2 ``.h5``:
``"function": ["<base64 marshal>", ...]``; Keras 3: ``{"class_name": "__lambda__",
"config": {"code": ...}}``) that runs at load or first call, and Keras 3 resolves
``{"module": M, "class_name": "function", "config": F}`` to the function ``M.F``.
Each of these is a finding naming the layer; modules outside Keras/TensorFlow are
judged by the pickle policy (``os.system`` dangerous, unknown suspicious).

``.keras`` zips hold ``config.json``, ``metadata.json`` and ``model.weights.h5``;
``.h5`` files hold the config as the root attribute ``model_config``. The weights of
an ``.h5`` are listed as tensors (h5py reads the layout; data stays in the file).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import DecodeError, InputError, UnsafeInput
from ..pickle_policy import classify_global
from ..pickles import PickleFinding, PickleReport
from . import MAX_CONFIG_BYTES, ModelFile, TensorInfo, tensor_nbytes

__all__ = ["is_keras_zip", "read_h5", "read_keras_zip", "scan_keras_bytes", "scan_keras_config"]

_KERAS_ROOTS = ("keras", "tf_keras", "tensorflow", "tf")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.>][A-Za-z_][A-Za-z0-9_]*)*")
MAX_CONFIG_NODES = 1_000_000


def _nodes(obj: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    stack: list[tuple[str, Any]] = [(path, obj)]
    seen = 0
    while stack:
        where, node = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            return
        if isinstance(node, dict):
            yield where, node
            for k, v in node.items():
                stack.append((f"{where}/{k}", v))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append((f"{where}/{i}", v))


def _layer_name(node: dict[str, Any]) -> str:
    cfg = node.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name)[:100] if name is not None else "?"


def scan_keras_config(config: Any, where: str, _depth: int = 0) -> PickleReport:
    """Findings for everything in a Keras model config that runs code at load."""
    report = PickleReport(where=where)
    for path, node in _nodes(config):
        cls = node.get("class_name")
        if cls == "Lambda":
            name = _layer_name(node)
            cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
            fn = cfg.get("function")
            ftype = cfg.get("function_type")
            if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
                report.add(PickleFinding(
                    "dangerous", f"Lambda({name})", "config", 0,
                    f"Lambda layer {name!r} holds marshalled Python bytecode (runs when "
                    "the model is loaded or called)",
                ))
            elif isinstance(fn, list | tuple) or ftype == "lambda":
                report.add(PickleFinding(
                    "dangerous", f"Lambda({name})", "config", 0,
                    f"Lambda layer {name!r} holds marshalled Python bytecode (runs when "
                    "the model is loaded or called)",
                ))
            elif isinstance(fn, str) and not _DOTTED.fullmatch(fn):
                report.add(PickleFinding(
                    "suspicious", f"Lambda({name})", "config", 0,
                    f"Lambda layer {name!r} holds Python source text as its function "
                    f"({fn[:120]!r}): Keras does not load source text, but the layer names code",
                ))
            elif isinstance(fn, str):
                module = cfg.get("module") or cfg.get("function_module") or "builtins"
                verdict, reason = classify_global(str(module), fn)
                report.add(PickleFinding(
                    "dangerous" if verdict == "dangerous" else "suspicious",
                    f"{module}.{fn}", "config", 0,
                    f"Lambda layer {name!r} calls {module}.{fn}: {reason}",
                ))
            else:
                report.add(PickleFinding(
                    "suspicious", f"Lambda({name})", "config", 0,
                    f"Lambda layer {name!r} with a function assay cannot read",
                ))
            continue
        if cls == "TorchModuleWrapper":
            _torch_module_wrapper(node, path, where, report, _depth)
            continue
        if cls == "TFSMLayer":
            _tfsm_layer(node, path, report)
            continue
        module = node.get("module")
        if not isinstance(module, str) or not isinstance(cls, str):
            continue
        if cls == "__lambda__":
            continue  # judged with its Lambda layer; a bare one is below
        if module.split(".")[0] in _KERAS_ROOTS and cls != "function":
            continue
        target = node.get("config") if cls == "function" else cls
        if not isinstance(target, str):
            continue
        if cls == "function" and module.split(".")[0] in _KERAS_ROOTS + ("builtins",):
            verdict, reason = _keras_function(module, target)
        else:
            verdict, reason = classify_global(module, target)
        if verdict == "safe":
            continue
        report.add(PickleFinding(
            "dangerous" if verdict == "dangerous" else "suspicious",
            f"{module}.{target}", "config", 0,
            f"config at {path or '/'} names {module}.{target} (imported and called at "
            f"load): {reason}",
        ))
    # A marshalled function anywhere outside a Lambda (custom objects) runs the same way.
    for path, node in _nodes(config):
        if node.get("class_name") == "__lambda__" and "/config/function" not in path:
            report.add(PickleFinding(
                "dangerous", "__lambda__", "config", 0,
                f"config at {path or '/'} holds marshalled Python bytecode",
            ))
    return report


# Keras resolves {"module": "keras...", "class_name": "function", "config": NAME} to
# its own public function of that name. Those of its modelling modules only compute
# (a loss, an activation: every compiled model names its loss so); these names do
# more: they read or write files, fetch a URL, load another model or switch safe
# mode off (Keras 3.15 refuses them as NON_MODELING_APIS, older versions call them:
# CVE-2025-8747 downloads through get_file, CVE-2025-9906 turns safe mode off).
_KERAS_NON_MODELLING = frozenset({
    "audio_dataset_from_directory", "clear_session", "deserialize_keras_object",
    "enable_unsafe_deserialization", "get_file", "image_dataset_from_directory",
    "load_img", "load_model", "load_weights", "model_from_config", "model_from_json",
    "model_from_yaml", "register_keras_serializable", "save_img", "save_model",
    "save_weights", "serialize_keras_object", "text_dataset_from_directory",
})
_KERAS_MODELLING = frozenset({
    "activations", "constraints", "initializers", "losses", "metrics", "optimizers",
    "regularizers", "ops", "random", "layers",
})
_TF_MODELLING = frozenset({"math", "nn", "linalg", "signal", "bitwise", "dtypes"})
# Where TensorFlow's math and activation functions live (Keras 3 names a function by
# its __module__: tf.nn.gelu is tensorflow.python.ops.nn_ops.gelu).
_TF_OP_MODULES = frozenset({
    "math_ops", "nn_ops", "nn_impl", "array_ops", "gen_math_ops", "gen_nn_ops",
    "gen_array_ops", "special_math_ops", "clip_ops", "linalg_ops", "gen_linalg_ops",
})


def _keras_function(module: str, name: str) -> tuple[str, str]:
    """The verdict on a function a Keras config names by module and name."""
    short = name.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
    if short in _KERAS_NON_MODELLING:
        return "dangerous", (f"{short} is no modelling function: it reads or writes files, "
                             "fetches URLs, loads models or turns safe mode off (Keras 3.15 "
                             "refuses it, older versions call it)")
    parts = module.split(".")
    if parts[0] == "builtins":
        # Keras looks a 'builtins' function up among its own activations, losses,
        # metrics...; only Keras < 3.9 went on to Python's builtins module itself.
        import builtins

        if hasattr(builtins, name):
            return classify_global("builtins", name)
        return "safe", ""
    if parts[0] in ("keras", "tf_keras"):
        inner = parts[2:] if len(parts) > 1 and parts[1] == "src" else parts[1:]
        if not inner or inner[0] in _KERAS_MODELLING:
            return "safe", ""
        return "suspicious", f"a Keras function outside its modelling modules ({module})"
    if (len(parts) > 1 and parts[1] in _TF_MODELLING) or parts[-1] in _TF_OP_MODULES:
        return "safe", ""
    return classify_global(module, name)


def _torch_module_wrapper(node: dict[str, Any], path: str, where: str, report: PickleReport,
                          depth: int) -> None:
    """Keras' TorchModuleWrapper keeps a torch.save'd module as base64 text and
    deserializes it with torch.load(weights_only=False): a pickle, run at load by
    Keras 3.11.0-3.11.2 always (CVE-2025-49655), later ones outside safe mode."""
    import base64
    import binascii

    from ..pickles import scan_embedded_bytes

    name = _layer_name(node)
    cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
    blob = cfg.get("module")
    if blob is None:
        return  # a wrapper without a saved module loads nothing
    label = f"TorchModuleWrapper({name})"
    data = b""
    if isinstance(blob, str):
        try:
            data = base64.b64decode(blob.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            data = b""
    if not data:
        report.add(PickleFinding(
            "suspicious", label, "config", 0,
            f"TorchModuleWrapper layer {name!r} at {path or '/'} holds a module assay cannot "
            "read as torch.save output (Keras passes it to torch.load, which unpickles it)",
        ))
        return
    inner = scan_embedded_bytes(data, where=f"{where}#{label}", depth=depth + 1)
    for r in inner:
        for f in r.findings:
            if f.severity != "safe":
                report.add(PickleFinding(
                    f.severity, f.global_name, f.opcode, f.offset,
                    f"TorchModuleWrapper layer {name!r} (torch.load at load): {f.reason}",
                ))
    if all(r.verdict == "safe" for r in inner):
        report.globals.extend(g for r in inner for g in r.globals)


def _tfsm_layer(node: dict[str, Any], path: str, report: PickleReport) -> None:
    """Keras' TFSMLayer loads the TensorFlow SavedModel at its filepath when the model
    is deserialized (Keras refuses it in safe mode only since 3.14): the graph run is
    not in this file, and a remote path is fetched."""
    name = _layer_name(node)
    cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
    target = str(cfg.get("filepath", ""))[:300]
    remote = "://" in target
    report.add(PickleFinding(
        "dangerous" if remote else "suspicious", f"TFSMLayer({name})", "config", 0,
        f"TFSMLayer layer {name!r} at {path or '/'} loads and runs the SavedModel at "
        f"{target!r} when the model is loaded" + (" (fetched from the network)" if remote else
                                                  " (outside this file)"),
    ))


def is_keras_zip(names: list[str]) -> bool:
    """A Keras 3 / tf_keras ``.keras`` archive: config.json next to its weights or
    metadata (names of the zip's members)."""
    s = set(names)
    return "config.json" in s and bool(s & {"model.weights.h5", "metadata.json", "model.weights.npz"})


def _load_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(where, f"Keras config is not valid JSON: {str(exc)[:200]}") from exc


def scan_keras_bytes(data: bytes, *, where: str) -> list[PickleFinding]:
    """Findings for a ``.keras`` archive held in memory (e.g. inside a pickle)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            if "config.json" not in names:
                return [PickleFinding("suspicious", "", "zip", 0,
                                      "embedded archive has no config.json (not a Keras model)")]
            info = z.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return [PickleFinding("suspicious", "", "zip", 0, "embedded Keras config too large")]
            config = _load_json(z.read("config.json"), where)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        return [PickleFinding("suspicious", "", "zip", 0,
                              f"embedded model is not a readable Keras archive: {str(exc)[:100]}")]
    except InputError as exc:
        return [PickleFinding("suspicious", "", "zip", 0, exc.reason)]
    return scan_keras_config(config, where).findings


def refuse_if_dangerous(path: Path, reports: list[PickleReport]) -> None:
    """Raise UnsafeInput (with every report) when any of them is dangerous."""
    bad = [r for r in reports if r.verdict == "dangerous"]
    if bad:
        shown = "; ".join(dict.fromkeys(
            f.global_name or f.reason for r in bad for f in r.findings if f.severity == "dangerous"))
        raise UnsafeInput(path, f"Keras model runs code at load, not opened: {shown}", details=bad)


def _refuse(path: Path, report: PickleReport) -> None:
    refuse_if_dangerous(path, [report])


def scan_keras_member(f: Any, entry: Any, where: str, depth: int = 0) -> PickleReport:
    """The config.json member of a ``.keras`` archive judged (``entry``: a ZipEntry;
    ``depth``: how deep in nested archives and embedded bytes it was found)."""
    from ..pickles import read_zip_entry

    label = f"{where}:config.json"
    try:
        config = _load_json(read_zip_entry(f, entry, where, MAX_CONFIG_BYTES), label)
    except InputError as exc:
        report = PickleReport(where=label, error=exc.reason)
        report.add(PickleFinding("suspicious", "", "config", 0, f"Keras config not read: {exc.reason}"))
        return report
    return scan_keras_config(config, label, depth)


def read_keras_zip(path: Path, pickles: list[PickleReport]) -> ModelFile:
    """A ``.keras`` archive; ``pickles`` is its scan (config.json judged, any pickle
    member scanned), already checked for danger by the caller."""
    metadata: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "metadata.json" in names and z.getinfo("metadata.json").file_size < 1 << 20:
                meta = _load_json(z.read("metadata.json"), str(path))
                if isinstance(meta, dict):
                    metadata = {f"keras_{k}": v for k, v in meta.items() if isinstance(v, str | int)}
            if z.getinfo("config.json").file_size < MAX_CONFIG_BYTES:
                config = _load_json(z.read("config.json"), str(path))
                if isinstance(config, dict) and isinstance(config.get("class_name"), str):
                    metadata["keras_class"] = config["class_name"][:100]
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError) as exc:
        raise DecodeError(path, f"unreadable Keras archive: {str(exc)[:200]}") from exc
    return ModelFile(path=path, format="keras", metadata=metadata, pickles=pickles)


# A corrupt HDF5 file can hang or crash libhdf5 (see _h5probe): it is read in a child
# process given this long and this much address space.
H5_TIMEOUT_S = 60.0
H5_MEMORY_BYTES = 4 * 1024**3


def probe_h5(path: Path) -> dict[str, Any]:
    """The attributes and datasets of an HDF5 file, read by h5py in a child process
    killed after H5_TIMEOUT_S; DecodeError naming the file when it cannot be read."""
    import subprocess
    import sys

    script = Path(__file__).with_name("_h5probe.py")
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(path), str(MAX_CONFIG_BYTES), str(H5_MEMORY_BYTES)],
            capture_output=True, timeout=H5_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        raise DecodeError(path, f"unreadable HDF5 file: the HDF5 library did not finish reading "
                          f"it in {H5_TIMEOUT_S:g} s (corrupt structure)") from None
    except OSError as exc:
        raise InputError(path, f"cannot start the HDF5 reader: {exc.strerror or exc}") from exc
    try:
        result = json.loads(done.stdout)
    except ValueError:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        raise DecodeError(path, f"unreadable HDF5 file: the HDF5 library failed on it ({how})") from None
    if not isinstance(result, dict) or "error" in result:
        err = str(result.get("error") if isinstance(result, dict) else result)
        raise DecodeError(path, f"unreadable HDF5 file: {err[:200]}")
    return result


def scan_h5(path: Path, probed: dict[str, Any] | None = None) -> list[PickleReport]:
    """The ``model_config`` of a Keras ``.h5`` judged (empty for other HDF5 files)."""
    where = str(path)
    try:
        probed = probed or probe_h5(path)
    except InputError as exc:
        report = PickleReport(where=where, error=exc.reason)
        report.add(PickleFinding("suspicious", "", "config", 0, report.error))
        return [report]
    raw = probed["attrs"].get("model_config")
    if not isinstance(raw, str):
        return []
    label = f"{where}:model_config"
    try:
        if len(raw) > MAX_CONFIG_BYTES:
            raise DecodeError(path, "model_config too large")
        return [scan_keras_config(_load_json(raw.encode("utf-8"), label), label)]
    except InputError as exc:
        report = PickleReport(where=label, error=exc.reason)
        report.add(PickleFinding("suspicious", "", "config", 0, f"Keras config not read: {exc.reason}"))
        return [report]


_H5_DTYPES = {"<f4": "F32", "<f8": "F64", "<f2": "F16", "<i8": "I64", "<i4": "I32",
              "<i2": "I16", "|i1": "I8", "|u1": "U8", "|b1": "BOOL"}


def read_h5(path: Path) -> ModelFile:
    """A Keras ``.h5`` (HDF5) model: its ``model_config`` judged, its weights listed."""
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    probed = probe_h5(path)
    metadata = {f"keras_{k}": v[:100] for k, v in probed["attrs"].items() if k != "model_config"}
    tensors: dict[str, TensorInfo] = {}
    for name, dtype, shape, offset, nbytes, packed in probed["datasets"]:
        dt = _H5_DTYPES.get(dtype)
        if dt is None or offset is None or packed:
            continue  # only contiguous, uncompressed datasets map onto the file
        shape = tuple(shape)
        if nbytes != tensor_nbytes(dt, shape) or offset + nbytes > size:
            raise DecodeError(path, f"dataset {name[:200]!r}: {dt} of shape {list(shape)} does not "
                              f"fit its {nbytes} stored bytes at offset {offset} of the "
                              f"{size}-byte file")
        tensors[name] = TensorInfo(name=name, dtype=dt, shape=shape, offset=offset,
                                   nbytes=nbytes, source=where)
    reports = scan_h5(path, probed)
    for r in reports:
        _refuse(path, r)
    return ModelFile(path=path, format="keras-h5" if reports else "hdf5", tensors=tensors,
                     metadata=metadata, pickles=reports)
