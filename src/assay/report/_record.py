"""A small base class for report records: the part of pydantic's BaseModel API the records
use (typed fields with defaults, aliases, excluded and private attributes, validation of
constructor arguments, ``model_dump``/``model_dump_json``/``model_validate``/``model_copy``)
written in plain Python.

Why not pydantic itself: importing pydantic and building the ~30 record classes cost a
single-file command (``assay hash FILE``) ~0.2 s of CPU before any work, more than the work.
Here a class costs nothing until its first instance, when its field types are resolved once.
The service still describes these records in its OpenAPI document: ``__get_pydantic_core_schema__``
hands pydantic an equivalent model built on demand (pydantic is imported only then).

Validation follows pydantic's lax mode for the types the records use (str, int, float,
bool, Any, Literal, ``X | None``, list, tuple, dict and nested records): a dict becomes the
nested record, a tuple a list, ``"4"`` an int key of ``dict[int, int]``; anything else that
does not fit raises ``ValidationError`` (a ValueError) naming the class and the field.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import sys
import types
import typing
from typing import Any, ClassVar, Literal, Union

_MISSING: Any = object()


class ValidationError(ValueError):
    pass


class FieldInfo:
    __slots__ = ("alias", "default", "default_factory", "exclude")

    def __init__(self, default: Any = _MISSING, *, default_factory: Any = None, alias: str | None = None,
                 exclude: bool = False) -> None:
        self.default, self.default_factory, self.alias, self.exclude = default, default_factory, alias, exclude

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        # pydantic copies a mutable default per instance; the records only use None,
        # numbers, strings and booleans as plain defaults.
        return copy.copy(self.default)


def Field(default: Any = _MISSING, *, default_factory: Any = None, alias: str | None = None,  # noqa: N802
          exclude: bool = False) -> Any:
    return FieldInfo(default, default_factory=default_factory, alias=alias, exclude=exclude)


class _Private:
    __slots__ = ("default",)

    def __init__(self, default: Any) -> None:
        self.default = default


def PrivateAttr(default: Any = None) -> Any:  # noqa: N802
    return _Private(default)


def ConfigDict(**kw: Any) -> dict[str, Any]:  # noqa: N802
    return kw


# -- validation ---------------------------------------------------------------------------

_NONE = type(None)
_BOOL_TEXT = {"1": True, "on": True, "t": True, "true": True, "y": True, "yes": True,
              "0": False, "off": False, "f": False, "false": False, "n": False, "no": False}


def _fail(where: str, value: Any, expected: str) -> typing.NoReturn:
    raise ValidationError(f"{where}: expected {expected}, got {type(value).__name__} {value!r:.80}")


def _validator(tp: Any) -> typing.Callable[[Any, str], Any]:  # noqa: C901 - one branch per type form
    """A function (value, where) -> validated value for the annotation ``tp``."""
    if tp is Any or tp is object:
        return lambda v, w: v
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        rest = [a for a in args if a is not _NONE]
        subs = [_validator(a) for a in rest]
        nullable = len(rest) != len(args)

        def union(v: Any, w: str) -> Any:
            if v is None and nullable:
                return None
            err: Exception | None = None
            for s in subs:
                try:
                    return s(v, w)
                except ValidationError as e:
                    err = e
            if err is None:
                _fail(w, v, "None")
            raise err
        return union
    if origin is Literal:
        allowed = typing.get_args(tp)

        def literal(v: Any, w: str) -> Any:
            for a in allowed:
                if v == a and type(v) is type(a):
                    return a
            _fail(w, v, "one of " + ", ".join(repr(a) for a in allowed))
        return literal
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        sub = _validator(item)

        def list_(v: Any, w: str) -> Any:
            if not isinstance(v, list | tuple):
                _fail(w, v, "a list")
            return [sub(x, f"{w}[{i}]") for i, x in enumerate(v)]
        return list_
    if origin is tuple:
        subs_t = [_validator(a) for a in typing.get_args(tp)]

        def tuple_(v: Any, w: str) -> Any:
            if not isinstance(v, list | tuple) or len(v) != len(subs_t):
                _fail(w, v, f"a tuple of {len(subs_t)}")
            return tuple(s(x, f"{w}[{i}]") for i, (s, x) in enumerate(zip(subs_t, v, strict=True)))
        return tuple_
    if origin is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        kv, vv = _validator(kt), _validator(vt)

        def dict_(v: Any, w: str) -> Any:
            if not isinstance(v, dict):
                _fail(w, v, "a mapping")
            return {kv(k, f"{w} key"): vv(x, f"{w}[{k!r}]") for k, x in v.items()}
        return dict_
    if isinstance(tp, type) and issubclass(tp, Record):
        def record(v: Any, w: str) -> Any:
            if isinstance(v, tp):
                return v
            if isinstance(v, dict):
                return tp.model_validate(v)
            _fail(w, v, tp.__name__)
        return record
    if tp is str:
        def str_(v: Any, w: str) -> Any:
            if isinstance(v, str):
                return str(v)
            _fail(w, v, "a string")
        return str_
    if tp is bool:
        def bool_(v: Any, w: str) -> Any:
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            if isinstance(v, str) and v.strip().lower() in _BOOL_TEXT:
                return _BOOL_TEXT[v.strip().lower()]
            _fail(w, v, "a boolean")
        return bool_
    if tp is int:
        def int_(v: Any, w: str) -> Any:
            if isinstance(v, int):
                return int(v)
            if isinstance(v, float):
                if v.is_integer():
                    return int(v)
            elif not isinstance(v, str | bytes) and hasattr(v, "__index__"):  # numpy integers
                return operator.index(v)
            if isinstance(v, str):
                try:
                    return int(v.strip())
                except ValueError:
                    pass
            _fail(w, v, "an integer")
        return int_
    if tp is float:
        def float_(v: Any, w: str) -> Any:
            if isinstance(v, float):
                return float(v)
            if isinstance(v, int):
                return float(v)
            if isinstance(v, str):
                try:
                    return float(v.strip())
                except ValueError:
                    pass
            elif not isinstance(v, bytes) and hasattr(v, "__float__"):  # numpy floats
                return float(v)
            _fail(w, v, "a number")
        return float_
    raise TypeError(f"record field type not supported: {tp!r}")


# -- serialisation ------------------------------------------------------------------------

def _dump(v: Any, json_mode: bool, by_alias: bool, exclude_none: bool, typed: bool = False) -> Any:
    """``v`` dumped; ``typed``: declared without ``Any`` (floats keep NaN, as in pydantic)."""
    if isinstance(v, Record):
        return v._dump(json_mode, by_alias, exclude_none)
    if isinstance(v, list):
        return [_dump(x, json_mode, by_alias, exclude_none, typed) for x in v]
    if isinstance(v, tuple):
        items = [_dump(x, json_mode, by_alias, exclude_none, typed) for x in v]
        return items if json_mode else tuple(items)
    if isinstance(v, dict):
        return {(_json_key(k) if json_mode else k): _dump(x, json_mode, by_alias, exclude_none, typed)
                for k, x in v.items()}
    if json_mode:
        if isinstance(v, float) and not math.isfinite(v) and not typed:
            return None  # a value under Any: pydantic's default (ser_json_inf_nan="null")
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, set | frozenset):
            return [_dump(x, json_mode, by_alias, exclude_none) for x in v]
        if v is not None and not isinstance(v, str | int | float | bool):
            raise ValueError(f"cannot serialise {type(v).__name__} in a record")
    return v


def _finite(v: Any) -> Any:
    """NaN and infinities as null, as pydantic writes them in JSON text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "None"
    return str(k)


class Record:
    """Base class of the report records (see the module's docstring)."""

    model_config: ClassVar[dict[str, Any]] = {}
    __record_fields__: ClassVar[dict[str, FieldInfo]] = {}
    __record_private__: ClassVar[dict[str, Any]] = {}
    __record_validators__: ClassVar[dict[str, Any] | None] = None
    __record_annotations__: ClassVar[dict[str, tuple[Any, str]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields: dict[str, FieldInfo] = {}
        private: dict[str, Any] = {}
        annotations: dict[str, tuple[Any, str]] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(getattr(base, "__record_fields__", {}))
            private.update(getattr(base, "__record_private__", {}))
            annotations.update(getattr(base, "__record_annotations__", {}))
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            if isinstance(ann, str) and ann.startswith("ClassVar"):
                continue
            value = cls.__dict__.get(name, _MISSING)
            if name.startswith("_"):
                private[name] = value.default if isinstance(value, _Private) else (None if value is _MISSING else value)
            else:
                fields[name] = value if isinstance(value, FieldInfo) else FieldInfo(value)
                annotations[name] = (ann, cls.__module__)
            if value is not _MISSING:
                delattr(cls, name)
        cls.__record_fields__ = fields
        cls.__record_private__ = private
        cls.__record_annotations__ = annotations
        cls.__record_validators__ = None
        cls.model_fields = fields  # type: ignore[attr-defined]

    @classmethod
    def _validators(cls) -> dict[str, Any]:
        vs = cls.__dict__.get("__record_validators__")
        if vs is None:
            hints = cls._field_types()
            vs = {name: _validator(hints[name]) for name in cls.__record_fields__}
            cls.__record_validators__ = vs
        return vs

    @classmethod
    def _field_types(cls) -> dict[str, Any]:
        """Each field's annotation, evaluated in the module that declared it."""
        return {name: eval(ann, vars(sys.modules[module])) if isinstance(ann, str) else ann  # noqa: S307 - our own source
                for name, (ann, module) in cls.__record_annotations__.items()}

    def __init__(self, **data: Any) -> None:
        cls = type(self)
        vs = cls._validators()
        d = self.__dict__
        for name, f in cls.__record_fields__.items():
            if f.alias is not None and f.alias in data:
                value = data.pop(f.alias)
                data.pop(name, None)
            elif name in data:
                value = data.pop(name)
            elif f.required:
                raise ValidationError(f"{cls.__name__}.{name}: field required")
            else:
                d[name] = f.make_default()
                continue
            d[name] = vs[name](value, f"{cls.__name__}.{name}")
        if data:
            raise ValidationError(f"{cls.__name__}: extra fields not permitted: {', '.join(sorted(map(str, data)))}")
        for name, default in cls.__record_private__.items():
            d[name] = copy.copy(default)

    # -- pydantic's API, as the records use it -----------------------------------------

    @classmethod
    def model_construct(cls, **data: Any) -> Any:
        """A record from values the caller computed itself and vouches for (their types
        already right), not validated: for hot paths that build many records (the ~50 PDQ
        variants of an image). Fields left out take their defaults; a required field left
        out, or a name that is not a field, is still an error."""
        new = object.__new__(cls)
        d = new.__dict__
        for name, f in cls.__record_fields__.items():
            if name in data:
                d[name] = data.pop(name)
            elif f.required:
                raise ValidationError(f"{cls.__name__}.{name}: field required")
            else:
                d[name] = f.make_default()
        if data:
            raise ValidationError(f"{cls.__name__}: extra fields not permitted: {', '.join(sorted(map(str, data)))}")
        for name, default in cls.__record_private__.items():
            d[name] = copy.copy(default)
        return new

    @classmethod
    def model_validate(cls, obj: Any) -> Any:
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, dict):
            _fail(cls.__name__, obj, "a mapping")
        return cls(**obj)

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Any:
        return cls.model_validate(json.loads(data))

    @classmethod
    def _typed(cls) -> dict[str, bool]:
        """Field -> declared without ``Any``: a float there keeps NaN and infinities in JSON
        mode (pydantic's rule); only floats under ``Any`` (facts, details) become None."""
        t = cls.__dict__.get("__record_typed__")
        if t is None:
            t = {name: "Any" not in repr(tp) for name, tp in cls._field_types().items()}
            cls.__record_typed__ = t
        return t

    def _dump(self, json_mode: bool, by_alias: bool, exclude_none: bool,
              exclude: Any = ()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        d = self.__dict__
        typed = type(self)._typed()
        for name, f in type(self).__record_fields__.items():
            if f.exclude or name in exclude:
                continue
            v = d[name]
            if v is None and exclude_none:
                continue
            out[f.alias if by_alias and f.alias else name] = _dump(v, json_mode, by_alias, exclude_none, typed[name])
        return out

    def model_dump(self, *, mode: str = "python", by_alias: bool = False, exclude_none: bool = False,
                   exclude: set[str] | None = None) -> dict[str, Any]:
        """``exclude``: names of this record's own fields to leave out."""
        return self._dump(mode == "json", by_alias, exclude_none, exclude or ())

    def model_dump_json(self, *, by_alias: bool = False, exclude_none: bool = False,
                        exclude: set[str] | None = None) -> str:
        return json.dumps(_finite(self._dump(True, by_alias, exclude_none, exclude or ())), ensure_ascii=False,
                          separators=(",", ":"))

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        new = object.__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__dict__) if deep else self.__dict__)
        if update:
            new.__dict__.update(update)
        return new

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        d = self.__dict__
        args = ", ".join(f"{n}={d[n]!r}" for n in type(self).__record_fields__)
        return f"{type(self).__name__}({args})"

    # -- for the service's OpenAPI document: an equivalent pydantic model ----------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        twin = cls._pydantic_twin()
        return core_schema.no_info_after_validator_function(
            lambda m: cls.model_validate(m.model_dump(by_alias=True)) if not isinstance(m, cls) else m,
            core_schema.union_schema([core_schema.is_instance_schema(cls), handler.generate_schema(twin)]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.model_dump(mode="json", by_alias=True, exclude_none=True)),
        )

    @classmethod
    def _pydantic_twin(cls) -> Any:
        """A pydantic model with the same fields (nested records as their twins)."""
        twin = cls.__dict__.get("_twin")
        if twin is None:
            import pydantic

            hints = cls._field_types()
            spec: dict[str, Any] = {}
            for name, f in cls.__record_fields__.items():
                kw: dict[str, Any] = {}
                if f.default_factory is not None:
                    kw["default_factory"] = f.default_factory
                elif f.default is not _MISSING:
                    kw["default"] = f.default
                if f.alias:
                    kw["alias"] = f.alias
                if f.exclude:
                    kw["exclude"] = True
                spec[name] = (_twin_type(hints[name]), pydantic.Field(**kw))
            twin = pydantic.create_model(cls.__name__, __config__=pydantic.ConfigDict(extra="forbid", populate_by_name=True),
                                         __doc__=cls.__doc__, __module__=cls.__module__, **spec)
            cls._twin = twin
        return twin


def _twin_type(tp: Any) -> Any:
    """``tp`` with every record class replaced by its pydantic twin."""
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp._pydantic_twin()
    origin = typing.get_origin(tp)
    if origin is None or origin is Literal:
        return tp
    args = tuple(_twin_type(a) for a in typing.get_args(tp))
    if origin is Union or origin is types.UnionType:
        return Union[args]  # noqa: UP007 - built from a tuple
    return origin[args if len(args) > 1 else args[0]]
