"""Which globals a pickle may name: the allow-list policy of the pickle scanner.

A global is judged by its name only, never imported:

- **safe**: known data builders (tensor/storage rebuilders, numpy reconstruction,
  TorchScript helpers, torch.nn layer classes) and standard-library value types
  (containers, ``datetime``, ``decimal.Decimal``, ``collections.deque``, exceptions,
  pure builtins such as ``len``);
- **dangerous**: anything that can run code, touch files, processes or the network,
  or reach another global (``getattr``, ``importlib``, nested ``pickle.loads``...),
  including through an attribute chain (``pathlib.os.system``), and anything that
  calls into a model scanner (turning the scanner off is an attack);
- **suspicious**: every other global. Unknown is not safe.

Python 2 names (``__builtin__.set``, ``copy_reg._reconstructor``) are judged as the
standard library's own ``_compat_pickle`` tables map them, as an unpickler does.
"""

from __future__ import annotations

import _compat_pickle
import functools
import re
from typing import Literal

Verdict = Literal["safe", "suspicious", "dangerous"]

__all__ = ["KERAS_DESERIALISERS", "Verdict", "classify_global"]

_SAFE_EXACT = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.slice",
        "builtins.range",
        "builtins.complex",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bool",
        "builtins.object",
        "builtins.NoneType",
        "builtins.NotImplemented",
        "builtins.Ellipsis",
        "builtins.ellipsis",
        # pure functions of values: they call nothing the pickle names
        "builtins.len",
        "builtins.abs",
        "builtins.min",
        "builtins.max",
        "builtins.sum",
        "builtins.round",
        "builtins.divmod",
        "builtins.ord",
        "builtins.chr",
        "builtins.bin",
        "builtins.hex",
        "builtins.oct",
        # standard-library value types
        "collections.deque",
        "collections.Counter",
        "collections.ChainMap",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "ipaddress.IPv4Address",
        "ipaddress.IPv6Address",
        "ipaddress.IPv4Network",
        "ipaddress.IPv6Network",
        "ipaddress.IPv4Interface",
        "ipaddress.IPv6Interface",
        "zoneinfo.ZoneInfo",
        "zoneinfo._common._load_timezone_key",
        "enum._EnumDict",
        "array.array",
        "array._array_reconstructor",
        "re._compile",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        # Protocol 2 pickles bytes as _codecs.encode(str, "latin1"): a pure data transform.
        "_codecs.encode",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
        # TorchScript archives (torch.jit.save): list/tensor builders and type tags.
        "torch.jit._pickle.build_intlist",
        "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_complexlist",
        "torch.jit._pickle.build_tensor_from_id",
        "torch.jit._pickle.restore_type_tag",
        # the rest of torch.load(weights_only=True)'s own allow-list: sparse, quantized and
        # wrapper-subclass tensors, and the layout of a sparse tensor (a name lookup)
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch.serialization._get_layout",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        # protocol 5 arrays: frombuffer over an out-of-band or in-band buffer
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "numpy.ma.core._mareconstruct",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        # joblib.dump's array record (shape, order, dtype): its bytes follow in the stream
        # and the scanner reads past them as joblib does (models/joblib_arrays.py)
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
# torch.FloatStorage, torch.BFloat16Storage, torch.Float8_e4m3fnStorage ... and the
# dtype objects (torch.float16, torch.float8_e4m3fn) that _rebuild_tensor_v3 takes.
_SAFE_TORCH_ATTR = re.compile(
    r"torch\.(?:[A-Z][A-Za-z0-9_]*Storage|(?:float|bfloat|int|uint|complex)\d+"
    r"(?:_[a-z0-9]+)?|bool|half|double|long|short|cfloat|chalf|cdouble|float|int"
    # quantized dtypes and schemes, legacy tensor classes (torch.FloatTensor): all in
    # torch.load(weights_only=True)'s allow-list
    r"|q(?:u?int\d+(?:x\d+)?)|per_(?:tensor|channel)_(?:affine|symmetric)"
    r"|per_channel_affine_float_qparams|[A-Z][A-Za-z0-9]*Tensor)"
)
# torch.cuda.FloatTensor, torch.cuda.HalfStorage, torch.sparse.FloatTensor
_SAFE_TORCH_CLASS = re.compile(r"torch\.(?:cuda|sparse)\.[A-Z][A-Za-z0-9]*(?:Tensor|Storage)")

# Module prefixes where every attribute can run code, touch files, processes, the
# network or the interpreter. Matched on the dotted path, so "os" covers "os.path".
_DANGEROUS_MODULES = (
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess",
    "importlib", "runpy", "pickle", "_pickle", "cPickle", "dill", "cloudpickle",
    "joblib", "shelve", "marshal", "code", "codeop", "pty", "tty", "socket", "ssl",
    "shutil", "webbrowser", "sys", "ctypes", "_ctypes", "multiprocessing", "threading",
    "_thread", "signal", "asyncio", "aiohttp", "requests", "urllib", "urllib3", "http",
    "httplib", "ftplib", "smtplib", "telnetlib", "imaplib", "poplib", "xmlrpc",
    "bdb", "pdb", "commands", "cProfile", "profile", "timeit", "trace", "pydoc",
    "pip", "setuptools", "distutils", "ensurepip", "venv", "test", "idlelib", "lib2to3",
    "_osx_support", "_aix_support", "_pyrepl", "uuid", "pkgutil", "zipimport",
    "types", "io", "_io", "tempfile", "glob", "fileinput", "linecache", "inspect",
    "builtins.__import__", "gc", "site", "sysconfig", "platform", "doctest", "logging",
    "torch._dynamo", "torch.fx", "torch._inductor", "torch.jit", "torch.serialization",
    "torch.hub", "torch.load", "torch.save", "torch.storage._load_from_bytes",
    "torch.utils.cpp_extension", "torch.utils._config_module", "torch.utils.data",
    "torch.utils.collect_env", "torch.utils.bottleneck", "torch.distributed",
    "torch._C", "torch.ops", "torch.classes", "torch.package", "torch.library",
    "torch._export", "torch.export", "torch.compile", "torch.from_file",
    "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile",
    "numpy.save", "numpy.savez", "numpy.savetxt", "numpy.lib", "numpy.f2py",
    "numpy.distutils", "numpy.testing", "numpy.ctypeslib", "numpy.memmap",
    "pandas.read_pickle", "pandas.io", "keras", "tensorflow", "tf_keras",
    # network clients, interpreters, scanners (turning a scanner off is an attack)
    "nntplib", "_interpreters", "_xxsubinterpreters", "interpreters",
    "concurrent.interpreters", "_interpchannels", "_xxinterpchannels", "_interpqueues",
    "picklescan", "modelscan", "fickling", "socketserver", "select", "selectors",
    "_socket", "_ssl", "mmap", "fcntl", "resource", "_winapi", "msvcrt", "winreg",
    "_winreg", "_imp", "imp", "_frozen_importlib", "_frozen_importlib_external",
    "_sitebuiltins", "compileall", "py_compile", "zipapp", "dbm", "sqlite3", "_sqlite3",
    "cgi", "cgitb", "wsgiref", "readline", "rlcompleter", "code", "_io", "asyncore",
    "smtpd", "_posixshmem", "_multiprocessing", "ensurepip",
    # run commands (pexpect.run, pipes.Template), call later (atexit.register), run a
    # test discovery's imports (unittest.main), open a browser on import (antigravity)
    "pexpect", "ptyprocess", "pipes", "_signal", "atexit", "unittest", "antigravity",
    # create or overwrite files by any of their classes (tarfile.TarFile.open(p, "w"),
    # zipfile.PyZipFile), or write the system log
    "tarfile", "zipfile", "syslog",
    # scikit-learn's test helpers run Python code in a subprocess
    # (assert_run_python_script); its dataset fetchers download and write files
    "sklearn.utils._testing", "sklearn.datasets",
    # unpicklers and downloaders vendored or wrapped by other packages
    "sklearn.externals.joblib", "pandas.compat.pickle_compat", "srsly.cloudpickle", "srsly.pickle_loads",
    "srsly._pickle_api", "torch.utils.model_zoo",
)
# A dotted path that walks through one of these reaches it from any module
# ("pathlib.os.system", "x.subprocess.Popen"): the first module only opens the door.
_REACH = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "builtins", "__builtins__",
    "__builtin__", "importlib", "shutil", "socket", "pty", "ctypes", "runpy", "pickle",
    "_pickle", "cPickle", "marshal", "webbrowser", "_io",
})
_SCANNERS = ("picklescan", "modelscan", "fickling", "modelaudit", "saferpickle", "model_unpickler")
# Keras 2 / tf_keras pickle a model as deserialize_model_from_bytecode(<.keras zip
# bytes>): the call loads that archive (with safe_mode off), so it is exactly as safe
# as the archive it is given. The scanner judges it by scanning those bytes.
KERAS_DESERIALISERS = frozenset({
    "tf_keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
    "keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
    "keras.saving.pickle_utils.deserialize_model_from_bytecode",
})
_DANGEROUS_BUILTINS = frozenset(
    {
        "eval", "exec", "execfile", "compile", "getattr", "setattr", "delattr",
        "__import__", "open", "file", "breakpoint", "globals", "locals", "vars", "input",
        "raw_input", "apply", "exit", "quit", "help", "memoryview", "reload", "__loader__",
        "__build_class__", "__spec__", "copyright", "credits", "license",
    }
)
_DANGEROUS_EXACT = frozenset(
    {
        "operator.attrgetter", "operator.methodcaller", "_operator.attrgetter",
        "_operator.methodcaller", "functools.reduce", "_functools.reduce",
        "codecs.open",
        "pathlib.Path.read_text", "pathlib.Path.write_text", "pathlib.Path.open",
        "pathlib.Path.unlink", "pathlib.Path.read_bytes", "pathlib.Path.write_bytes",
        "copyreg.__newobj_ex__",
    }
)
# pickle.loads / pickle.load under other names (numpy 1.x kept these aliases)
_UNPICKLERS = frozenset({
    "numpy.loads", "numpy.core.numeric.loads", "numpy._core.numeric.loads", "numpy.ma.loads",
    "numpy.ma.load", "numpy.ma.core.loads", "numpy.ma.core.load",
})
_DUNDER = re.compile(r"__\w+__")
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
# Module names that look like dunders but are plain modules to an unpickler.
_DUNDER_MODULES = frozenset({"__builtin__", "__builtins__", "__main__"})


def _normalize(module: str, name: str) -> list[tuple[str, str]]:
    """The (module, name) pairs a real unpickler might resolve: as written and as
    mapped by the Python 2 compatibility tables (``fix_imports``, which CPython's
    unpickler applies to protocol 0-2 pickles)."""
    out = [(module, name)]
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped:
        out.append(mapped)
    elif module in _compat_pickle.IMPORT_MAPPING:
        out.append((_compat_pickle.IMPORT_MAPPING[module], name))
    elif module in ("__builtin__", "__builtins__"):
        out.append(("builtins", name))
    return out


@functools.lru_cache(maxsize=4096)
def classify_global(module: str, name: str) -> tuple[Verdict, str]:
    """Judge a global by name only; returns (verdict, reason)."""
    pairs = _normalize(module, name)
    verdict = _classify_one(*pairs[-1])
    if len(pairs) > 1:
        # A Python 2 name is judged by what it maps to (a protocol 0-2 load maps
        # it), unless the name as written is dangerous by itself.
        original = _classify_one(*pairs[0])
        if original[0] == "dangerous":
            return original
    return verdict


def _classify_one(module: str, name: str) -> tuple[Verdict, str]:
    full = f"{module}.{name}"
    if module == "__future__" and "." not in name and not _DUNDER.fullmatch(name):
        # Feature records (__future__.annotations is a _Feature): plain data. Only a
        # plain name: a dotted one walks on from the module's objects
        # (_Feature.__init__.__builtins__.get hands out any builtin, eval included).
        return "safe", "__future__ feature record"
    if module.startswith("__torch__"):
        # TorchScript's class table: types compiled by TorchScript, never importable
        # by Python's unpickler (there is no module named __torch__).
        return "safe", "TorchScript class"
    if full in _SAFE_EXACT:
        return "safe", "allow-listed data builder or value type"
    parts = name.split(".")
    if any(_DUNDER.fullmatch(p) for p in parts) or any(
        _DUNDER.fullmatch(p) and p not in _DUNDER_MODULES for p in module.split(".")
    ):
        # e.g. "builtins", "__import__" or "x", "f.__globals__": walks the object graph.
        return "dangerous", "reaches a dunder attribute (interpreter internals)"
    if full in KERAS_DESERIALISERS:
        return "suspicious", "Keras model deserialiser (as safe as the archive it loads)"
    path = full.split(".")
    # (module-private aliases count: tempfile._os is os)
    reach = next((p for p in path[1:] if p in _REACH or p.lstrip("_") in _REACH), None)
    if reach is not None:
        return "dangerous", f"attribute chain reaches {reach} ({full})"
    if path[0] in _SCANNERS:
        return "dangerous", f"calls into the model scanner {path[0]} (disabling a scanner)"
    if module.split(".")[0] == "builtins" and re.fullmatch(
        r"[A-Z]\w*(?:Error|Exception|Warning)|StopIteration|KeyboardInterrupt|GeneratorExit",
        name,
    ):
        return "safe", "exception type (a value)"
    if (module == "torch" and _SAFE_TORCH_ATTR.fullmatch(full)) or (
            module in ("torch.cuda", "torch.sparse") and _SAFE_TORCH_CLASS.fullmatch(full)):
        return "safe", "allow-listed data builder"
    if module.startswith("torch.nn.modules.") and _CLASS_NAME.fullmatch(name):
        # Layer classes of whole-model pickles (torch.save(model)): constructing one
        # and restoring its __dict__ runs no code from the file.
        return "safe", "torch.nn layer class"
    if module in ("builtins", "__builtin__", "__builtins__"):
        if parts[0] in _DANGEROUS_BUILTINS:
            return "dangerous", f"builtin {parts[0]} can run code or reach other objects"
        return "suspicious", "builtin not on the allow-list"
    if full in _DANGEROUS_EXACT:
        return "dangerous", "can call arbitrary methods or read files"
    if full in _UNPICKLERS:
        return "dangerous", "unpickles its argument (pickle.loads under another name)"
    for prefix in _DANGEROUS_MODULES:
        if full == prefix or full.startswith(prefix + "."):
            return "dangerous", f"{prefix} can run code, touch files or the network"
    return "suspicious", "global not on the allow-list (unknown is not safe)"


