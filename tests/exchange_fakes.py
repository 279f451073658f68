"""Loopback stand-ins for the hash-sharing programmes' APIs, serving the documented
response shapes (NCMEC hash sharing v2 XML, ThreatExchange /threat_updates JSON) from an
in-memory list of updates, so that python-threatexchange's real clients can be driven
without the internet. Faults (429, 500, malformed pages, slow pages) are injected by
request number or page.

Shapes follow the programmes' public documentation and the library's own test data.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

NCMEC_NS = "https://hashsharing.ncmec.org/hashsharing/v2"
_NCMEC_DATE = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class NcmecEntry:
    id: str
    member_id: int
    timestamp: int  # epoch seconds
    kind: str = "image"  # image | video
    fingerprints: dict[str, str] = field(default_factory=dict)  # lower-case tag -> value
    classification: str | None = "A1"
    deleted: bool = False


@dataclass
class TeUpdate:
    id: int
    type: str  # HASH_PDQ, HASH_MD5, ...
    indicator: str
    last_updated: int
    should_delete: bool = False
    status: str = "MALICIOUS"  # MALICIOUS | NON_MALICIOUS | UNKNOWN
    tags: list[str] = field(default_factory=list)
    owner: int = 494491891138576
    descriptor_id: int = 0


class FakeServer:
    """Base: a ThreadingHTTPServer on 127.0.0.1 with a request log and fault injection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path+query, headers, body
        self.faults: dict[int, str] = {}  # page index (0-based) -> "429" | "500" | "malformed" | "badrecord"
        self.fault_once = True
        self.page_delay = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self) -> None:
                server._record("GET", self)
                server.handle(self, "GET", b"")

            def do_POST(self) -> None:
                body = self._body()
                server._record("POST", self, body)
                server.handle(self, "POST", body)

            def do_PUT(self) -> None:
                body = self._body()
                server._record("PUT", self, body)
                server.handle(self, "PUT", body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _record(self, method: str, h: BaseHTTPRequestHandler, body: bytes = b"") -> None:
        with self.lock:
            self.requests.append((method, h.path, dict(h.headers), body))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fault_for(self, page: int) -> str | None:
        with self.lock:
            f = self.faults.get(page)
            if f is not None and self.fault_once:
                del self.faults[page]
            return f

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
             headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        raise NotImplementedError

    def apply_fault(self, h: BaseHTTPRequestHandler, fault: str | None, ctype: str) -> bool:
        """Answer with the fault (True), or go on serving (False)."""
        if fault == "429":
            self.send(h, 429, b'{"error": "rate limited"}', ctype, {"Retry-After": "0"})
            return True
        if fault == "400":
            self.send(h, 400, b'{"error": {"message": "Invalid parameter", "code": 100}}', ctype)
            return True
        if fault == "500":
            self.send(h, 500, b"oops", "text/plain")
            return True
        if fault == "malformed":
            self.send(h, 200, b"<<this is not what was documented", ctype)
            return True
        if fault is not None and fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
        return False


# --------------------------------------------------------------------------------- NCMEC
class NcmecServer(FakeServer):
    """GET /v2/entries?from=&to= (entries with from <= timestamp < to, by id), paged by
    ``start``/``size``/``max`` through <paging><next>; PUT .../feedback records feedback;
    GET /v2/status; GET /v2/feedback/{TYPE}/reasons."""

    def __init__(self, entries: list[NcmecEntry] | None = None, page_size: int = 1000,
                 user: str = "user", password: str = "pw") -> None:
        super().__init__()
        self.entries = list(entries or [])
        self.page_size = page_size
        self.user, self.password = user, password
        self.pages_served = 0
        self.feedback: list[tuple[str, bytes]] = []

    def _auth_ok(self, h: BaseHTTPRequestHandler) -> bool:
        import base64

        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return h.headers.get("Authorization") == want

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        if not self._auth_ok(h):
            self.send(h, 401, b"unauthorized", "text/plain")
            return
        url = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if method == "PUT" and url.path.endswith("/feedback"):
            self.feedback.append((url.path, body))
            self.send(h, 200, f'<submissionResult xmlns="{NCMEC_NS}"/>'.encode(), "application/xml")
            return
        if url.path.endswith("/v2/status"):
            self.send(h, 200, f'<status xmlns="{NCMEC_NS}"><member id="1">Test ESP</member></status>'.encode(),
                      "application/xml")
            return
        if "/v2/feedback/" in url.path and url.path.endswith("/reasons"):
            # nested as python-threatexchange 1.2.17 reads it (a child <availableFeedbackReasons>)
            self.send(h, 200, (f'<feedbackReasons xmlns="{NCMEC_NS}"><availableFeedbackReasons>'
                               '<reason guid="0000-1" name="Not the material" type="Pdq"/>'
                               '</availableFeedbackReasons></feedbackReasons>').encode(), "application/xml")
            return
        if not url.path.endswith("/v2/entries"):
            self.send(h, 404, b"not found", "text/plain")
            return
        lo = int(datetime.strptime(q["from"], _NCMEC_DATE).timestamp())
        hi = int(datetime.strptime(q["to"], _NCMEC_DATE).timestamp())
        start = int(q.get("start", 1))
        with self.lock:
            page = self.pages_served
        if self.apply_fault(h, self.fault_for(page), "application/xml"):
            return
        with self.lock:
            self.pages_served += 1
        if self.page_delay:
            time.sleep(self.page_delay)
        part, total = self.select(lo, hi, start - 1, self.page_size)
        nxt = ""
        if start - 1 + self.page_size < total:
            nxt = "/v2/entries?" + urlencode({"from": q["from"], "to": q["to"], "start": start + self.page_size,
                                              "size": self.page_size, "max": total})
        self.send(h, 200, self.entries_xml(part, nxt).encode(), "application/xml")

    def select(self, lo: int, hi: int, offset: int, size: int) -> tuple[list[NcmecEntry], int]:
        """The entries with lo <= timestamp < hi, in timestamp order: ``size`` of them from
        ``offset``, and how many there are in all."""
        chosen = sorted((e for e in self.entries if lo <= e.timestamp < hi), key=lambda e: e.timestamp)
        return chosen[offset:offset + size], len(chosen)

    @staticmethod
    def entries_xml(part: list[NcmecEntry], nxt: str) -> str:
        out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<queryResult xmlns="{NCMEC_NS}">']
        for kind in ("image", "video"):
            items = [e for e in part if e.kind == kind]
            if not items:
                continue
            mx = datetime.fromtimestamp(max(e.timestamp for e in items)).strftime(_NCMEC_DATE)
            out.append(f'<{kind}s count="{len(items)}" maxTimestamp="{mx}">')
            for e in items:
                tag = f"deleted{kind.capitalize()}" if e.deleted else kind
                ts = datetime.fromtimestamp(e.timestamp).strftime(_NCMEC_DATE)
                out.append(f'<{tag}><member id="{e.member_id}">Member {e.member_id}</member>'
                           f"<timestamp>{ts}</timestamp><id>{escape(e.id)}</id>")
                if not e.deleted:
                    if e.classification:
                        out.append(f"<classification>{escape(e.classification)}</classification>")
                    out.append("<fingerprints>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in e.fingerprints.items())
                               + "</fingerprints>")
                out.append(f"</{tag}>")
            out.append(f"</{kind}s>")
        if nxt:
            out.append(f"<paging><next>{escape(nxt)}</next></paging>")
        out.append("</queryResult>")
        return "\n".join(out)


# ------------------------------------------------------------------------ ThreatExchange
class TeServer(FakeServer):
    """GET /{privacy_group}/threat_updates/?access_token=&start_time=&limit= -> Graph API
    JSON {data, paging: {next}}; the next URL carries the access token, as Graph API's
    do. POST /{descriptor_id}/?access_token= records reactions."""

    def __init__(self, updates: list[TeUpdate] | None = None, token: str = "1234567890|abcdefghijklmnopqrstuvwxyz",
                 privacy_group: int = 303636684709969, page_size: int | None = None) -> None:
        super().__init__()
        self.updates = list(updates or [])
        self.token = token
        self.privacy_group = privacy_group
        self.page_size = page_size
        self.pages_served = 0
        self.reactions: list[tuple[str, dict[str, list[str]]]] = []

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        url = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if method == "POST":
            form = parse_qs(body.decode())
            if q.get("access_token") != self.token and form.get("access_token", [""])[0] != self.token:
                self.send(h, 401, b'{"error": {"message": "Invalid OAuth access token"}}', "application/json")
                return
            self.reactions.append((url.path, form))
            self.send(h, 200, b'{"success": true}', "application/json")
            return
        if q.get("access_token") != self.token:
            self.send(h, 400, b'{"error": {"message": "Invalid OAuth access token", "code": 190}}',
                      "application/json")
            return
        if url.path.rstrip("/") != f"/{self.privacy_group}/threat_updates":
            self.send(h, 404, b'{"error": {"message": "Unknown path"}}', "application/json")
            return
        with self.lock:
            page = self.pages_served
        fault = self.fault_for(page)
        if self.apply_fault(h, fault, "application/json"):
            return
        if self.page_delay:
            time.sleep(self.page_delay)
        limit = self.page_size or int(q.get("limit") or 100)
        start_time = int(q["start_time"]) if q.get("start_time") else None
        after = int(q.get("after", 0))
        chosen = [u for u in sorted(self.updates, key=lambda u: (u.last_updated, u.id))
                  if start_time is None or u.last_updated >= start_time]
        part = chosen[after:after + limit]
        data = [self.update_json(u) for u in part]
        if fault == "badrecord" and data:
            data[len(data) // 2] = {"id": "not-a-number", "surprise": True}
        body_obj: dict[str, Any] = {"data": data}
        if after + limit < len(chosen):
            params = {"access_token": self.token, "limit": limit, "after": after + limit}
            if start_time is not None:
                params["start_time"] = start_time
            body_obj["paging"] = {"next": f"{self.base}{url.path}?{urlencode(params)}"}
        with self.lock:
            self.pages_served += 1
        self.send(h, 200, json.dumps(body_obj).encode(), "application/json")

    @staticmethod
    def update_json(u: TeUpdate) -> dict[str, Any]:
        d: dict[str, Any] = {"id": str(u.id), "indicator": u.indicator, "type": u.type,
                             "last_updated": u.last_updated, "should_delete": u.should_delete}
        if not u.should_delete:
            d["descriptors"] = {"data": [{
                "id": str(u.descriptor_id or u.id * 10), "owner": {"id": str(u.owner)}, "status": u.status,
                "tags": list(u.tags), "reactions": []}]}
        return d


# ------------------------------------------------------------------------------ StopNCII
@dataclass
class NciiRecord:
    signal_type: str  # ImagePDQ, VideoMD5, VideoTMK, ...
    value: str
    modified: int
    status: str = "Active"


class StopNciiServer(FakeServer):
    """GET /FetchHashes?startTimestamp=&pageSize=&nextPageToken= with the x-functions-key and
    Ocp-Apim-Subscription-Key headers -> {count, nextPageToken, nextSetTimestamp,
    hasMoreRecords, hashRecords: [...]}, records with lastModtimestamp >= startTimestamp."""

    def __init__(self, records: list[NciiRecord] | None = None, function_key: str = "fnkey1234",
                 subscription_key: str = "subkey5678", page_size: int = 2) -> None:
        super().__init__()
        self.records = list(records or [])
        self.function_key, self.subscription_key = function_key, subscription_key
        self.page_size = page_size

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        if (h.headers.get("x-functions-key") != self.function_key
                or h.headers.get("Ocp-Apim-Subscription-Key") != self.subscription_key):
            self.send(h, 401, b'{"message": "Access denied due to invalid subscription key"}', "application/json")
            return
        url = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/FetchHashes":
            self.send(h, 404, b"{}", "application/json")
            return
        start = int(q.get("startTimestamp", 0))
        offset = int(q.get("nextPageToken") or 0)
        chosen = sorted((r for r in self.records if r.modified >= start), key=lambda r: r.modified)
        part = chosen[offset:offset + self.page_size]
        more = offset + self.page_size < len(chosen)
        body_obj = {
            "count": len(part), "nextPageToken": str(offset + self.page_size) if more else None,
            "nextSetTimestamp": (part[-1].modified if part else start), "hasMoreRecords": more,
            "hashRecords": [{"lastModtimestamp": r.modified, "signalType": r.signal_type, "hashValue": r.value,
                             "hashStatus": r.status, "caseNumbers": {}, "CSPFeedbacks": []} for r in part],
        }
        self.send(h, 200, json.dumps(body_obj).encode(), "application/json")


# --------------------------------------------------------------- Tech Against Terrorism
@dataclass
class TatRecord:
    id: int
    algorithm: str  # PDQ | MD5
    digest: str
    updated_on: float
    file_type: str = "jpg"
    deleted: bool = False


class TatServer(FakeServer):
    """POST /token-auth/tcap/ (form username, password) -> {token}; GET
    /api/hash-list/v2/all?limit=&offset=&order=asc&after=TS,ID with the Bearer token ->
    {count, next (the next page's query string, as the client appends it), previous,
    checkpoint "TS,ID" of the page's last record, results}."""

    def __init__(self, records: list[TatRecord] | None = None, user: str = "tat", password: str = "tatpw",
                 page_size: int = 2) -> None:
        super().__init__()
        self.records = list(records or [])
        self.user, self.password = user, password
        self.page_size = page_size
        self.token = "jwt-token-0123456789"

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        url = urlsplit(h.path)
        if method == "POST" and url.path == "/token-auth/tcap/":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if (form.get("username"), form.get("password")) != (self.user, self.password):
                self.send(h, 400, b'{"non_field_errors": ["Unable to log in with provided credentials."]}',
                          "application/json")
                return
            self.send(h, 200, json.dumps({"token": self.token}).encode(), "application/json")
            return
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            self.send(h, 401, b'{"detail": "Invalid token."}', "application/json")
            return
        if url.path != "/api/hash-list/v2/all":
            self.send(h, 404, b"{}", "application/json")
            return
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        after = q.get("after") or ""
        key = (float(after.split(",")[0]), int(after.split(",")[1])) if after else (float("-inf"), -1)
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", self.page_size))
        chosen = sorted((r for r in self.records if (r.updated_on, r.id) > key), key=lambda r: (r.updated_on, r.id))
        part = chosen[offset:offset + limit]
        more = offset + limit < len(chosen)
        last = part[-1] if part else None
        body_obj = {
            "count": len(chosen), "next": f"limit={limit}&offset={offset + limit}" if more else None,
            "previous": None, "checkpoint": f"{last.updated_on},{last.id}" if last else after,
            "results": [{"hash_digest": r.digest, "algorithm": r.algorithm, "ideology": "islamist",
                         "file_type": r.file_type, "deleted": r.deleted, "updated_on": r.updated_on,
                         "created_on": "2024-01-01T00:00:00Z", "id": r.id} for r in part],
        }
        self.send(h, 200, json.dumps(body_obj).encode(), "application/json")
