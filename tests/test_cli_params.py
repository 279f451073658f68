"""Command-line values convert without pydantic (cli/_params.py) to exactly what Typer's
own conversion gives: the same value, or the same error message. Checked on every
parameter of every command, with ordinary and awkward values."""

from __future__ import annotations

import enum
import pathlib
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import typer.main
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from assay.cli import app
from assay.cli._params import PlainRuntimeParam, plain_runtime_param

INTS = ["0", "12", "-3", "+4", "007", " 12", "12 ", "1_000", "1.0", "1.5", "1e3", "abc", "", "0x10",
        "99999999999999999999", "\u0663", 7]
FLOATS = ["0.9", "1", "1e3", ".5", "5.", "-0.25", "+.5", "inf", "nan", "x", "1_0", "", " 2", 0.5, 3]
STRS = ["x", "", " a ", "\u00fcn\u00efcode", "a\nb", "-"]


def _params() -> list[tuple[str, Any, Any]]:
    found = []

    def walk(cmd: Any, path: str) -> None:
        for p in cmd.params:
            found.append((f"{path} {p.name}".strip(), cmd, p))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


PARAMS = _params()


def _values(annotation: Any, tmp: Path) -> list[Any]:
    if annotation is int:
        return INTS
    if annotation is float:
        return FLOATS
    if annotation is str:
        return STRS
    if annotation is bool:
        return [True, False]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [*annotation, *(m.value for m in annotation), *(str(m.value).upper() for m in annotation), "bogus", ""]
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return ["a.png", "", "~/x", str(tmp), str(tmp / "f.txt"), str(tmp / "missing"), Path("p.png")]
    raise AssertionError(f"no test values for {annotation!r}")


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        return "ok", repr(runtime.coerce(value, param=param, ctx=ctx))  # repr: nan, 1 vs 1.0
    except BadParameter as exc:
        return "error", exc.format_message()


def test_every_parameter_is_converted_without_pydantic() -> None:
    """Every parameter assay has today is of a plain type: if one is added that is not,
    it would load pydantic again at start-up; this says which."""
    slow = [name for name, _, p in PARAMS if plain_runtime_param(p.type_descriptor) is None]
    assert not slow
    assert all(isinstance(p.get_runtime_param(), PlainRuntimeParam) for _, _, p in PARAMS)


@pytest.mark.parametrize("name", [n for n, _, _ in PARAMS])
def test_conversion_equals_typers(name: str, tmp_path: Path) -> None:
    _, cmd, param = next(x for x in PARAMS if x[0] == name)
    (tmp_path / "f.txt").write_text("x")
    desc = param.type_descriptor
    annotation = desc.annotation
    many = get_origin(annotation) is list
    element = get_args(annotation)[0] if many else annotation
    ctx = Context(cmd)
    plain, typers = plain_runtime_param(desc), build_runtime_param(desc)
    values = _values(element, tmp_path)
    cases: list[Any] = [[v] for v in values] + [values[:3], tuple(values[-3:])] if many else values
    if many:
        cases.append(values[0])  # a single value given to a list parameter
    for value in [None, *cases]:
        assert _outcome(plain, value, param, ctx) == _outcome(typers, value, param, ctx), (name, value)
