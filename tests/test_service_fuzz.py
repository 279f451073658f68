"""Property tests of the API from its own OpenAPI spec (schemathesis, in-process ASGI):
whatever the request, never a 500 and always the documented error shape."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, reject, settings

schemathesis = pytest.importorskip("schemathesis")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from assay.service import Settings, create_app  # noqa: E402
from assay.service.app import open_store  # noqa: E402
from assay.service.auth import create_key  # noqa: E402

# starlette's TestClient and httpx warn about how schemathesis passes cookies and bodies.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_STATE: dict[str, object] = {}


@pytest.fixture(scope="module")
def running_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tmp = tmp_path_factory.mktemp("fuzz")
    # Module scope runs before the per-test data dir: keep every file under tmp. No
    # rate limit and no penalty for refused uploads: every case reaches its route.
    cfg = Settings(db=str(tmp / "store.db"), refresh_interval=0.1, rate_limit=1e9, rate_burst_seconds=1e9,
                   max_upload_bytes=1_000_000, access_log=False, upload_refusal_limit=0, snapshot_dir=str(tmp / "index"),
                   tmp_dir=str(tmp / "service-tmp"))
    store = open_store(cfg)
    _, key = create_key(store.engine, "fuzz-admin", "admin")
    store.create_bank("seed")
    store.add_entry("seed", "e1", {"pdq": "f" * 64, "md5": "0" * 32})
    store.close()
    app = create_app(cfg)
    with TestClient(app):  # runs the lifespan: store open, index loaded
        _STATE["app"] = app
        _STATE["key"] = key
        yield


def _schema():  # noqa: ANN202
    # The spec is static: build it from an app that never starts.
    app = create_app(Settings(db="sqlite:///:memory:", access_log=False))
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()


@pytest.mark.usefixtures("running_app")
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # noqa: ANN001
    # No context manager: entering one would run the lifespan (a second store) again.
    client = TestClient(_STATE["app"], raise_server_exceptions=False)  # type: ignore[arg-type]
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers={"X-API-Key": str(_STATE["key"])})
    try:
        response = client.request(**kwargs)
    except httpx.InvalidURL:  # a generated query longer than httpx sends: never reaches the server
        reject()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "request_id"} <= set(body["error"])


def test_spec_is_at_a_stable_path(tmp_path: Path) -> None:
    cfg = Settings(db=str(tmp_path / "s.db"), access_log=False)
    with TestClient(create_app(cfg)) as c:
        spec = c.get("/openapi.json").json()
    assert spec["info"]["title"] == "assay" and spec["openapi"].startswith("3.")
