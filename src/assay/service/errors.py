"""The one JSON error shape of the API and the HTTP status of each assay error.

Every error answer, whatever raised it, is::

    {"error": {"code": "invalid-signal", "message": "...", "hint": "..." | null,
               "request_id": "...", "details": ... (optional)}}

``code`` values are the stable ``AssayError.code`` strings plus a few HTTP ones
(``not-found``, ``method-not-allowed``, ``invalid-request``, ``too-large``,
``request-timeout``, ``internal``).
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import errors as E

# Most specific class first: the first isinstance match wins.
STATUS: list[tuple[type[E.AssayError], int]] = [
    (E.Unauthorized, 401),
    (E.Forbidden, 403),
    (E.RateLimited, 429),
    (E.NotFound, 404),
    (E.BankNotFound, 404),
    (E.BankExists, 409),
    (E.TooLarge, 413),
    (E.UnsafeInput, 422),
    (E.UnsupportedFormat, 415),
    (E.DecodeError, 422),
    (E.InputError, 400),
    (E.InvalidSignal, 400),
    (E.UnknownSignalType, 400),
    (E.InvalidBankInput, 400),
    (E.BankImportError, 400),
    (E.StoreError, 503),
]


def status_for(exc: E.AssayError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_dict(code: str, message: str, request_id: str | None, *, hint: str | None = None,
               details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "hint": hint, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


def assay_error_dict(exc: E.AssayError, request_id: str | None) -> dict[str, Any]:
    details: Any = None
    if isinstance(exc, E.BankImportError):
        details = {"problems": [{"line": n, "reason": r} for n, r in exc.problems]}
    elif isinstance(exc, E.InvalidSignal):
        details = {"signal_type": exc.signal_type, "reason": exc.reason}
    return error_dict(exc.code, exc.message, request_id, hint=exc.hint, details=details)


def error_bytes(code: str, message: str, request_id: str | None, hint: str | None = None) -> bytes:
    return orjson.dumps(error_dict(code, message, request_id, hint=hint))
