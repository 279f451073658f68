"""Bank index snapshots for workers on other processes or machines (the Dask engine).

The client writes the indexes it loaded (PDQ multi-index, exact keys) as .npy files with a
``meta.json`` naming every file's SHA-256; the snapshot's id is the SHA-256 of that list, so
the same bank content gives the same id. The snapshot is published once next to the scan's
output (``<out>/_banks/<id>/``); each worker machine copies it once into a local cache
(one process downloads under a file lock, every file checked against its checksum), and
every worker process on that machine maps the same files read-only: the OS keeps one copy
in memory. Nothing of the index is pickled into a task: a task names the snapshot id.

Workers only search. Which bank, content id and note a hit is (``Store.resolve``) is
asked of the store in one place, the client.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AssayError
from .index import ExactIndex, HammingIndex
from .matcher import Hit, Query, search_indexes

if TYPE_CHECKING:
    from .matcher import Matcher

FORMAT = "assay-bank-snapshot/1"
CACHE_ENV = "ASSAY_WORKER_CACHE"


def cache_root() -> Path:
    """Where a machine keeps the snapshots its workers use (``ASSAY_WORKER_CACHE``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("assay")) / "bank-snapshots"


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _snapshot_id(meta: dict[str, Any]) -> str:
    """SHA-256 of what the snapshot holds: its files' checksums, types and threshold."""
    key = {k: meta[k] for k in ("format", "types", "max_bank_threshold", "files")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def write_snapshot(matcher: Matcher, root: Path | None = None) -> tuple[str, Path]:
    """Snapshot the matcher's indexes into ``root/<id>`` (default: this machine's cache,
    so workers started here find it without a copy). Returns (id, directory)."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="snapshot-", dir=root))
    try:
        types: dict[str, dict[str, Any]] = {}
        for name, h in matcher._hamming.items():
            if len(h):
                h.save(tmp / name)
                types[name] = {"index": "hamming", "entries": len(h)}
        for name, e in matcher._exact.items():
            if len(e):
                e.save(tmp / name)
                types[name] = {"index": "exact", "entries": len(e)}
        thresholds = matcher.store.bank_thresholds()
        max_bank = max([t for t in thresholds.values() if t is not None], default=0)
        files = {str(p.relative_to(tmp)): _sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        meta = {"format": FORMAT, "types": types, "max_bank_threshold": max_bank, "files": files}
        sid = _snapshot_id(meta)
        meta["id"] = sid
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        final = root / sid
        if (final / "meta.json").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                tmp.rename(final)
            except OSError:  # another scan made the same snapshot meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
        return sid, final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(local: Path, fs: Any, remote: str) -> None:
    """Copy a snapshot to ``remote`` (a folder in the output store) unless it is there;
    ``meta.json`` goes last, so its presence means the snapshot is whole."""
    meta = json.loads((local / "meta.json").read_text())
    if fs.exists(f"{remote}/meta.json"):
        return
    for rel in meta["files"]:
        dest = f"{remote}/{rel}"
        fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local / rel), dest)
    fs.put_file(str(local / "meta.json"), f"{remote}/meta.json")


def fetch(fs: Any, remote: str, sid: str) -> Path:
    """The snapshot ``sid`` in this machine's cache: copied from ``remote`` by the first
    worker process that needs it (the others wait on the lock), every file verified."""
    root = cache_root()
    final = root / sid
    if (final / "meta.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{sid}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "meta.json").is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f"{sid[:12]}-partial-", dir=root))
        try:
            fs.get_file(f"{remote}/meta.json", str(tmp / "meta.json"))
            meta = json.loads((tmp / "meta.json").read_text())
            for rel, digest in meta["files"].items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{remote}/{rel}", str(dest))
                if _sha256_file(dest) != digest:
                    raise AssayError(f"bank snapshot {sid}: {rel} does not match its checksum",
                                     hint="the copy in the output store is damaged; delete it and scan again")
            if meta.get("id") != sid or _snapshot_id(meta) != sid:
                raise AssayError(f"bank snapshot {remote}: its meta.json names {meta.get('id')!r}, not {sid}")
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


@dataclass
class ShippedBanks:
    """The indexes of one snapshot, mapped read-only: searches, never resolves."""

    sid: str
    hamming: dict[str, HammingIndex]
    exact: dict[str, ExactIndex]
    max_bank: int

    def search(self, queries: Sequence[Query], threshold: int | None, include_low_quality: bool) -> list[Hit]:
        return search_indexes(self.hamming, self.exact, self.max_bank, queries, threshold, include_low_quality)


def open_snapshot(directory: Path) -> ShippedBanks:
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise AssayError(f"{directory}: not an {FORMAT} bank snapshot")
    hamming: dict[str, HammingIndex] = {}
    exact: dict[str, ExactIndex] = {}
    for name, t in meta["types"].items():
        if t["index"] == "hamming":
            hamming[name] = HammingIndex.load(directory / name, mmap=True)
        else:
            exact[name] = ExactIndex.load(directory / name, mmap=True)
    return ShippedBanks(meta["id"], hamming, exact, int(meta["max_bank_threshold"]))


_LOADED: dict[str, ShippedBanks] = {}
_LOCK = threading.Lock()


def worker_banks(fs: Any, remote: str, sid: str) -> ShippedBanks:
    """The snapshot for this worker process: opened once, kept for the following tasks."""
    with _LOCK:
        banks = _LOADED.get(sid)
        if banks is None:
            banks = open_snapshot(fetch(fs, remote, sid))
            _LOADED.clear()  # one scan's banks at a time
            _LOADED[sid] = banks
        return banks
