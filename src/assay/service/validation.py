"""Strict input types of the API's JSON bodies.

Request models use pydantic's strict mode (``"enabled": "yes"`` or
``"pdq_threshold": true`` are refused, not coerced) and these string types, so that
no control character reaches a bank, an entry, a key or the audit log: a name, a
content id or a key name is one line without any; a description or a note may hold
tabs and newlines (LF), nothing else below U+0020, no DEL and no C1 control.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

STRICT = ConfigDict(extra="forbid", strict=True)

_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bank names as the store accepts them (assay.banks.store): first a letter or digit.
BANK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _line(value: str) -> str:
    if _LINE_CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _text(value: str) -> str:
    if _TEXT_CONTROL.search(value):
        raise ValueError("control characters other than tab and newline are not allowed")
    return value


def _integral(value: Any) -> Any:
    # JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees); 5.5, "5"
    # and true are not integers and stay refused by the strict field.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        raise ValueError("nested deeper than 32 levels")
    if isinstance(value, str):
        _text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _line(k)
            _json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _json(v, depth + 1)
    return value


# The patterns say the same in the OpenAPI document, for clients and schema-driven tests.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
Line = Annotated[str, AfterValidator(_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
Text = Annotated[str, AfterValidator(_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
# The store checks the name (400 invalid-bank-input, as from the CLI); the schema says
# what it accepts, so that clients and schema-driven tests know.
BankName = Annotated[Line, Field(json_schema_extra={"pattern": BANK_NAME_PATTERN, "maxLength": 64})]
# Any JSON value _json accepts, for the OpenAPI document (components/schemas/JsonValue, added
# by service/openapi.py): strings hold no control character but tab and newline at any depth,
# and object keys none at all. (The 32-level depth limit is not said: JSON Schema has no
# depth bound.)
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "A JSON value: strings without control characters other than tab and newline, "
                   "object keys without any, nested at most 32 levels.",
    "anyOf": [
        {"type": "string", "pattern": TEXT_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "propertyNames": {"pattern": LINE_PATTERN}, "additionalProperties": JSON_VALUE_REF},
    ],
}
JsonObject = Annotated[dict[str, Any], AfterValidator(_json),
                       Field(json_schema_extra={"propertyNames": {"pattern": LINE_PATTERN},
                                                "additionalProperties": JSON_VALUE_REF})]
# A PDQ distance (0-256), as an integer: 5.0 is 5.
Threshold = Annotated[int, Field(ge=0, le=256), BeforeValidator(_integral)]
# A mapping whose keys are Lines: the schema says so (patternProperties alone would let
# any other key through).
LINE_KEYS: dict[str, Any] = {"additionalProperties": False}
