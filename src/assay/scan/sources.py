"""Where a distributed scan's inputs come from: local paths, URLs of any fsspec file
system (``file://``, ``s3://``, ``gs://``, ``az://``) and manifests that list them.

A local path is walked exactly as the local engine walks it (the same items, the same
path strings, so both engines give the same records). A URL naming one object is one
item; a URL naming a prefix is listed (one process lists it: for billions of keys give a
manifest instead). A manifest is a plain list (one path or URL a line, ``#`` comments)
or an S3 Inventory ``manifest.json`` (its CSV data files, gzip or not, read as streams;
Parquet and ORC with pyarrow); nothing lists the bucket. A distributed scan cuts manifests
into segments (``manifest_segments``: the client reads only ``manifest.json`` or a list's
size) that workers read (``segment_items``); ``manifest_items`` reads a whole manifest in
one process.

Credentials come from where fsspec and its back-ends look (environment, ``~/.aws``,
instance roles, ``FSSPEC_S3_*`` settings): never from the command line, never in a report.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import AssayError
from .walk import WalkItem, walk

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(s: str) -> bool:
    return bool(_URL.match(s))


def local_path(s: str) -> str | None:
    """The local path an input names (a plain path or a file:// URL), else None."""
    if not is_url(s):
        return s
    if s.startswith("file://"):
        return unquote(s[len("file://"):])
    return None


@dataclass(frozen=True)
class RemoteItem:
    """One object in a store, read by a worker. ``size`` when the listing gave it."""

    url: str
    size: int | None = None
    problem: str | None = None
    is_input: bool = False
    mtime: str | None = None  # the store's last-modified time (UTC ISO 8601) when the listing gave it


Item = WalkItem | RemoteItem


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) for a URL; a clear error if its back-end
    is not installed."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        proto = url.split("://", 1)[0]
        extra = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(proto, proto)
        raise AssayError(f"{url}: no file system for {proto}:// ({exc})",
                         hint=f"pip install {extra}") from None
    except ValueError as exc:
        raise AssayError(f"{url}: {exc}") from None


_MTIME_KEYS = ("LastModified", "last_modified", "updated", "mtime")


def object_mtime(info: Any) -> str | None:
    """An object's last-modified time from an fsspec listing or info (s3fs ``LastModified``,
    adlfs ``last_modified``, gcsfs ``updated``; a datetime, an ISO string or epoch seconds)
    as UTC ISO 8601, the form of the file-system times; None when the store gave none."""
    from datetime import UTC, datetime

    if not isinstance(info, dict):
        return None
    for k in _MTIME_KEYS:
        v = info.get(k)
        if v is None or v == "":
            continue
        try:
            if isinstance(v, datetime):
                dt = v
            elif isinstance(v, int | float) and not isinstance(v, bool):
                dt = datetime.fromtimestamp(float(v), UTC)
            elif isinstance(v, str):
                dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            else:
                continue
        except (ValueError, OverflowError, OSError):
            continue
        if dt.tzinfo is None:  # stores answer in UTC; a naive value is UTC
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat()
    return None


def _join(proto: str, path: str) -> str:
    return f"{proto}://{path}"


def list_url(url: str) -> Iterator[RemoteItem]:
    """The objects a URL names: itself, or everything under it (sorted)."""
    fs, path = filesystem(url)
    proto = url.split("://", 1)[0]
    try:
        info = fs.info(path)
    except FileNotFoundError:
        yield RemoteItem(url, problem="cannot access: no such object or prefix", is_input=True)
        return
    except Exception as exc:  # back-ends raise their own types (permissions, network)
        yield RemoteItem(url, problem=f"cannot access: {type(exc).__name__}: {exc}", is_input=True)
        return
    if info.get("type") != "directory":
        yield RemoteItem(url, info.get("size"), is_input=True, mtime=object_mtime(info))
        return
    try:
        found = fs.find(path, detail=True)
    except Exception as exc:
        yield RemoteItem(url, problem=f"cannot list: {type(exc).__name__}: {exc}", is_input=True)
        return
    for key in sorted(found):
        d = found[key]
        if d.get("type") == "directory":
            continue
        yield RemoteItem(_join(proto, key), d.get("size"), mtime=object_mtime(d))


def items(inputs: Iterable[str], manifests: Iterable[str] = (), *, follow_symlinks: bool = False,
          skip: Iterable[str | Path] = ()) -> Iterator[Item]:
    """Every item of a scan, in a fixed order (the partitions depend on it): the local
    inputs walked together (as the local engine walks them, ``skip`` left out), then each
    URL, then each manifest's entries."""
    inputs = list(inputs)
    local = [p for p in (local_path(s) for s in inputs) if p is not None]
    if local:
        yield from walk(local, follow_symlinks=follow_symlinks, skip=skip)
    for s in inputs:
        if local_path(s) is None:
            yield from list_url(s)
    for m in manifests:
        yield from manifest_items(m, follow_symlinks=follow_symlinks)


# ----------------------------------------------------------------------------- manifests cut for the workers

SEGMENT_BYTES = 64 << 20  # bytes of a plain (uncompressed) list one worker reads into one plan


@dataclass(frozen=True)
class Segment:
    """A piece of a manifest that one worker reads (``split`` in partitions.py): a byte
    range of a plain list (the lines that start in it), or one whole data file of an S3
    Inventory or a gzip list (compressed and columnar files cannot be cut). ``version``
    (size and ETag or modification time, or the inventory's MD5 of the data file) lets a
    resumed scan refuse a manifest that changed."""

    manifest: str  # the manifest it belongs to (messages, custody)
    url: str  # the file read
    kind: str  # "list", "csv", "parquet" or "orc"
    start: int = 0
    end: int | None = None  # exclusive; None: to the end of the file
    columns: tuple[int | None, ...] = ()  # csv: Bucket, Key, Size, LastModifiedDate column indexes
    version: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "url": self.url, "kind": self.kind, "start": self.start,
                "end": self.end, "columns": list(self.columns), "version": self.version}

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> Segment:
        return cls(d["manifest"], d["url"], d["kind"], int(d["start"]), d["end"],
                   tuple(d.get("columns") or ()), d.get("version", ""))


def _is_json_manifest(url: str) -> bool:
    return url.rsplit("/", 1)[-1].endswith(".json")


def _read_json_manifest(url: str) -> dict[str, Any]:
    """An S3 Inventory ``manifest.json``, or a clear error naming the file."""
    with _open_text(url) as f:
        try:
            return json.load(f)
        except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a 5,000-digit number, deep nesting
            raise AssayError(f"{url}: not a JSON manifest: {type(exc).__name__}: {exc}") from None


def manifest_segments(url: str, segment_bytes: int | None = None) -> list[Segment]:
    """The segments of a manifest, as the client plans them: it reads an S3 Inventory's
    ``manifest.json`` (small: it names the data files) or asks a plain list's size (one
    HEAD or stat), never the lines themselves."""
    if _is_json_manifest(url):
        return _inventory_segments(url, _read_json_manifest(url))
    size, version = _size_and_version(url)
    path = local_path(url)
    where = url if path is None else os.path.abspath(path)  # workers need not share the client's folder
    if url.endswith(".gz") or size == 0:
        return [Segment(url, where, "list", version=version)]
    step = max(int(segment_bytes or SEGMENT_BYTES), 1)
    return [Segment(url, where, "list", a, min(a + step, size), version=version) for a in range(0, size, step)]


def _size_and_version(url: str) -> tuple[int, str]:
    path = local_path(url)
    if path is not None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise AssayError(f"{url}: cannot read manifest: {exc.strerror or exc}") from None
        return st.st_size, f"{st.st_size}:{st.st_mtime_ns}"
    fs, p = filesystem(url)
    try:
        info = fs.info(p)
    except Exception as exc:
        raise AssayError(f"{url}: cannot read manifest: {type(exc).__name__}: {exc}") from None
    if info.get("type") == "directory":
        raise AssayError(f"{url}: cannot read manifest: it is a folder or prefix, not a file")
    size = int(info.get("size") or 0)
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or object_mtime(info) or ""
    return size, f"{size}:{str(tag).strip(chr(34))}"


def _inventory_segments(url: str, doc: Any) -> list[Segment]:
    if not isinstance(doc, dict) or "files" not in doc or "fileSchema" not in doc:
        raise AssayError(f"{url}: a JSON manifest must be an S3 Inventory manifest.json "
                         "(with 'files' and 'fileSchema')")
    fmt = str(doc.get("fileFormat", "CSV")).upper()
    if fmt not in ("CSV", "PARQUET", "ORC"):
        raise AssayError(f"{url}: S3 Inventory in {fmt} format; CSV, Parquet and ORC inventories are read",
                         hint="configure the inventory with CSV output, or give a plain list of URLs")
    columns: tuple[int | None, ...] = ()
    if fmt == "CSV":
        cols = [c.strip() for c in str(doc["fileSchema"]).split(",")]
        try:
            columns = (cols.index("Bucket"), cols.index("Key"),
                       cols.index("Size") if "Size" in cols else None,
                       cols.index("LastModifiedDate") if "LastModifiedDate" in cols else None)
        except ValueError:
            raise AssayError(f"{url}: the inventory's fileSchema has no Bucket and Key columns") from None
    return [Segment(url, data_url, fmt.lower(), columns=columns,
                    version=f"{f.get('size', '')}:{f.get('MD5checksum', '')}")
            for data_url, f in zip(_inventory_files(url, doc), doc["files"], strict=True)]


def segment_items(seg: Segment, *, follow_symlinks: bool = False) -> Iterator[Item]:
    """The items of one segment, as a worker reads them: the same items, in the same
    order, as ``manifest_items`` gives for that part of the manifest. A data file that
    cannot be read (or breaks off) ends as an item with a problem naming it: an error
    record and an unreadable input, never a failed scan."""
    try:
        if seg.kind == "list":
            yield from _list_items(seg, follow_symlinks)
        elif seg.kind == "csv":
            yield from _csv_rows(seg.url, seg.columns)
        else:
            yield from _columnar_file(seg.url, seg.kind.upper())
    except AssayError as exc:
        yield RemoteItem(seg.url, problem=f"manifest {redact_url(seg.manifest)}: {exc.message}", is_input=True)
    except (OSError, EOFError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        yield RemoteItem(seg.url, problem=f"manifest {redact_url(seg.manifest)}: cannot read: "
                         f"{type(exc).__name__}: {exc}", is_input=True)


def redact_url(url: str) -> str:
    from .custody import redact

    return redact(url)


def _entry_items(entry: str, follow_symlinks: bool) -> Iterator[Item]:
    """What one line of a plain list names."""
    path = local_path(entry)
    if path is not None:
        yield from walk([path], follow_symlinks=follow_symlinks)
    else:
        yield RemoteItem(entry, is_input=True)


def _list_items(seg: Segment, follow_symlinks: bool) -> Iterator[Item]:
    """The lines of a plain list that start in [start, end): the line broken by ``start``
    belongs to the segment before, the line broken by ``end`` to this one."""
    if seg.end is None:  # the whole file (gzip lists)
        with _open_text(seg.url) as f:
            for line in f:
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    yield from _entry_items(entry, follow_symlinks)
        return
    path = local_path(seg.url)
    if path is not None:
        try:
            raw: Any = open(path, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise AssayError(f"{seg.url}: cannot read manifest: {exc.strerror or exc}") from None
    else:
        fs, p = filesystem(seg.url)
        try:
            raw = fs.open(p, "rb", block_size=min(max(seg.end - seg.start + 1, 1 << 16), 8 << 20))
        except Exception as exc:
            raise AssayError(f"{seg.url}: cannot read manifest: {type(exc).__name__}: {exc}") from None
    with raw:
        pos = max(seg.start - 1, 0)
        raw.seek(pos)
        if seg.start > 0:
            pos += len(raw.readline())  # the rest of the line the segment before owns
        while pos < seg.end:
            line = raw.readline()
            if not line:
                break
            pos += len(line)
            entry = line.decode("utf-8", "replace").strip()
            if entry and not entry.startswith("#"):
                yield from _entry_items(entry, follow_symlinks)


def _open_text(url: str) -> io.TextIOBase:
    path = local_path(url)
    if path is not None:
        try:
            raw: Any = open(path, "rb")  # noqa: SIM115 (wrapped and closed by the caller)
        except OSError as exc:
            raise AssayError(f"{url}: cannot read manifest: {exc.strerror or exc}") from None
    else:
        fs, p = filesystem(url)
        try:
            raw = fs.open(p, "rb")
        except Exception as exc:
            raise AssayError(f"{url}: cannot read manifest: {type(exc).__name__}: {exc}") from None
    if url.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def manifest_items(url: str, *, follow_symlinks: bool = False) -> Iterator[Item]:
    """The entries of a manifest: an S3 Inventory manifest.json, or a plain list."""
    if _is_json_manifest(url):
        yield from _inventory_items(url, _read_json_manifest(url))
        return
    with _open_text(url) as f:
        for n, line in enumerate(f, 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if local_path(entry) is not None:
                yield from walk([local_path(entry) or entry], follow_symlinks=follow_symlinks)
            elif is_url(entry):
                yield RemoteItem(entry, is_input=True)
            else:
                raise AssayError(f"{url}: line {n}: not a path or URL: {entry[:200]!r}")


def _inventory_items(url: str, doc: Any) -> Iterator[RemoteItem]:
    """Objects of an S3 Inventory report: ``fileSchema`` names the CSV columns (Bucket, Key,
    Size, ...); keys in the data files are URL-encoded; data files live in the destination
    bucket."""
    if not isinstance(doc, dict) or "files" not in doc or "fileSchema" not in doc:
        raise AssayError(f"{url}: a JSON manifest must be an S3 Inventory manifest.json "
                         "(with 'files' and 'fileSchema')")
    fmt = str(doc.get("fileFormat", "CSV")).upper()
    if fmt in ("PARQUET", "ORC"):
        yield from _columnar_inventory(url, doc, fmt)
        return
    if fmt != "CSV":
        raise AssayError(f"{url}: S3 Inventory in {fmt} format; CSV, Parquet and ORC inventories are read",
                         hint="configure the inventory with CSV output, or give a plain list of URLs")
    cols = [c.strip() for c in str(doc["fileSchema"]).split(",")]
    try:
        ci_bucket, ci_key = cols.index("Bucket"), cols.index("Key")
    except ValueError:
        raise AssayError(f"{url}: the inventory's fileSchema has no Bucket and Key columns") from None
    columns = (ci_bucket, ci_key, cols.index("Size") if "Size" in cols else None,
               cols.index("LastModifiedDate") if "LastModifiedDate" in cols else None)
    for data_url in _inventory_files(url, doc):
        yield from _csv_rows(data_url, columns)


def _csv_rows(data_url: str, columns: Sequence[int | None]) -> Iterator[RemoteItem]:
    """The objects of one CSV inventory data file (gzip or not), read as a stream."""
    ci_bucket, ci_key, ci_size, ci_mtime = columns
    assert ci_bucket is not None and ci_key is not None
    with _open_text(data_url) as fh:
        for row in csv.reader(fh):
            if len(row) <= max(ci_bucket, ci_key):
                continue
            size = None
            if ci_size is not None and ci_size < len(row) and row[ci_size].isdigit():
                size = int(row[ci_size])
            mtime = None
            if ci_mtime is not None and ci_mtime < len(row):
                mtime = object_mtime({"LastModified": row[ci_mtime]})
            yield RemoteItem(f"s3://{row[ci_bucket]}/{unquote(row[ci_key])}", size, mtime=mtime)


def _inventory_files(url: str, doc: dict[str, Any]) -> Iterator[str]:
    dest = str(doc.get("destinationBucket", ""))
    dest = dest.split(":::", 1)[1] if ":::" in dest else dest
    for f in doc["files"]:
        key = f.get("key") if isinstance(f, dict) else None
        if not key:
            raise AssayError(f"{url}: an entry of 'files' has no key")
        yield f"s3://{dest}/{key}" if dest else key


_COLUMNAR_BATCH = 65_536  # rows read at a time from a Parquet or ORC inventory file


def _columnar_inventory(url: str, doc: dict[str, Any], fmt: str) -> Iterator[RemoteItem]:
    """Objects of a Parquet or ORC S3 Inventory (columns ``bucket``, ``key``, optional
    ``size`` and ``last_modified_date``; keys are not URL-encoded in these formats), read a
    batch of rows (Parquet) or a stripe (ORC) at a time. Needs pyarrow."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise AssayError(f"{url}: an S3 Inventory in {fmt} format needs pyarrow",
                         hint="pip install 'assay[parquet]', or configure the inventory with CSV output") from None
    for data_url in _inventory_files(url, doc):
        yield from _columnar_file(data_url, fmt)


def _columnar_file(data_url: str, fmt: str) -> Iterator[RemoteItem]:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise AssayError(f"{data_url}: an S3 Inventory in {fmt} format needs pyarrow",
                         hint="pip install 'assay[parquet]', or configure the inventory with CSV output") from None
    path = local_path(data_url)
    try:
        if path is not None:
            raw: Any = open(path, "rb")  # noqa: SIM115 (closed below)
        else:
            fs, p = filesystem(data_url)
            raw = fs.open(p, "rb")
    except AssayError:
        raise
    except Exception as exc:
        raise AssayError(f"{data_url}: cannot read inventory file: {type(exc).__name__}: {exc}") from None
    with raw:
        yield from _columnar_rows(data_url, raw, fmt)


def _columnar_rows(data_url: str, raw: Any, fmt: str) -> Iterator[RemoteItem]:
    import pyarrow as pa

    def batches() -> Iterator[Any]:
        if fmt == "PARQUET":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(raw)
            names = set(pf.schema_arrow.names)
            yield names
            yield from pf.iter_batches(batch_size=_COLUMNAR_BATCH,
                                       columns=[c for c in ("bucket", "key", "size", "last_modified_date") if c in names])
        else:
            import pyarrow.orc as orc

            of = orc.ORCFile(raw)
            names = set(of.schema.names)
            yield names
            cols = [c for c in ("bucket", "key", "size", "last_modified_date") if c in names]
            for i in range(of.nstripes):
                yield of.read_stripe(i, columns=cols)

    try:
        it = batches()
        names = next(it)
        if not {"bucket", "key"} <= names:
            raise AssayError(f"{data_url}: the {fmt} inventory file has no bucket and key columns")
        for batch in it:
            cols = batch.to_pydict()
            sizes = cols.get("size") or [None] * batch.num_rows
            times = cols.get("last_modified_date") or [None] * batch.num_rows
            for bucket, key, size, mtime in zip(cols["bucket"], cols["key"], sizes, times, strict=True):
                if not bucket or not key:
                    continue
                yield RemoteItem(f"s3://{bucket}/{key}", int(size) if isinstance(size, int) and size >= 0 else None,
                                 mtime=object_mtime({"LastModified": mtime}))
    except AssayError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise AssayError(f"{data_url}: not a readable {fmt} inventory file: {exc}") from None


_STREAM_ABOVE = 64 << 20  # objects larger than this are streamed to disk, smaller ones read in one GET


def fetch_object(url: str, max_bytes: int, tmpdir: Path, suffix: str = "",
                 size: int | None = None, info: dict[str, Any] | None = None) -> tuple[Path | None, str | None, int]:
    """Copy an object into ``tmpdir``; (path, None, size) or (None, problem, size) when it
    cannot be read or is larger than ``max_bytes`` (never read past the limit). With the
    size known from the listing, a small object costs one GET (no HEAD); without it, the
    object's info (HEAD) is put into ``info`` when given (its last-modified time)."""
    fs, path = filesystem(url)
    try:
        if size is None:
            meta = fs.info(path)
            if info is not None:
                info.update(meta)
            size = meta.get("size")
        if size is not None and size > max_bytes:
            return None, f"too-large:{size}", int(size)
        fd, name = tempfile.mkstemp(dir=tmpdir, suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                data = b""
                if size is not None and 0 < size <= _STREAM_ABOVE:
                    # one ranged GET, never more than the listing said (+1 to see a lie)
                    data = fs.cat_file(path, start=0, end=size + 1)
                    out.write(data)
                if size is None or size > _STREAM_ABOVE or len(data) > size or (size == 0 and fs.size(path)):
                    out.seek(0)
                    out.truncate()
                    with fs.open(path, "rb", block_size=8 << 20) as src:
                        while chunk := src.read(8 << 20):
                            out.write(chunk)
                            if out.tell() > max_bytes:
                                break
        except BaseException:
            os.unlink(name)
            raise
    except FileNotFoundError:
        return None, "cannot access: no such object", 0
    except Exception as exc:  # back-ends raise their own types (permissions, network)
        return None, f"cannot read: {type(exc).__name__}: {exc}", int(size or 0)
    got = os.path.getsize(name)
    if got > max_bytes:
        os.unlink(name)
        return None, f"too-large:{got}", got
    return Path(name), None, got


# Objects fetched ahead of the analysis, within one partition (see Prefetch).
BATCH_OBJECTS = 16  # objects per batch of concurrent ranged GETs
BATCH_BYTES = 16 << 20  # listed bytes per batch
BATCHES_AHEAD = 2  # batches fetched (on disk) beyond the one being analysed


Fetched = tuple[Path | None, str | None, int, dict[str, Any]]


class Prefetch:
    """The objects of one partition, fetched by one background thread while the caller
    analyses the previous ones: consecutive small objects of known size go in batches of
    concurrent ranged GETs (one ``cat_ranges`` call each, so one trip through the file
    system's event loop for many objects), any other object alone as ``fetch_object``
    reads it. At most ``BATCHES_AHEAD`` batches wait on disk beyond the one in use
    (``BATCH_OBJECTS`` objects, ``BATCH_BYTES`` listed bytes each), so memory and
    temporary disk stay bounded whatever the partition holds. ``take(i)`` gives item
    ``i``'s copy exactly as ``fetch_object`` would have (same problems, same limit)."""

    def __init__(self, items: Sequence[Any], max_bytes: int, tmpdir: Path,
                 suffix: Callable[[str], str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.max_bytes, self.tmpdir, self.suffix = max_bytes, tmpdir, suffix
        self.groups: list[list[tuple[int, RemoteItem]]] = []
        cur: list[tuple[int, RemoteItem]] = []
        cur_bytes = 0
        for i, it in enumerate(items):
            if not isinstance(it, RemoteItem) or it.problem:
                continue
            batchable = it.size is not None and 0 < it.size <= min(max_bytes, _STREAM_ABOVE)
            if cur and (not batchable or len(cur) >= BATCH_OBJECTS or cur_bytes + (it.size or 0) > BATCH_BYTES
                        or it.url.split("://", 1)[0] != cur[0][1].url.split("://", 1)[0]):
                self.groups.append(cur)
                cur, cur_bytes = [], 0
            cur.append((i, it))
            cur_bytes += it.size or 0
            if not batchable:
                self.groups.append(cur)
                cur, cur_bytes = [], 0
        if cur:
            self.groups.append(cur)
        self.group_of = {i: g for g, group in enumerate(self.groups) for i, _ in group}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-prefetch")
        self.futures: dict[int, Any] = {}
        self.submitted = 0
        self.cancelled = False

    def _top_up(self, current: int) -> None:
        while self.submitted < len(self.groups) and self.submitted <= current + BATCHES_AHEAD:
            self.futures[self.submitted] = self.pool.submit(self._fetch, self.groups[self.submitted])
            self.submitted += 1

    def take(self, i: int) -> Fetched:
        g = self.group_of[i]
        self._top_up(g)
        got = self.futures[g].result()
        fetched = got.pop(i)
        if not got:
            del self.futures[g]
        return fetched

    def _fetch(self, group: list[tuple[int, RemoteItem]]) -> dict[int, Fetched]:
        out: dict[int, Fetched] = {}
        if self.cancelled:
            return out
        if len(group) > 1:
            fs, _ = filesystem(group[0][1].url)
            paths = [filesystem(it.url)[1] for _, it in group]
            try:
                datas: list[Any] = fs.cat_ranges(paths, [0] * len(group), [int(it.size or 0) + 1 for _, it in group],
                                                 on_error="return")
            except Exception as exc:  # noqa: BLE001 (each object is then read alone, with its own problem)
                datas = [exc] * len(group)
            for (i, it), data in zip(group, datas, strict=True):
                # a failure, or an object that grew since it was listed: read alone, as fetch_object does
                if isinstance(data, BaseException) or len(data) > int(it.size or 0):
                    continue
                fd, name = tempfile.mkstemp(dir=self.tmpdir, suffix=self.suffix(it.url))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                out[i] = (Path(name), None, len(data), {})
        for i, it in group:
            if i not in out:
                info: dict[str, Any] = {}
                out[i] = (*fetch_object(it.url, self.max_bytes, self.tmpdir, self.suffix(it.url), it.size, info), info)
        return out

    def close(self) -> None:
        """Stop fetching (what is being fetched finishes); the caller removes ``tmpdir``."""
        self.cancelled = True
        for f in self.futures.values():
            f.cancel()
        self.pool.shutdown(wait=True)
