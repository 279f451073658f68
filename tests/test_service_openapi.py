"""Issue 13, item 6: the OpenAPI document against a real 2-worker `assay serve`
(SQLite and PostgreSQL), checked by a bounded schemathesis run with every check:
no server error, every status documented, every answer in its documented schema
(errors in the one error shape, with a documented code), the API key scheme
honoured, and `Allow` naming every method of a path.

Schema-valid data must be accepted, except where what is wrong cannot be written in
a schema: a hash of the wrong length for its type, an unknown signal type in a
mapping key, bytes that are not an image. Those answers are allowed by their error
code only (``CONTENT_REJECTIONS``), never by status alone."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.specs.openapi import checks as st_checks  # noqa: E402

from assay.service import Settings, create_app  # noqa: E402
from assay.service.errors import CODES  # noqa: E402
from service_cluster import KINDS, Cluster, cluster  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# (status, code) answers to schema-valid requests that are still right to refuse.
CONTENT_REJECTIONS = {
    (400, "invalid-signal"),  # a hex value of the wrong length for its signal type
    (400, "unknown-signal-type"),  # a signal type as a mapping key (entries, /m/compare)
    (400, "invalid-bank-input"),  # content rules the store checks (e.g. a meta too large)
    (400, "bad-input"),  # an upload that is not one file, an empty types= selection
    (400, "invalid-review"),  # a record_id that is not the id of the match sent with it
    (415, "unsupported-format"),  # bytes that are not an image, an empty upload
    (422, "decode-error"),  # an image that does not decode
    (422, "unsafe-input"),  # a model file that would run code
    (400, "import-rejected"),  # import lines that are not hashes
}


def _schema():  # noqa: ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(Settings(db="sqlite:///:memory:", access_log=False))
    # Revoking keys is left out: a generated id may be the run's own key.
    return schemathesis.openapi.from_dict(app.openapi()).exclude(method="DELETE", path="/v1/keys/{key_id}")


schema = _schema()


@pytest.fixture(scope="module", params=KINDS)
def fuzz(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp(f"openapi-{request.param}")
    with cluster(request.param, tmp, ASSAY_SERVICE_RATE_LIMIT="1e9", ASSAY_SERVICE_RATE_BURST="1e9",
                 ASSAY_SERVICE_MAX_UPLOAD_BYTES="1000000") as c:
        with c.client("admin") as adm:
            assert adm.post("/v1/banks", json={"name": "seed"}).status_code == 201
            r = adm.post("/v1/banks/seed/entries", json={"content_id": "e1", "signals": {"pdq": "f" * 64}})
            assert r.status_code == 201
        yield c


@schema.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, fuzz: Cluster) -> None:  # noqa: ANN001
    headers = fuzz.h("admin")
    response = case.call(base_url=fuzz.url, headers=headers, timeout=30)
    case.validate_response(response, headers=headers, excluded_checks=[st_checks.positive_data_acceptance],
                           transport_kwargs={"base_url": fuzz.url, "headers": headers, "timeout": 30})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    ctype = (response.headers.get("content-type") or [""])[0]
    if response.status_code >= 400 and ctype.startswith("application/json"):
        assert response.json()["error"]["code"] in CODES
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and response.status_code in (400, 413, 415, 422):
        code = response.json()["error"]["code"]
        assert (response.status_code, code) in CONTENT_REJECTIONS, (
            f"schema-valid request refused: {case.method} {case.path} -> {response.status_code} {code}: "
            f"{response.text[:300]}")


def test_document_names_the_key_scheme_and_every_error(tmp_path: Path) -> None:
    doc = create_app(Settings(db=str(tmp_path / "s.db"), access_log=False)).openapi()
    assert doc["components"]["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "assay_ followed by 43 characters (assay keys create)"}
    assert doc["components"]["securitySchemes"]["BearerKey"]["scheme"] == "bearer"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            keyless = path in ("/status", "/status/live", "/ready")
            assert ("security" in op) != keyless, (method, path)
            if not keyless:
                for status in ("401", "403", "429", "503"):
                    assert op["responses"][status]["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, (method, path, status)
            if "422" in op["responses"]:  # never FastAPI's own validation shape
                assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_document_says_which_meta_values_are_refused(tmp_path: Path) -> None:
    """A bank entry's meta (any JSON) holds no control character but tab and newline in a
    string at any depth, and none in a key: the document says so (a schema-driven client
    that generated one used to get a 422 for a request the document called valid)."""
    import jsonschema

    doc = create_app(Settings(db=str(tmp_path / "s.db"), access_log=False)).openapi()
    root = {"$ref": "#/components/schemas/EntryIn", "components": doc["components"]}
    check = jsonschema.Draft202012Validator(root)
    base = {"content_id": "e1", "signals": {"pdq": "f" * 64}}
    for good in ({"a": "x\ty\nz"}, {"a": [1, 2.5, True, None, {"b": ["c"]}]}, {}):
        assert check.is_valid(base | {"meta": good}), good
    for bad in ({"a": "x\x01"}, {"a": [{"b": "\x7f"}]}, {"a": {"b\nc": 1}}, {"a\x00": 1}):
        assert not check.is_valid(base | {"meta": bad}), bad
