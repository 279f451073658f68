"""Converting command-line values without loading pydantic.

Typer (0.29) converts every parameter, a default of None included, through a pydantic
``TypeAdapter``: importing pydantic and building adapters cost a single-file command
~0.1 s of its start-up. assay's parameters are plain (str, int, float, bool, Path, an
enum, or a list of one of those, without constraints), and their ordinary values convert
here directly, to exactly what Typer would give. Anything else (a malformed number, an
unknown choice, a type not handled here) goes to Typer's own conversion, so that errors
and edge cases read as they always did. tests/test_cli_params.py compares both on every
parameter of every command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class _Slow(Exception):
    """This value is for Typer's own conversion."""


def _plain(annotation: Any, info: Any) -> Any:
    """A converter of one value for ``annotation``, or None if Typer's must do it."""
    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    if info.clamp:
        return None
    lo, hi = info.min, info.max
    if (lo is not None or hi is not None) and annotation not in (int, float):
        return None

    def bounded(v: Any) -> Any:
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Slow  # Typer words the error
        return v
    if annotation is str:
        def to_str(v: Any) -> str:
            if isinstance(v, str):
                return v
            raise _Slow
        return to_str
    if annotation is bool:
        def to_bool(v: Any) -> bool:
            if isinstance(v, bool):
                return v
            raise _Slow
        return to_bool
    if annotation is int:
        def to_int(v: Any) -> int:
            if isinstance(v, str) and _INT.fullmatch(v):
                return bounded(int(v))
            if type(v) is int:
                return bounded(v)
            raise _Slow
        return to_int
    if annotation is float:
        def to_float(v: Any) -> float:
            if isinstance(v, str) and _FLOAT.fullmatch(v):
                return bounded(float(v))
            if type(v) is float:
                return bounded(v)
            raise _Slow
        return to_float
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = tuple(annotation)

        def to_choice(v: Any) -> Any:
            try:
                return coerce_cli_choice(v, choices=choices, case_sensitive=info.case_sensitive)
            except ValueError:  # Typer words the error
                raise _Slow from None
        return to_choice
    if isinstance(annotation, type) and issubclass(annotation, Path) and info.path_type is None:
        def to_path(v: Any, param: Any = None, ctx: Any = None) -> Any:
            if isinstance(v, str):
                # Typer's own checks (exists, readable, ...) on a value already a Path,
                # which is what its pydantic step would have made of the string.
                v = annotation(v)
            if isinstance(v, annotation):
                return coerce_cli_path(v, info, path_type=annotation, param=param, ctx=ctx)
            raise _Slow
        to_path.wants_context = True  # type: ignore[attr-defined]
        return to_path
    return None


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Typer's conversion contract, for plain types, without pydantic."""

    convert: Any
    many: bool

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            if self.many:
                items = value if isinstance(value, list | tuple) else [value]
                return [self._one(v, param, ctx) for v in items]
            return self._one(value, param, ctx)
        except _Slow:
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)

    def _one(self, v: Any, param: Any, ctx: Any) -> Any:
        if getattr(self.convert, "wants_context", False):
            return self.convert(v, param, ctx)
        return self.convert(v)


def plain_runtime_param(descriptor: Any) -> RuntimeParam | None:
    """A pydantic-free RuntimeParam for ``descriptor``, or None (then Typer's applies)."""
    if descriptor.file_annotation is not None:
        return None
    annotation, info = descriptor.annotation, descriptor.parameter_info
    many = get_origin(annotation) is list
    if many:
        args = get_args(annotation)
        if len(args) != 1:
            return None
        annotation = args[0]
    elif get_origin(annotation) is not None:
        return None
    convert = _plain(annotation, info)
    if convert is None:
        return None
    return PlainRuntimeParam(parameter_info=info, annotation=descriptor.annotation, convert=convert, many=many)


def get_runtime_param(param: Any) -> RuntimeParam:
    """``get_runtime_param`` of assay's parameter classes (cli/_help.py): plain values
    convert without pydantic, anything else as Typer converts it."""
    if param._runtime_param is None:
        param._runtime_param = plain_runtime_param(param.type_descriptor) or build_runtime_param(
            param.type_descriptor)
    return param._runtime_param
