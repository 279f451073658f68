"""scikit-learn models saved by skops (``skops.io.dump``), judged without skops.

A ``.skops`` file is a zip: ``schema.json`` describes the object tree, arrays sit
beside it as ``.npy`` (sparse matrices as ``.npz``). Every node names the type or
function it loads as ``__module__`` + ``__class__`` and how (``__loader__``:
ObjectNode builds an instance, ConstructorFromReduceNode calls the type, FunctionNode
and MethodNode hand out callables, OperatorFuncNode builds operator getters).
``skops.io.load`` refuses types outside its trusted list unless the user trusts them,
and the documented way is to trust whatever ``get_untrusted_types`` lists; skops
releases before 0.12 let some nodes through unchecked (CVE-2025-54412, -54413). So
each named type is judged by the pickle policy: a dangerous one (``posix.system``)
is dangerous; others outside scikit-learn, NumPy and SciPy (which skops trusts) are
suspicious, naming what the user would have to trust.
"""

from __future__ import annotations

import json
from typing import Any

from ..pickle_policy import classify_global
from ..pickles import PickleFinding, PickleReport
from . import MAX_CONFIG_BYTES

__all__ = ["is_skops_zip", "scan_skops_member", "scan_skops_schema"]

SCHEMA = "schema.json"
# Types skops.io.load trusts by default come from these packages (estimators, arrays,
# sparse matrices, random states, ufuncs); a dangerous name there is still dangerous.
_TRUSTED_ROOTS = frozenset({"sklearn", "numpy", "scipy"})
_CALLABLES = frozenset({"FunctionNode", "MethodNode", "PartialNode", "OperatorFuncNode"})


def is_skops_zip(names: list[str]) -> bool:
    """A skops archive: ``schema.json`` and only arrays beside it."""
    return SCHEMA in names and all(n == SCHEMA or n.endswith((".npy", ".npz")) for n in names)


def scan_skops_schema(schema: Any, where: str) -> PickleReport:
    """Findings for every type or function a skops schema makes the loader import."""
    from .keras import _nodes

    report = PickleReport(where=where)
    seen: set[tuple[str, str]] = set()
    for path, node in _nodes(schema):
        loader, module, cls = node.get("__loader__"), node.get("__module__"), node.get("__class__")
        if not (isinstance(loader, str) and isinstance(module, str) and isinstance(cls, str)):
            continue
        name = f"{module}.{cls}"
        if name not in report.globals:
            report.globals.append(name)
        verdict, reason = classify_global(module, cls)
        root = module.split(".")[0]
        # skops trusts scikit-learn's estimators and NumPy/SciPy types and ufuncs; a
        # scikit-learn *function* handed out by a FunctionNode it does not trust.
        trusted = root in _TRUSTED_ROOTS and not (root == "sklearn" and loader in _CALLABLES)
        if verdict == "safe" or (verdict != "dangerous" and trusted):
            continue
        if (name, loader) in seen:
            continue
        seen.add((name, loader))
        tail = "" if verdict == "dangerous" else "; skops.io.load refuses it unless the user trusts it"
        report.add(PickleFinding(
            "dangerous" if verdict == "dangerous" else "suspicious", name, "config", 0,
            f"{loader} at {path or '/'} loads {name}: {reason}{tail}",
        ))
    return report


def scan_skops_member(f: Any, entry: Any, where: str) -> PickleReport:
    """The schema.json member of a skops archive judged (``entry``: a ZipEntry)."""
    from ...errors import InputError
    from ..pickles import read_zip_entry

    label = f"{where}:{SCHEMA}"
    try:
        raw = read_zip_entry(f, entry, where, MAX_CONFIG_BYTES)
        schema = json.loads(raw.decode("utf-8"))
    except InputError as exc:
        reason = exc.reason
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = f"schema.json is not valid JSON: {str(exc)[:200]}"
    else:
        return scan_skops_schema(schema, label)
    report = PickleReport(where=label, error=reason)
    report.add(PickleFinding("suspicious", "", "config", 0, f"skops schema not read: {reason}"))
    return report
