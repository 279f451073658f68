"""Image uploads weighed from their first kilobytes, before the rest is read.

A multipart upload to an image route is parsed as it streams in (python-multipart's
streaming parser, the one Starlette uses). As soon as the first file part holds
enough bytes for its image header (a PNG says its size in its first 33 bytes, a
JPEG after its metadata segments), the header is read off the event loop; an image
declaring more pixels than the budget is answered ``413 too-large`` at once,
without reading, parsing or spooling the rest of the body (the connection is
closed when body remains unread). Anything else (within the budget, not an image,
a header not found in the first ``PROBE_MAX`` bytes, not multipart) goes on to the
route unchanged, the bytes read so far replayed first: the route's own checks stay
the authority, this only makes the refusal of a bomb cheap and early.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.concurrency import run_in_threadpool

from ..config import Limits
from ..errors import AssayError, TooLarge
from ..media import decode
from .errors import assay_error_dict, error_dict
from .ratelimit import ASGIApp, BodyTimeout, BodyTooLarge, Message, Receive, Scope, Send

try:  # python-multipart >= 0.0.13 names its package python_multipart
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # pragma: no cover - older python-multipart
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

# Header reads are tried when a file part holds this many bytes, then each time it
# has grown 4x, up to PROBE_MAX (a JPEG's SOF comes after its EXIF/ICC segments,
# each at most 64 KB; cameras write a few).
PROBE_FIRST = 1024
PROBE_MAX = 1024 * 1024


class _FirstFilePart:
    """Callbacks of the streaming parser: the bytes of the first part with a filename."""

    def __init__(self) -> None:
        self.header_field = b""
        self.header_value = b""
        self.in_file = False
        self.found = False  # the first file part began
        self.complete = False  # ... and ended
        self.name = "upload"
        self.data = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.field, "on_header_value": self.value,
                "on_header_end": self.header_end, "on_part_data": self.part_data, "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self.header_field = self.header_value = b""

    def field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        if not self.found and self.header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self.header_value)
            filename = options.get(b"filename")
            if filename is not None:
                self.found = self.in_file = True
                name = filename.decode("utf-8", "replace").replace("\n", " ").replace("\r", " ")[:200]
                self.name = name or "upload"
        self.header_field = self.header_value = b""

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file and len(self.data) < PROBE_MAX:
            self.data += data[start:min(end, start + PROBE_MAX - len(self.data))]

    def part_end(self) -> None:
        if self.in_file:
            self.in_file = False
            self.complete = True


def declared_pixels(data: bytes, name: str, limits: Limits) -> str:
    """"over" when the header declares more pixels than ``limits`` allow (raises the
    TooLarge to send), "ok" when it is within, "more" when the header is not complete
    in ``data``, "other" when this is not an image the budget applies to."""
    if data[:2] == b"\xff\x0a" or data[4:8] == b"JXL ":
        return "other"  # JPEG XL: refused by the route, never opened here (its reader decodes on open)
    try:
        decode.open_image(data, name, limits)
    except TooLarge as exc:
        if "pixels" in exc.message:
            raise
        return "other"  # too many bytes: the route says so
    except AssayError:
        return "more"
    except Exception:  # Pillow on a cut header: struct errors, EOF, ...
        return "more"
    return "ok"


class UploadProbeMiddleware:
    """Refuses multipart image uploads over the pixel budget from their header."""

    def __init__(self, app: ASGIApp, *, paths: Callable[[str], bool], limits: Callable[[Scope], Limits],
                 on_refused: Callable[[Scope], None] | None = None) -> None:
        self.app = app
        self.paths = paths
        self.limits = limits
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not self.paths(scope["path"]):
            await self.app(scope, receive, send)
            return
        boundary = _boundary(scope)
        if boundary is None:
            await self.app(scope, receive, send)
            return
        part = _FirstFilePart()
        parser = MultipartParser(boundary, part.callbacks())
        seen: list[Message] = []
        next_probe = PROBE_FIRST
        more_body = True
        limits = self.limits(scope)
        while more_body:
            try:
                message = await receive()
            except (BodyTooLarge, BodyTimeout):
                raise  # answered by the body limits
            except Exception:  # the body cannot be read (as FastAPI answers a broken form)
                await _send_error(scope, send, 400, error_dict(
                    "bad-request", "the request body is not valid multipart/form-data or JSON",
                    scope.get("state", {}).get("request_id")), close=True)
                return
            seen.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the route hears it
            more_body = bool(message.get("more_body", False))
            try:
                parser.write(message.get("body", b""))
            except Exception:  # malformed multipart: the route's parser says why
                break
            if not part.found or (len(part.data) < next_probe and not part.complete and more_body):
                continue
            try:
                verdict = await run_in_threadpool(declared_pixels, bytes(part.data), part.name, limits)
            except TooLarge as exc:
                if self.on_refused is not None:
                    self.on_refused(scope)
                await _refuse(scope, send, exc, close=more_body)
                return
            if verdict != "more" or part.complete or len(part.data) >= PROBE_MAX:
                break
            next_probe = len(part.data) * 4
        await self.app(scope, _replay(seen, receive), send)


def _boundary(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            ctype, options = parse_options_header(value)
            if ctype == b"multipart/form-data" and options.get(b"boundary"):
                return bytes(options[b"boundary"])
            return None
    return None


def _replay(seen: list[Message], receive: Receive) -> Receive:
    pending = list(seen)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse(scope: Scope, send: Send, exc: TooLarge, close: bool) -> None:
    await _send_error(scope, send, 413, assay_error_dict(exc, scope.get("state", {}).get("request_id")), close)


async def _send_error(scope: Scope, send: Send, status: int, error: dict, close: bool) -> None:
    body = orjson.dumps(error)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the body is never read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
