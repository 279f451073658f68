"""The one JSON error shape of the API and the HTTP status of each assay error.

Every error answer, whatever raised it, is::

    {"error": {"code": "invalid-signal", "message": "...", "hint": "..." | null,
               "request_id": "...", "details": ... (optional)}}

``code`` values are the stable ``AssayError.code`` strings plus a few HTTP ones
(``not-found``, ``method-not-allowed``, ``invalid-request``, ``too-large``,
``request-timeout``, ``internal``); ``CODES`` lists every one (docs/service.md).

Only ``admin`` callers see where the store lives (its URL, a driver's reason) and
the names of banks they did not ask for: ``public_error_dict`` is what everyone
else gets.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .. import errors as E

# Most specific class first: the first isinstance match wins.
STATUS: list[tuple[type[E.AssayError], int]] = [
    (E.Unauthorized, 401),
    (E.Forbidden, 403),
    (E.Busy, 503),
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
    (E.InvalidReview, 400),
    (E.StoreError, 503),
    (E.IndexUnavailable, 503),
]


# Every code an error answer may carry (docs/service.md, "Errors"); a new one goes
# here and in the docs. The base class's generic "error" is never sent.
CODES: dict[str, int] = {
    "invalid-signal": 400, "unknown-signal-type": 400, "invalid-bank-input": 400, "import-rejected": 400,
    "bad-input": 400, "bad-request": 400, "unauthorized": 401, "forbidden": 403, "not-found": 404,
    "bank-not-found": 404, "method-not-allowed": 405, "request-timeout": 408, "bank-exists": 409,
    "too-large": 413, "unsupported-format": 415, "decode-error": 422, "unsafe-input": 422,
    "invalid-request": 422, "rate-limited": 429, "internal": 500, "store-error": 503,
    "busy": 503, "invalid-review": 400, "index-unavailable": 503,
}

log = logging.getLogger("assay.service.errors")


def documented_code(code: str, status: int) -> str:
    """``code``, unless it is the base class's generic one: then the documented code
    of its status class."""
    if code != E.AssayError.code:
        return code
    return "internal" if status >= 500 else "bad-request"


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
    return error_dict(documented_code(exc.code, status_for(exc)), exc.message, request_id,
                      hint=exc.hint, details=details)


STORE_UNAVAILABLE = "the bank store is unavailable"
INDEX_UNAVAILABLE = "the service's text index is missing or damaged"


def public_error_dict(exc: E.AssayError, request_id: str | None, store_url: str) -> dict[str, Any]:
    """The error as a caller without the ``admin`` role sees it: no store location
    (URL, SQLite path, PostgreSQL host and database, a driver's reason, which can
    name them too) and no names of banks the caller did not ask for. The full error
    is logged with the request id, for the operator."""
    if isinstance(exc, E.StoreError):
        log.warning("request %s: %s", request_id, exc)
        return error_dict("store-error", STORE_UNAVAILABLE, request_id,
                          hint="try again shortly; the cause is logged with this request id")
    if isinstance(exc, E.IndexUnavailable):  # its message names the server's files
        log.error("request %s: %s", request_id, exc)
        return error_dict("index-unavailable", INDEX_UNAVAILABLE, request_id,
                          hint="the cause is logged with this request id for the operator")
    out = assay_error_dict(exc, request_id)
    err = out["error"]
    if isinstance(exc, E.BankNotFound | E.BankExists):
        err["hint"] = ("check the bank's name" if isinstance(exc, E.BankNotFound)
                       else "pick another name")  # the store's hint lists other banks
    err["message"] = scrub(err["message"], store_url)
    if err["hint"]:
        err["hint"] = scrub(err["hint"], store_url)
    return out


def scrub(text: str, store_url: str) -> str:
    """``text`` without the store's URL (``"no bank named 'x' in sqlite:///..."``)."""
    if not store_url or store_url not in text:
        return text
    return text.replace(f" in {store_url}", "").replace(store_url, "the bank store")


def error_bytes(code: str, message: str, request_id: str | None, hint: str | None = None) -> bytes:
    return orjson.dumps(error_dict(code, message, request_id, hint=hint))
