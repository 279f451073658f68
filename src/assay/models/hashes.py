"""Community model hashes (AutoV1/V2/V3, BLAKE3, CRC32) and SHA-256/MD5, in one read.

Every value is computed from the file's bytes, never taken from its metadata; the
values a file claims about itself are compared separately by ``check_embedded``.

One pass feeds every hasher from the same buffers. hashlib, CRC-32 (ISA-L) and blake3
release the GIL on large buffers, so each hasher runs on its own thread and the
two cores share the work (MD5 alone is about as slow as ``sha256sum``); a small
ring of reusable buffers bounds memory whatever the file size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import blake3

from ..errors import InputError
from ..report.model import HashCheck, ModelHashes
from ..report.schema import SignalValue
from ..signals import AUTOV1_EMPTY_REASON
from ..sniff import crc32

AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
CHUNK = 8 * 1024 * 1024
RING = 4  # buffers in flight: 32 MiB of memory at most
_INLINE_BELOW = 2 * CHUNK  # small files: threads cost more than they save


class _Hasher(Protocol):
    def update(self, data: Any, /) -> object: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = crc32(data, self.value)


class _Sink:
    """A hasher fed only the part of the stream at or after ``start``."""

    def __init__(self, hasher: _Hasher, start: int = 0) -> None:
        self.hasher = hasher
        self.start = start

    def feed(self, view: memoryview, offset: int) -> None:
        skip = self.start - offset
        if skip <= 0:
            self.hasher.update(view)
        elif skip < len(view):
            self.hasher.update(view[skip:])


def compute_hashes(
    path: str | Path,
    data_offset: int | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> ModelHashes:
    """Hash ``path`` in one read. ``data_offset`` is where a safetensors data section
    starts (8 + header length); without it AutoV3 is not defined and stays None.
    ``progress`` is called with the number of bytes read so far."""
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise InputError(p, f"cannot open for hashing: {exc.strerror or exc}") from exc
    with f:
        try:
            size = _size(f)
        except OSError as exc:
            raise InputError(p, f"cannot stat for hashing: {exc.strerror or exc}") from exc
        if data_offset is not None and not 0 <= data_offset <= size:
            raise InputError(p, f"data offset {data_offset} lies outside the file ({size} bytes)")
        sha = hashlib.sha256()
        md5 = hashlib.md5()
        sha1 = hashlib.sha1(usedforsecurity=False)
        b3 = blake3.blake3()
        crc = _Crc32()
        data_sha = hashlib.sha256() if data_offset is not None else None
        sinks = [_Sink(md5), _Sink(sha1), _Sink(sha), _Sink(b3), _Sink(crc)]
        if data_sha is not None:
            sinks.insert(2, _Sink(data_sha, data_offset or 0))
        autov1 = bytearray()
        try:
            if size < _INLINE_BELOW:
                total = _read_inline(f, sinks, autov1, progress)
            else:
                total = _read_threaded(f, sinks, autov1, progress)
        except OSError as exc:
            raise InputError(p, f"read failed while hashing: {exc.strerror or exc}") from exc
    if total != size:
        raise InputError(p, f"file changed while it was hashed ({size} bytes, read {total})")
    digest = sha.hexdigest()
    crc_bytes = crc.value.to_bytes(4, "big")
    data_hex = data_sha.hexdigest() if data_sha is not None else None
    return ModelHashes(
        size=size,
        sha256=digest,
        # A1111 seeks to 1 MiB and reads up to 64 KiB: a shorter file hashes what is
        # there, and a file under 1 MiB hashes nothing (sha256 of b"" = e3b0c442).
        autov1=hashlib.sha256(bytes(autov1)).hexdigest()[:8],
        autov1_degenerate=autov1_degenerate(size),
        autov2=digest[:10],
        autov3=data_hex[:12] if data_hex else None,
        data_sha256=data_hex,
        data_offset=data_offset,
        blake3=b3.hexdigest(),
        crc32=crc_bytes.hex(),
        crc32_civitai=crc_bytes[::-1].hex(),
        md5=md5.hexdigest(),
        sha1=sha1.hexdigest(),
    )


def autov1_degenerate(size: int) -> str | None:
    """Why the AutoV1 of a file of ``size`` bytes identifies nothing, or None."""
    if size <= AUTOV1_OFFSET:
        return AUTOV1_EMPTY_REASON
    if size < AUTOV1_OFFSET + AUTOV1_LENGTH:
        return (f"AutoV1 of a partial window: the file is shorter than 1 MiB + 64 KiB, so AutoV1 hashes "
                f"only its last {size - AUTOV1_OFFSET} bytes")
    return None


def _size(f: Any) -> int:
    import os

    return os.fstat(f.fileno()).st_size


def _capture_autov1(view: memoryview, offset: int, out: bytearray) -> None:
    lo = max(offset, AUTOV1_OFFSET)
    hi = min(offset + len(view), AUTOV1_OFFSET + AUTOV1_LENGTH)
    if lo < hi:
        out += view[lo - offset : hi - offset]


def _read_inline(
    f: Any, sinks: list[_Sink], autov1: bytearray, progress: Callable[[int], None] | None
) -> int:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while True:
        n = f.readinto(buf)
        if not n:
            return offset
        chunk = view[:n]
        _capture_autov1(chunk, offset, autov1)
        for sink in sinks:
            sink.feed(chunk, offset)
        offset += n
        if progress is not None:
            progress(offset)


def _read_threaded(
    f: Any, sinks: list[_Sink], autov1: bytearray, progress: Callable[[int], None] | None
) -> int:
    """The reader fills a ring of buffers; one thread per hasher consumes each buffer
    in order and hands it back when the last hasher is done with it."""
    buffers = [bytearray(CHUNK) for _ in range(RING)]
    views = [memoryview(b) for b in buffers]
    free: queue.Queue[int] = queue.Queue()
    for i in range(RING):
        free.put(i)
    pending = [0] * RING
    lock = threading.Lock()
    errors: list[BaseException] = []
    inboxes: list[queue.Queue[tuple[int, int, int] | None]] = [queue.Queue() for _ in sinks]

    def release(i: int) -> None:
        with lock:
            pending[i] -= 1
            done = pending[i] == 0
        if done:
            free.put(i)

    def work(sink: _Sink, inbox: queue.Queue[tuple[int, int, int] | None]) -> None:
        while (item := inbox.get()) is not None:
            i, n, offset = item
            try:
                if not errors:
                    sink.feed(views[i][:n], offset)
            except BaseException as exc:  # reported by the reader after the pass
                errors.append(exc)
            finally:
                release(i)

    threads = [
        threading.Thread(target=work, args=(s, q), daemon=True, name="assay-hash")
        for s, q in zip(sinks, inboxes, strict=True)
    ]
    for t in threads:
        t.start()
    offset = 0
    try:
        while not errors:
            i = free.get()
            n = f.readinto(buffers[i])
            if not n:
                break
            _capture_autov1(views[i][:n], offset, autov1)
            pending[i] = len(sinks)
            for inbox in inboxes:
                inbox.put((i, n, offset))
            offset += n
            if progress is not None:
                progress(offset)
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return offset


def hash_signals(hashes: ModelHashes) -> list[SignalValue]:
    """One SignalValue per hash kind, so a bank entry matches by any of them. A
    degenerate AutoV1 (file too short for its window) is left out: it would match
    unrelated files."""
    out = [SignalValue(type="sha256", value=hashes.sha256)]
    if hashes.autov1_degenerate is None:
        out.append(SignalValue(type="autov1", value=hashes.autov1))
    out.append(SignalValue(type="autov2", value=hashes.autov2))
    if hashes.autov3:
        out.append(SignalValue(type="autov3", value=hashes.autov3))
    out += [
        SignalValue(type="blake3", value=hashes.blake3),
        SignalValue(type="crc32", value=hashes.crc32),
        SignalValue(type="md5", value=hashes.md5),
    ]
    if hashes.sha1:
        out.append(SignalValue(type="sha1", value=hashes.sha1))
    return out


# What each embedded value is supposed to cover, and how to recompute it.
_LEGACY_NOTE = (
    "kohya's AutoV1-style hash of a re-serialisation holding only the ss_* metadata; "
    "the saved file's header is longer, so a mismatch alone is expected and not evidence "
    "of tampering"
)


def check_embedded(metadata: Mapping[str, Any], hashes: ModelHashes) -> list[HashCheck]:
    """Compare the hashes a file claims about itself with the recomputed ones."""
    checks: list[HashCheck] = []
    model_hash = metadata.get("sshs_model_hash")
    if isinstance(model_hash, str):
        checks.append(
            _compare(
                "sshs_model_hash",
                model_hash,
                hashes.data_sha256,
                "SHA-256 of the safetensors data section (kohya's addnet hash; AutoV3 is its first 12 hex)",
            )
        )
    legacy = metadata.get("sshs_legacy_hash")
    if isinstance(legacy, str):
        check = _compare("sshs_legacy_hash", legacy, hashes.autov1, _LEGACY_NOTE)
        if check.status == "mismatch":
            check = check.model_copy(update={"status": "not-comparable"})
        checks.append(check)
    spec = metadata.get("modelspec.hash_sha256")
    if isinstance(spec, str):
        checks.append(
            _compare(
                "modelspec.hash_sha256",
                spec,
                hashes.data_sha256,
                "SHA-256 of the tensor data without metadata (ModelSpec); equals the "
                "data-section hash when the tensors are stored in the writer's order",
            )
        )
    return checks


def _compare(key: str, embedded: str, recomputed: str | None, covers: str) -> HashCheck:
    value = embedded.strip().lower().removeprefix("0x")
    if recomputed is None or not value:
        status = "not-comparable"
    elif len(value) <= len(recomputed) and recomputed.startswith(value) and len(value) >= 8:
        status = "match"
    else:
        status = "mismatch"
    return HashCheck(
        key=key, embedded=embedded, recomputed=recomputed, status=status, covers=covers
    )
