"""The OpenAPI document: FastAPI's, plus what clients and schema-driven tests need to
know and FastAPI cannot see: the API key scheme (``X-API-Key`` header or bearer
token) on every route that needs a key, and every error answer each route can give,
all in the one error shape (``Error``), including 422 (FastAPI documents its own
shape there, which this API never sends)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

try:  # FastAPI >= 0.16x includes routers lazily; this walks them as its own router does
    from fastapi.routing import _iter_included_route_candidates
except ImportError:  # older FastAPI: app.routes is flat
    def _iter_included_route_candidates(routes: Iterable[BaseRoute]) -> Iterable[BaseRoute]:  # type: ignore[misc]
        return routes

from .errors import CODES
from .validation import JSON_VALUE_SCHEMA

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "hint", "request_id"],
        "properties": {
            "code": {"type": "string", "enum": sorted(CODES)},
            "message": {"type": "string"},
            "hint": {"type": ["string", "null"]},
            "request_id": {"type": ["string", "null"]},
            "details": {},
        },
    }},
}
SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "assay_ followed by 43 characters (assay keys create)"},
    "BearerKey": {"type": "http", "scheme": "bearer", "description": "the same key as a bearer token"},
}
_DESCRIPTIONS = {
    400: "invalid input (signal, bank input, malformed body)", 401: "no, malformed, unknown or revoked key",
    403: "the key's role may not do this", 404: "no such bank, entry, content, job or key",
    408: "the client stopped sending the body", 409: "the bank exists",
    413: "body or upload over the limit", 415: "not an image, or empty", 422: "invalid parameters or body",
    429: "over the key's rate limit, its large uploads in flight, or its uploads refused too often "
         "(Retry-After)",
    503: "the bank store is unavailable, or the worker is busy with large uploads (busy: Retry-After)",
}
_UPLOADS = ("/v1/hash", "/v1/match", "/v1/analyze/provenance", "/v1/analyze/model", "/h/hash", "/m/lookup",
            "/c/bank/{bank_name}/content")


def _statuses(path: str, method: str, op: dict[str, Any], role: str | None) -> set[int]:
    out: set[int] = set()
    params = op.get("parameters") or []
    body = "requestBody" in op or (path.endswith("/import") or path == "/v1/analyze/model")
    if role is not None:
        out |= {401, 403, 429, 503}
    if params or body:
        out |= {400, 422}
    if body:
        out |= {408, 413}
    if any(p.get("in") == "path" for p in params):
        out.add(404)
    if path in _UPLOADS and method == "post":
        out |= {400, 413, 415, 422}
    if method == "post" and path in ("/v1/banks", "/c/banks"):
        out.add(409)
    if path.startswith("/v1/text/"):  # the service has no text index
        out.add(404)
    if method == "post" and path == "/v1/reviews":  # a record id the store does not know
        out.add(404)
    return out


def install(app: FastAPI, anonymous: bool) -> None:
    """Replace ``app.openapi`` by the completed document (built once)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        components["schemas"]["JsonValue"] = JSON_VALUE_SCHEMA
        components["securitySchemes"] = SECURITY_SCHEMES
        for name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(name, None)
        roles = _roles(app)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                role = roles.get((path, method.upper()))
                if role is not None:
                    op["security"] = [{"ApiKeyHeader": []}, {"BearerKey": []}] + ([{}] if anonymous else [])
                    op["description"] = (op.get("description", "") + f"\n\nRole: `{role}`.").strip()
                responses = op.setdefault("responses", {})
                for status in sorted(_statuses(path, method, op, role)):
                    entry: dict[str, Any] = {"description": _DESCRIPTIONS[status], "content": error}
                    if status == 429 or (status == 503 and path in _UPLOADS):
                        entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                            "description": "seconds"}}
                    if str(status) in responses and status != 422:
                        responses[str(status)].setdefault("description", _DESCRIPTIONS[status])
                        continue
                    responses[str(status)] = entry
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]


def _roles(app: FastAPI) -> dict[tuple[str, str], str]:
    """(path, method) -> the role its key needs, from the routes' ``role`` dependency."""
    out: dict[tuple[str, str], str] = {}
    for route in flat_routes(app):
        if not isinstance(route, APIRoute):
            continue
        for dep in route.dependant.dependencies:
            needed = getattr(dep.call, "assay_role", None)
            if needed is not None:
                for method in route.methods:
                    out[(route.path_format, method)] = needed
    return out


def flat_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route of the app with its full path, routers included."""
    return list(_iter_included_route_candidates(app.routes))
