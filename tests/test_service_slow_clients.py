"""Body limits and stalled clients against a real `assay serve` (uvicorn, its HTTP
parser, the middleware stack and the routes), driven by a raw socket client that sends
part of a request and then stops, as a slow or hostile client would."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.settings import Settings
from service_helpers import Server, running

GUARD = 60.0  # a socket timeout against hanging, not a timing: every answer comes far sooner


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("slow")
    db = str(tmp / "store.db")
    store = open_store(Settings(db=db))
    try:
        keys = {role: create_key(store.engine, role, role)[1] for role in ("match", "curate")}
        store.create_bank("b")
    finally:
        store.close()
    # A short body timeout keeps the stalled requests short; the test never measures it.
    env = {"ASSAY_SERVICE_BODY_TIMEOUT": "1", "ASSAY_SERVICE_MAX_JSON_BYTES": "50000"}
    with running(db, 1, tmp, **env) as srv:
        yield srv, keys, tmp / "data" / "service-tmp"  # running() sets ASSAY_DATA_DIR=tmp/data


def _connect(srv: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD)
    return s


def _response(s: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read one response (headers and a Content-Length body) from the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = s.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return status, headers, json.loads(body) if body else {}


def _status_ok(srv: Server) -> None:
    with _connect(srv) as s:
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _response(s)[0] == 200


def test_stalled_upload_gets_408_and_leaves_no_file(served: tuple[Server, dict[str, str], Path]) -> None:
    srv, keys, tmp_dir = served
    with _connect(srv) as s:
        # Headers and a first part of the body, then nothing: the import route is already
        # spooling the body to a temporary file when the client stalls.
        s.sendall((f"POST /v1/banks/b/import HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['curate']}\r\n"
                   "Content-Length: 1000000\r\n\r\n").encode() + b"0" * 64 + b"\n")
        status, headers, body = _response(s)
        assert status == 408, body
        assert body["error"]["code"] == "request-timeout"
        assert body["error"]["message"] == "no request data for 1 s; the upload was abandoned"
        assert body["error"]["request_id"] == headers["x-request-id"]
        assert s.recv(1) == b""  # and the server closed the connection
    assert not list(tmp_dir.glob("upload-*"))  # the partial upload was removed
    _status_ok(srv)  # the worker serves on


def test_stalled_image_upload_gets_408(served: tuple[Server, dict[str, str], Path]) -> None:
    srv, keys, _ = served
    with _connect(srv) as s:
        s.sendall((f"POST /v1/hash HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['match']}\r\n"
                   "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 200000\r\n\r\n"
                   "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n").encode()
                  + b"\xff\xd8\xff" + bytes(1000))
        status, _, body = _response(s)
        assert status == 408 and body["error"]["code"] == "request-timeout", body
    _status_ok(srv)


def test_chunked_body_over_the_limit_is_refused_before_it_ends(
        served: tuple[Server, dict[str, str], Path]) -> None:
    srv, keys, _ = served
    with _connect(srv) as s:
        s.sendall((f"POST /v1/lookup/batch HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['match']}\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        # 60,000 bytes in chunks, over the 50,000-byte limit, and no final 0-length chunk:
        # the body never ends, so a 413 can only come from the count while it streams in.
        for _ in range(6):
            part = b" " * 10_000
            s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        status, _, body = _response(s)
        assert status == 413, body
        assert body["error"] == {**body["error"], "code": "too-large",
                                 "message": "request body exceeds the limit of 50000 bytes"}
    # The same body under the limit, ended properly, is parsed (and rejected as bad JSON):
    # the 413 above was the limit, not the content.
    with _connect(srv) as s:
        s.sendall((f"POST /v1/lookup/batch HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['match']}\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                   "Connection: close\r\n\r\n").encode())
        for _ in range(4):
            s.sendall(b"2710\r\n" + b" " * 10_000 + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        status, _, body = _response(s)
        assert status == 422 and body["error"]["code"] == "invalid-request", body
    _status_ok(srv)


def test_declared_length_over_the_limit_is_refused_before_a_byte_is_read(
        served: tuple[Server, dict[str, str], Path]) -> None:
    srv, keys, _ = served
    with _connect(srv) as s:
        s.sendall((f"POST /v1/lookup/batch HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['match']}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n").encode())
        status, _, body = _response(s)  # no body byte was sent
        assert status == 413, body
        assert body["error"]["message"] == "request body of 60000 bytes exceeds the limit of 50000 bytes"
