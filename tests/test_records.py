"""The report records (report/_record.py, plain Python) behave as pydantic models of the
same fields would: each record class is compared with its pydantic twin (the model the
service's OpenAPI uses, built by pydantic from the same declarations) on random inputs,
valid and not: the same inputs are accepted and refused, and every dump is the same."""

from __future__ import annotations

import json
import random
import types
import typing
from typing import Any, Literal, Union

import numpy as np
import pydantic
import pytest

from assay.report import model as report_model
from assay.report import provenance as report_provenance
from assay.report import schema as report_schema
from assay.report._record import Record, ValidationError

CLASSES = sorted({c for m in (report_schema, report_model, report_provenance) for c in vars(m).values()
                  if isinstance(c, type) and issubclass(c, Record) and c.__record_fields__},
                 key=lambda c: c.__name__)


def _value(rng: random.Random, tp: Any, depth: int) -> Any:  # noqa: C901 - one branch per type form
    origin = typing.get_origin(tp)
    if tp is Any:
        return rng.choice([1, "x", None, 2.5, [1, "a", None], {"k": None, "t": (1, 2)}, True, {"s": {3}},
                           float("inf")])
    if origin in (Union, types.UnionType):
        return _value(rng, rng.choice(typing.get_args(tp)), depth)
    if origin is Literal:
        return rng.choice([*typing.get_args(tp), "not-a-choice"] if rng.random() < 0.05 else typing.get_args(tp))
    if origin is list:
        items = [_value(rng, typing.get_args(tp)[0], depth + 1) for _ in range(rng.randint(0, 3 if depth < 2 else 0))]
        return tuple(items) if rng.random() < 0.2 else items
    if origin is tuple:
        return tuple(_value(rng, a, depth + 1) for a in typing.get_args(tp))
    if origin is dict:
        k, v = typing.get_args(tp)
        return {_value(rng, k, depth + 1): _value(rng, v, depth + 1) for _ in range(rng.randint(0, 2))}
    if tp is type(None):
        return None
    if tp is str:
        return rng.choice(["a", "é\n", "", "\x1b[0m", 5 if rng.random() < 0.03 else "b"])
    if tp is int:
        return rng.choice([0, 5, -3, np.int64(7), 3.0, "12", True, 2.5 if rng.random() < 0.1 else 1])
    if tp is float:
        return rng.choice([0.5, 3, np.float32(1.5), "2.5", float("nan")])
    if tp is bool:
        return rng.choice([True, False, 1, "yes", 0, 2 if rng.random() < 0.1 else "no"])
    if isinstance(tp, type) and issubclass(tp, Record):
        return _kwargs(rng, tp, depth + 1)
    raise AssertionError(f"no generator for {tp!r}")


def _kwargs(rng: random.Random, cls: type[Record], depth: int = 0) -> dict[str, Any]:
    types_ = cls._field_types()
    kw: dict[str, Any] = {}
    for name, f in cls.__record_fields__.items():
        if f.required or rng.random() < 0.6:
            kw[f.alias if f.alias and rng.random() < 0.5 else name] = _value(rng, types_[name], depth)
    if rng.random() < 0.03:
        kw["not_a_field"] = 1
    return kw


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, default=repr) == json.dumps(b, default=repr) and repr(a) == repr(b)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_record_behaves_as_its_pydantic_twin(cls: type[Record]) -> None:
    twin = cls._pydantic_twin()
    rng = random.Random(cls.__name__)
    accepted = 0
    for _ in range(150):
        kw = _kwargs(rng, cls)
        try:
            ref = twin(**kw)
        except pydantic.ValidationError:
            with pytest.raises(ValidationError):
                cls(**kw)
            continue
        rec = cls(**kw)
        accepted += 1
        for how in ({"mode": "json", "by_alias": True, "exclude_none": True}, {"mode": "json"}, {},
                    {"exclude_none": True}):
            assert _same(rec.model_dump(**how), ref.model_dump(**how)), (kw, how)
        text = rec.model_dump_json(by_alias=True)
        assert json.loads(text) == json.loads(ref.model_dump_json(by_alias=True))
        try:
            back = twin.model_validate_json(ref.model_dump_json(by_alias=True))
        except pydantic.ValidationError:  # NaN written as null does not read back in either
            continue
        assert _same(cls.model_validate_json(text).model_dump(mode="json"), back.model_dump(mode="json"))
        assert cls.model_validate_json(text) == cls.model_validate_json(text)
    assert accepted > 50


def test_copies_and_private_attributes() -> None:
    rec = report_schema.FileRecord(path="a", signals=[{"type": "md5", "value": "ab"}])
    rec.add_timing("hash", 1.0, 0.5)
    assert rec.timings == {"hash": (1.0, 0.5)}
    assert "_timings" not in rec.to_json_dict() and rec.to_json_dict()["schema"] == "assay.file/1"
    shallow = rec.model_copy(update={"path": "b"})
    deep = rec.model_copy(deep=True)
    assert (shallow.path, rec.path) == ("b", "a")
    assert shallow.signals is rec.signals and deep.signals is not rec.signals and deep == rec
    assert report_schema.Match(bank="b", content_id="c", signal_type="md5", value="v", strength="exact",
                               entry_id=4).model_dump().get("entry_id") is None  # excluded, as in pydantic
    with pytest.raises(ValidationError, match="FileRecord.path: field required"):
        report_schema.FileRecord()


def test_exclude_leaves_out_the_named_fields() -> None:
    """The service's batch answer drops ``query_variant`` with ``exclude`` (a 500 when it
    was not supported)."""
    m = report_schema.Match(bank="b", content_id="c", signal_type="pdq", value="v", strength="perceptual",
                            query_variant="rot90")
    twin = report_schema.Match._pydantic_twin()(**m.model_dump())
    for how in ({"mode": "json", "exclude_none": True, "exclude": {"query_variant"}}, {"exclude": {"bank", "note"}}):
        assert m.model_dump(**how) == twin.model_dump(**how)
    assert "query_variant" not in m.model_dump_json(exclude={"query_variant"})


def test_model_construct_gives_the_validated_record_and_still_refuses_missing_or_extra_fields() -> None:
    from assay.report._record import ValidationError
    from assay.report.schema import SignalValue

    made = SignalValue.model_construct(type="pdq", value="ab" * 32, quality=87, variant="flipx", mode="fast")
    assert made == SignalValue(type="pdq", value="ab" * 32, quality=87, variant="flipx", mode="fast")
    assert made.model_dump() == SignalValue(type="pdq", value="ab" * 32, quality=87, variant="flipx",
                                              mode="fast").model_dump()
    assert SignalValue.model_construct(type="md5", value="0" * 32) == SignalValue(type="md5", value="0" * 32)
    with pytest.raises(ValidationError, match="value: field required"):
        SignalValue.model_construct(type="md5")
    with pytest.raises(ValidationError, match="extra fields not permitted: colour"):
        SignalValue.model_construct(type="md5", value="0" * 32, colour="red")
