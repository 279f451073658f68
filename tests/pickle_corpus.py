"""A corpus of model files for measuring the pickle scanner: malicious samples by
gadget class and benign samples made by the real libraries (numpy) or by writers that
produce the same bytes as torch/Keras (no torch or TensorFlow here).

Every malicious sample would, if loaded, create its CANARY file (``touch``, ``open``,
``shutil.copyfile``...) or reach the network; nothing here loads any of them. Payloads
are written with ``pickle.dumps`` of stand-in objects whose ``__reduce__`` names the
callable, or opcode by opcode. Used by tests/test_pickle_corpus.py and
bench/bench_pickle_scan.py::

    samples = corpus(tmp_dir / "CANARY")     # [Sample(name, gadget, expect, suffix, data)]
    paths = write_corpus(samples, tmp_dir)
"""

from __future__ import annotations

import collections
import copyreg
import datetime
import decimal
import fractions
import io
import json
import marshal
import os
import pickle
import struct
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class Sample:
    name: str
    gadget: str  # gadget class (malicious) or kind of benign content
    expect: str  # "dangerous" | "safe"
    suffix: str
    data: bytes
    runs_code: bool = True  # False for network-only gadgets (no file, a connection)


class Payload:
    """pickle.dumps(Payload(f, args)) writes 'call f(*args)'; it is never loaded."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _s(x: str) -> bytes:
    b = x.encode()
    return (b"\x8c" + bytes([len(b)]) + b) if len(b) < 256 else (b"X" + struct.pack("<I", len(b)) + b)


def call4(module: str, name: str, *args: str) -> bytes:
    """Protocol 4: module.name(*args) with STACK_GLOBAL (dotted names walk attributes)."""
    return b"\x80\x04" + _s(module) + _s(name) + b"\x93(" + b"".join(_s(a) for a in args) + b"tR."


def call0(module: str, name: str, *args: str) -> bytes:
    """Protocol 0: GLOBAL module name, then REDUCE on a tuple of string arguments."""
    quoted = b"".join(b"V" + a.encode("raw-unicode-escape") + b"\n" for a in args)
    return f"c{module}\n{name}\n(".encode() + quoted + b"tR."


def getattr_chain(module: str, attr: str, *args: str) -> bytes:
    """builtins.getattr(importlib.import_module(module), attr)(*args), protocol 2."""
    return (
        b"\x80\x02cbuiltins\ngetattr\n(cimportlib\nimport_module\n(" + _s(module) + b"tR"
        + _s(attr) + b"tR(" + b"".join(_s(a) for a in args) + b"tR."
    )


def frame_hidden(cmd: str) -> bytes:
    """Protocol 4: a FRAME that ends one byte into a BINBYTES. The C unpickler reads
    the bytes object (harmless); a reader that honours frames resumes at the frame's
    end and reads os.system(cmd) as opcodes."""
    hidden = _s("os") + _s("system") + b"\x93" + _s(cmd) + b"\x85R."
    payload = b"N" + hidden
    head = b"B" + struct.pack("<I", len(payload)) + payload[:1]
    return b"\x80\x04\x95" + struct.pack("<Q", len(head)) + head + payload[1:] + b"."


def _zip(members: dict[str, bytes], *, flags: int = 0, method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.flag_bits |= flags
            z.writestr(info, data)
    return buf.getvalue()


def _npy_object(obj: Any) -> bytes:
    arr = np.empty(1, dtype=object)
    arr[0] = obj
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _code_bytes(src: str) -> bytes:
    return marshal.dumps(compile(src, "<corpus>", "exec"))


def malicious(canary: Path) -> list[Sample]:
    c = str(canary)
    touch = f"touch {c}"
    py = f"open({c!r}, 'w').close()"
    out: list[Sample] = []

    def add(name: str, gadget: str, data: bytes, suffix: str = ".pkl", runs_code: bool = True) -> None:
        out.append(Sample(name, gadget, "dangerous", suffix, data, runs_code))

    # os / posix / subprocess / pty, each in several encodings
    for p in range(6):
        add(f"os.system protocol {p}", "os", pickle.dumps(Payload(os.system, (touch,)), protocol=p))
    add("posix.system protocol 0", "os", call0("posix", "system", touch))
    add("os.popen", "os", call4("os", "popen", touch))
    add("os.execvp", "os", call4("os", "execvp", "touch", c))
    add("subprocess.Popen", "subprocess", pickle.dumps(Payload(__import__("subprocess").Popen, (["touch", c],)), 2))
    add("subprocess.check_call protocol 0", "subprocess", call0("subprocess", "check_call", touch))
    add("subprocess.getoutput", "subprocess", call4("subprocess", "getoutput", touch))
    add("pty.spawn", "pty", call4("pty", "spawn", touch))
    # eval / exec / compile
    add("builtins.eval", "eval", pickle.dumps(Payload(eval, (py,)), 2))
    add("builtins.exec protocol 4", "exec", pickle.dumps(Payload(exec, (py,)), 4))
    add("__builtin__.eval protocol 0", "eval", call0("__builtin__", "eval", py))
    add("builtins.exec, malformed tail", "exec",
        call0("builtins", "exec", py)[:-1] + b"X\xff\xff\xff\x7fabc")
    # getattr chains, importlib, runpy
    add("getattr(import_module('os'), 'system')", "getattr", getattr_chain("os", "system", touch))
    add("importlib.import_module then call", "importlib", call4("importlib", "import_module", "os"))
    add("builtins.__import__", "getattr", call4("builtins", "__import__", "os"))
    add("pathlib.os.system", "getattr", call4("pathlib", "os.system", touch))
    add("shutil.os.system", "getattr", call4("shutil", "os.system", touch))
    add("tempfile._os.system", "getattr", call4("tempfile", "_os.system", touch))
    add("asyncio.subprocess.subprocess.Popen", "getattr",
        call4("asyncio", "subprocess.subprocess.getoutput", touch))
    add("collections.OrderedDict.__init__.__globals__", "getattr",
        call4("collections", "OrderedDict.__init__.__globals__"))
    add("runpy.run_path", "runpy", call4("runpy", "run_path", c + ".py"))
    add("runpy._run_code", "runpy", call4("runpy", "_run_code", py, "{}"))
    # code objects and marshal
    code = _code_bytes(py)
    add("marshal.loads", "marshal",
        b"\x80\x02cmarshal\nloads\n(B" + struct.pack("<I", len(code)) + code + b"tR.")
    add("types.FunctionType(code)", "code objects", call4("types", "FunctionType", "x", "y"))
    add("code.InteractiveInterpreter", "code objects", call4("code", "InteractiveInterpreter"))
    # files
    add("shutil.copyfile", "shutil", call4("shutil", "copyfile", __file__, c))
    add("builtins.open for write", "files", call4("builtins", "open", c, "w"))
    add("ctypes.CDLL", "ctypes", call4("ctypes", "CDLL", "libc.so.6"))
    add("webbrowser.open", "webbrowser", call4("webbrowser", "open", f"file://{c}"), runs_code=False)
    # network
    add("socket.create_connection", "socket", call4("socket", "create_connection", "127.0.0.1"),
        runs_code=False)
    add("ssl.get_server_certificate", "ssl", call4("ssl", "get_server_certificate", "127.0.0.1"),
        runs_code=False)
    for mod, cls in (("smtplib", "SMTP"), ("ftplib", "FTP"), ("poplib", "POP3"), ("nntplib", "NNTP"),
                     ("urllib.request", "urlopen"), ("http.client", "HTTPConnection")):
        add(f"{mod}.{cls}", "network libs", call4(mod, cls, "127.0.0.1"), runs_code=False)
    # interpreters and scanners
    add("_xxsubinterpreters.run_string", "interpreters", call4("_xxsubinterpreters", "run_string", "0", py))
    add("_interpreters.exec", "interpreters", call4("_interpreters", "exec", "0", py))
    add("picklescan.scanner._safe_globals.clear", "scanner tampering",
        call4("picklescan.scanner", "_safe_globals.clear"))
    add("fickling.hook.remove_hook", "scanner tampering", call4("fickling.hook", "remove_hook"))
    add("modelscan.settings", "scanner tampering", call4("modelscan.settings", "DEFAULT_SETTINGS.clear"))
    # hidden in the stream
    add("os.system hidden past a FRAME", "frame hiding", frame_hidden(touch))
    add("nested pickle in BINBYTES via pickle.loads", "nested",
        pickle.dumps(Payload(pickle.loads, (pickle.dumps(Payload(os.system, (touch,)), 2),)), 2))
    # numpy
    add(".npy object array: os.system", "npy", _npy_object(Payload(os.system, (touch,))), ".npy")
    add(".npy object array: builtins.eval", "npy", _npy_object(Payload(eval, (py,))), ".npy")
    add(".npy object array: ssl.get_server_certificate", "npy",
        _npy_object(Payload(__import__("ssl").get_server_certificate, (("127.0.0.1", 9),))), ".npy",
        runs_code=False)
    add(".npz object member", "npz", _npz(w=np.arange(3), obj=np.array([Payload(os.system, (touch,))],
                                                                        dtype=object)), ".npz")
    # zip members anywhere, any flag bits
    evil = pickle.dumps(Payload(os.system, (touch,)), 2)
    add("zip member model/config.pkl", "zip members", _zip({"model/config.pkl": evil}), ".zip")
    add("zip member named .txt, deflated", "zip members",
        _zip({"notes/readme.txt": evil}, method=zipfile.ZIP_DEFLATED), ".zip")
    add("zip member protocol 0 with UTF-8 and data-descriptor flags", "zip members",
        _zip({"a/b.bin": call0("os", "system", touch)}, flags=0x808), ".zip")
    add("zip member flagged encrypted (stored plain)", "zip members",
        _zip({"archive/data.pkl": evil}, flags=0x1), ".pt")
    add("zip in zip", "zip members", _zip({"inner.zip": _zip({"x/data.pkl": evil})}), ".zip")
    # Keras
    add("Keras Lambda layer (.keras)", "keras", keras_zip(lambda_layer=True), ".keras")
    add("Keras config names os.system", "keras", keras_zip(function=("os", "system")), ".keras")
    add("tf_keras pickle loading a Lambda archive", "keras",
        keras_pickle(keras_zip(lambda_layer=True)), ".pkl")
    return out


# -- benign ------------------------------------------------------------------------------


class _Plain:
    pass


def _stdlib_dumps(value: Any, protocol: int) -> bytes:
    """pickle.dumps as plain Python writes it: reducers that imported libraries put into
    copyreg's global table (distributed installs tblib's for every exception class) are left
    out, so a sample reads the same whatever the test session imported before."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol)
    pickler.dispatch_table = {
        cls: fn for cls, fn in copyreg.dispatch_table.items()
        if (getattr(fn, "__module__", None) or "").partition(".")[0] in sys.stdlib_module_names
    }
    pickler.dump(value)
    return buf.getvalue()


def benign() -> list[Sample]:
    import __future__

    out: list[Sample] = []
    values: list[tuple[str, Any]] = [
        ("set", {1, 2, 3}), ("frozenset", frozenset({"a"})), ("dict/list/tuple", {"a": [1, (2, 3.5)]}),
        ("bytes", b"\x00\x01" * 10), ("bytearray", bytearray(b"xyz")), ("complex", 1 + 2j),
        ("range", range(3)), ("slice", slice(1, 9, 2)), ("None/bool", [None, True, False]),
        ("big int", 2**200), ("float", [1.5, float("inf")]), ("str", "ünïcode ✓" * 30),
        ("datetime", datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)),
        ("date/time/timedelta", [datetime.date(2020, 1, 1), datetime.time(3, 4), datetime.timedelta(5)]),
        ("decimal.Decimal", decimal.Decimal("1.25")), ("fractions.Fraction", fractions.Fraction(1, 3)),
        ("collections.deque", collections.deque([1, 2])), ("collections.Counter", collections.Counter("aab")),
        ("collections.OrderedDict", collections.OrderedDict(a=1)),
        ("collections.defaultdict", collections.defaultdict(list, {"a": [1]})),
        ("uuid.UUID", uuid.UUID(int=7)), ("builtins.len", len), ("exception", ValueError("x")),
        ("__future__ feature", __future__.annotations),
    ]
    for label, value in values:
        for p in range(6):
            out.append(Sample(f"{label} protocol {p}", "stdlib values", "safe", ".pkl", _stdlib_dumps(value, p)))
    # numpy, written by the real numpy
    arrays = {"f32": np.arange(12, dtype=np.float32).reshape(3, 4), "i64": np.arange(5),
              "f16": np.ones(4, np.float16), "bool": np.array([True, False]),
              "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3))}
    for label, arr in arrays.items():
        buf = io.BytesIO()
        np.save(buf, arr)
        out.append(Sample(f"np.save {label}", "numpy", "safe", ".npy", buf.getvalue()))
        for p in (2, 3, 4, 5):
            out.append(Sample(f"pickled ndarray {label} protocol {p}", "numpy", "safe", ".pkl",
                              pickle.dumps(arr, p)))
    out.append(Sample("np.savez", "numpy", "safe", ".npz", _npz(**arrays)))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out.append(Sample("np.savez_compressed", "numpy", "safe", ".npz", buf.getvalue()))
    out.append(Sample("numpy scalars", "numpy", "safe", ".pkl",
                      pickle.dumps([np.float64(1.5), np.int32(3), np.dtype("f4")], 4)))
    out.append(Sample(".npy object array of stdlib values", "numpy", "safe", ".npy",
                      _npy_object({"a": [1, 2], "when": datetime.date(2020, 1, 1)})))
    # torch layouts, written as torch writes them (tests/data holds files made by torch)
    out.append(Sample("legacy torch.save of a whole nn.Module", "torch", "safe", ".pt",
                      legacy_torch_module()))
    out.append(Sample("legacy torch.save of a state dict", "torch", "safe", ".pt",
                      legacy_torch_state_dict()))
    here = Path(__file__).parent / "data"
    for name in ("tiny_state_dict_zip.pt", "tiny_state_dict_legacy.pt", "tiny_module_zip.pt"):
        out.append(Sample(f"{name} (made by torch)", "torch", "safe", ".pt", (here / name).read_bytes()))
    out.append(Sample("Keras model without Lambda (.keras)", "keras", "safe", ".keras", keras_zip()))
    out.append(Sample("tf_keras pickle of a plain model", "keras", "safe", ".pkl", keras_pickle(keras_zip())))
    return out


def corpus(canary: Path) -> list[Sample]:
    return malicious(canary) + benign()


def write_corpus(samples: list[Sample], folder: Path) -> list[tuple[Sample, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(samples):
        p = folder / f"{i:03d}_{s.expect}{s.suffix}"
        p.write_bytes(s.data)
        out.append((s, p))
    return out


# -- torch and Keras writers ------------------------------------------------------------


def _legacy_head() -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(_LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps(sys_info, 2))


def _tensor_ops(key: str, numel: int, shape: tuple[int, ...]) -> bytes:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    ints = lambda xs: b"(" + b"".join(b"K" + bytes([x]) for x in xs) + b"t"  # noqa: E731
    return (
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"(" + _s("storage") + b"ctorch\nFloatStorage\n" + _s(key) + _s("cpu")
        + b"K" + bytes([numel]) + b"NtQ"  # ('storage', FloatStorage, key, 'cpu', numel, None)
        + b"K\x00" + ints(shape) + ints(tuple(reversed(strides)))
        + b"\x89ccollections\nOrderedDict\n)RtR"
    )


def legacy_torch_module() -> bytes:
    """torch.save(nn.Sequential(nn.Linear(3, 2)), f, _use_new_zipfile_serialization=False)
    as torch lays it out: module classes as persistent ids ('module', cls, file, source)."""

    def module_cls(mod: str, cls: str) -> bytes:
        return (b"(" + _s("module") + f"c{mod}\n{cls}\n".encode() + _s(f"/site/{cls}.py")
                + _s(f"class {cls}(Module): ...") + b"tQ")

    linear_state = (
        b"}(" + _s("training") + b"\x88" + _s("_parameters")
        + b"ccollections\nOrderedDict\n)R(" + _s("weight") + _tensor_ops("0", 6, (2, 3))
        + _s("bias") + _tensor_ops("1", 2, (2,)) + b"u"
        + _s("_buffers") + b"ccollections\nOrderedDict\n)R"
        + _s("_modules") + b"ccollections\nOrderedDict\n)R"
        + _s("in_features") + b"K\x03" + _s("out_features") + b"K\x02" + b"u"
    )
    linear = module_cls("torch.nn.modules.linear", "Linear") + b")\x81" + linear_state + b"b"
    seq = (
        module_cls("torch.nn.modules.container", "Sequential") + b")\x81"
        + b"}(" + _s("training") + b"\x88" + _s("_parameters") + b"ccollections\nOrderedDict\n)R"
        + _s("_buffers") + b"ccollections\nOrderedDict\n)R"
        + _s("_modules") + b"ccollections\nOrderedDict\n)R(" + _s("0") + linear + b"u" + b"ub"
    )
    data = b"\x80\x02" + seq + b"."
    storages = (struct.pack("<q", 6) + np.arange(6, dtype="<f4").tobytes()
                + struct.pack("<q", 2) + np.array([-1, 1], dtype="<f4").tobytes())
    return _legacy_head() + data + pickle.dumps(["0", "1"], 2) + storages


def legacy_torch_state_dict() -> bytes:
    data = (b"\x80\x02ccollections\nOrderedDict\n)R(" + _s("w") + _tensor_ops("0", 4, (2, 2))
            + b"u.")
    return (_legacy_head() + data + pickle.dumps(["0"], 2) + struct.pack("<q", 4)
            + np.arange(4, dtype="<f4").tobytes())


def keras_zip(*, lambda_layer: bool = False, function: tuple[str, str] | None = None,
              extra_layers: list[dict[str, Any]] | None = None,
              loss: tuple[str, str] | None = None) -> bytes:
    """A Keras 3 ``.keras`` archive as keras.saving writes it (config.json, metadata.json,
    model.weights.h5 placeholder). With ``lambda_layer`` a Lambda layer carries
    marshalled bytecode (of a harmless function); ``function`` names an activation
    by module and name as Keras 3 serialises functions; ``extra_layers`` are appended
    as given; ``loss`` is the compiled model's loss function (module, name) as
    compile_config holds it."""
    layers: list[dict[str, Any]] = [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"name": "input"},
         "registered_name": None},
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"name": "dense", "units": 2,
                    "activation": ({"module": function[0], "class_name": "function",
                                    "config": function[1], "registered_name": "function"}
                                   if function else "relu")},
         "registered_name": None},
    ]
    if lambda_layer:
        code = marshal.dumps(compile("lambda x: x", "<corpus>", "eval")).hex()
        layers.append({"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                       "config": {"name": "evil_lambda",
                                  "function": {"class_name": "__lambda__",
                                               "config": {"code": code, "defaults": None,
                                                          "closure": None}}}})
    layers += extra_layers or []
    config: dict[str, Any] = {"module": "keras", "class_name": "Sequential", "registered_name": None,
                              "config": {"name": "sequential", "layers": layers}}
    if loss:
        config["compile_config"] = {
            "optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                          "config": {"name": "adam", "learning_rate": 0.001}, "registered_name": None},
            "loss": {"module": loss[0], "class_name": "function", "config": loss[1],
                     "registered_name": "function"},
            "metrics": ["accuracy"], "loss_weights": None, "run_eagerly": False}
    meta = {"keras_version": "3.6.0", "date_saved": "2024-01-01@00:00:00"}
    return _zip({"metadata.json": json.dumps(meta).encode(), "config.json": json.dumps(config).encode(),
                 "model.weights.h5": b"\x89HDF\r\n\x1a\n"})


def keras_pickle(archive: bytes) -> bytes:
    """pickle.dumps(model) of a tf_keras model: deserialize_model_from_bytecode(archive)."""
    return (b"\x80\x04" + _s("tf_keras.src.saving.pickle_utils") + _s("deserialize_model_from_bytecode")
            + b"\x93" + b"B" + struct.pack("<I", len(archive)) + archive + b"\x85R.")
