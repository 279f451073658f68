"""In-memory indexes that banks are matched through: Hamming radius search and exact keys.

``HammingIndex`` answers "which bank entries lie within Hamming distance r of this
PDQ hash?" exactly (never an approximate miss) at tens of millions of entries.
It is a multi-index hash (Norouzi et al., "Fast search in Hamming space with
multi-index hashing", CVPR 2012): the code is cut into m chunks; by pigeonhole an
entry within distance r of the query agrees with it within floor(r/m) bits on at
least one chunk, so probing each chunk's table with every key at most floor(r/m)
bits away from the query's chunk finds every candidate, and the full distance
decides. At r=31 with 16 chunks of 16 bits that is 17 probes per chunk.

Storage is a few flat arrays (see ``_mih`` for the exact layout): the codes, the
caller's ids, and per chunk a CSR table (offsets into a list of entries grouped by
chunk value). Two table layouts: "filtered" entries (16 bytes) carry their row and
96 more bits of the code, so most candidates are rejected without a random read of
their code (3-4x the lookups/s); "rows" entries are the row alone (4 bytes). An
index uses "filtered" while its tables fit in ``fast_table_bytes`` (1 GiB by
default, ~4M PDQ hashes; env ASSAY_INDEX_FAST_TABLE_MB) and "rows" beyond, so 10M
PDQ hashes take ~1.1 GB instead of ~3 GB. Rows are kept sorted by id, so removals find their row with a
binary search and equal distances come out ordered by id for free.

Updates never rebuild on the lookup path. New entries go to a small append
buffer that every search scans by brute force; when the buffer outgrows a
fraction of the main part, both are merged into a new main part (a linear
rebuild) on a background thread while adds, removals and searches go on, and
published with a single reference swap (entries added meanwhile stay in the
buffer, removals made meanwhile are replayed onto the new part). An add larger
than the buffer limit (a bulk load) merges at once in the caller. Removals flip a tombstone
flag; merges drop tombstoned rows. A search uses whichever state was published
when it started, so it sees every add/remove that returned before it began.

``ExactIndex`` maps fixed-width keys (MD5, SHA-256, model hashes) to ids with a
sorted array of 8-byte key prefixes (binary search) plus a dict for recent adds.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np

from ..errors import InputError, StoreError
from . import _mih

__all__ = ["ExactIndex", "HammingIndex"]

_FORMAT = "assay-hamming-index"
_FORMAT_VERSION = 3  # 2: meta names the table layout ("rows" or "filtered"); 3: int32 offsets
_LAYOUTS = ("rows", "filtered")
_MAX_ROWS = 2**31 - 1  # row numbers are 32-bit in the tables and packed with distances when sorted


# --------------------------------------------------------------------------- helpers


def _as_ids(ids: np.ndarray | Iterable[int], what: str = "ids") -> np.ndarray:
    """1-D int64 array from an array or iterable of integers, or ValueError."""
    if isinstance(ids, np.ndarray):
        arr = ids
    else:
        try:
            arr = np.fromiter((int(i) for i in ids), dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{what} must be integers: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} must fit in int64")
    return arr.astype(np.int64, copy=False)


def _duplicates(ids: np.ndarray) -> np.ndarray:
    s = np.sort(ids)
    return np.unique(s[1:][s[1:] == s[:-1]])


def _shown(ids: np.ndarray, limit: int = 5) -> str:
    head = ", ".join(str(int(i)) for i in ids[:limit])
    return head + (f" (and {len(ids) - limit} more)" if len(ids) > limit else "")


def _check_radius(radius: object, bits: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, Integral):
        raise ValueError(f"radius must be an integer, got {radius!r}")
    r = int(radius)
    if not 0 <= r <= bits:
        raise ValueError(f"radius must be between 0 and {bits}, got {r}")
    return r


def _merge_sorted(
    ids_a: np.ndarray, ids_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a and b in the id-sorted union of two sorted, disjoint id arrays."""
    pos_b = np.searchsorted(ids_a, ids_b) + np.arange(len(ids_b))
    from_b = np.zeros(len(ids_a) + len(ids_b), dtype=bool)
    from_b[pos_b] = True
    return np.flatnonzero(~from_b), pos_b


# --------------------------------------------------------------------------- Hamming


@dataclass(frozen=True)
class _Main:
    """The CSR part: immutable except ``alive`` (tombstones are flipped in place)."""

    codes: np.ndarray  # (n, W) uint64
    ids: np.ndarray  # (n,) int64, strictly increasing
    table: np.ndarray  # (m, n) int32 rows, or (m, n, 2) uint64 filter bits and row: see _mih
    offsets: np.ndarray  # (m, 2**chunk_bits + 1) int32
    alive: np.ndarray  # (n,) bool

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    def tombstone(self, ids: np.ndarray) -> int:
        """Mark the live rows with these ids removed; return how many there were."""
        if not self.n:
            return 0
        pos = np.searchsorted(self.ids, ids)
        inside = pos < self.n
        pos = pos[inside][self.ids[pos[inside]] == ids[inside]]
        pos = np.unique(pos[self.alive[pos]])
        self.alive[pos] = False
        return len(pos)


@dataclass(frozen=True)
class _View:
    """What a search reads: published as one reference, so it is always consistent."""

    main: _Main
    buf_codes: np.ndarray  # (capacity, W) uint64; rows [:buf_n] are in use
    buf_ids: np.ndarray
    buf_alive: np.ndarray
    buf_n: int


class HammingIndex:
    """Exact radius search over fixed-width binary codes (PDQ: 256 bits).

    Entries are ``(code, id)`` pairs; ids are int64, chosen by the caller and unique
    among live entries. Safe for concurrent searches while one thread at a time
    adds or removes (writers are serialised by an internal lock).
    """

    #: The buffer is merged into the main part once it holds more rows than
    #: ``max(buffer_min, buffer_fraction * len(main))``. Each search scans the
    #: buffer, so it must stay small next to a query's ~40k candidates at 10M;
    #: each merge rebuilds the main part (~2 s at 10M), so it must not be tiny.
    buffer_min: int = 1 << 14
    buffer_fraction: float = 1 / 128
    #: Tombstoned rows are dropped at the next add-triggered merge once they exceed
    #: this fraction of the main part.
    dead_fraction: float = 0.25
    #: Merge on a background thread when small adds fill the buffer (the refresh
    #: loop of a service must not stall for the seconds a rebuild takes at 10M).
    background_merge: bool = True
    #: The "filtered" table layout is used while the tables need at most this many
    #: bytes (16 per entry and chunk), "rows" (4) beyond.
    fast_table_bytes: int = 1 << 30
    #: Probe the chunk tables only while they would visit less than this fraction
    #: of all rows; past it (radius >= 48 with 16-bit chunks) a linear scan is faster.
    scan_fraction: float = 0.1

    def __init__(self, bits: int = 256, chunk_bits: int = 16) -> None:
        if isinstance(bits, bool) or not isinstance(bits, Integral) or bits <= 0 or bits % 64:
            raise ValueError(f"bits must be a positive multiple of 64, got {bits!r}")
        if chunk_bits not in (4, 8, 16):
            raise ValueError(f"chunk_bits must be 4, 8 or 16, got {chunk_bits!r}")
        self.bits = int(bits)
        self.chunk_bits = int(chunk_bits)
        self._words = self.bits // 64
        self._chunks = self.bits // self.chunk_bits
        # None: chosen by size at each build and search (_mih.kernel_for); tests pin one.
        self._pinned_kernel: _mih.Kernel | None = None
        env = os.environ.get("ASSAY_INDEX_FAST_TABLE_MB")
        if env is not None:
            try:
                self.fast_table_bytes = int(float(env) * (1 << 20))
            except ValueError:
                raise ValueError(f"ASSAY_INDEX_FAST_TABLE_MB must be a number of megabytes, got {env!r}") from None
        self._lock = threading.RLock()
        self._main = self._empty_main()
        self._main_dead = 0
        self._buf_codes = np.empty((0, self._words), dtype=np.uint64)
        self._buf_ids = np.empty(0, dtype=np.int64)
        self._buf_alive = np.empty(0, dtype=bool)
        self._buf_n = 0
        self._buf_dead = 0
        self._buf_rows: dict[int, int] = {}  # id -> buffer row, live entries only
        self._merging: threading.Thread | None = None
        self._removed_while_merging: list[np.ndarray] = []
        self._merge_error: BaseException | None = None
        self._publish()

    # -- public API -------------------------------------------------------------------
    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Add entries; they are matchable by the next search.

        ``codes`` is (n, bits//8) uint8 (the hash bytes, e.g. ``bytes.fromhex(pdq)``),
        ``ids`` n distinct int64 not already live in the index (a removed id may be
        added again).
        """
        words = self._as_words(codes, "codes")
        ids = _as_ids(ids)
        if len(ids) != len(words):
            raise ValueError(f"got {len(words)} codes but {len(ids)} ids")
        if not len(ids):
            return
        dups = _duplicates(ids)
        if len(dups):
            raise ValueError(f"ids must be unique; repeated: {_shown(dups)}")
        if len(ids) > self._buffer_limit():
            # A bulk load: merge at once, after any running merge. A failed background
            # merge is not this add's error (it is kept for wait_for_merge), so a
            # caller replaying a change set never sees it half applied.
            thread = self._merging
            if thread is not None:
                thread.join()
        with self._lock:
            live = self._live_ids_among(ids)
            if len(live):
                raise ValueError(f"ids already in the index: {_shown(live)}")
            limit = self._buffer_limit()
            if len(ids) > limit and self._merging is None:
                self._merge(words, ids)
                self._publish()
                return
            self._append(words, ids)
            self._publish()
            # Count removed buffer rows too: they are scanned until the next merge.
            due = self._buf_n > limit or self._main_dead > self.dead_fraction * max(self._main.n, 1)
            if not due or self._merging is not None:
                return
            if not self.background_merge:
                self._merge(np.empty((0, self._words), np.uint64), np.empty(0, np.int64))
                self._publish()
                return
            self._merging = threading.Thread(target=self._merge_in_background, name="assay-index-merge", daemon=True)
            self._merging.start()

    def remove(self, ids: np.ndarray | Iterable[int]) -> None:
        """Remove entries by id. Ids that are not in the index are ignored, so a
        stream of removals can be replayed."""
        ids = _as_ids(ids)
        if not len(ids):
            return
        with self._lock:
            if self._merging is not None:
                self._removed_while_merging.append(ids.copy())
            self._main_dead += self._main.tombstone(ids)
            if self._buf_rows:
                for i in ids.tolist():
                    row = self._buf_rows.pop(i, None)
                    if row is not None:
                        self._buf_alive[row] = False
                        self._buf_dead += 1

    def search(self, code: np.ndarray | bytes, radius: int = 31) -> tuple[np.ndarray, np.ndarray]:
        """Entries within ``radius`` of ``code``: (ids int64, distances int32),
        sorted by distance, then id."""
        if isinstance(code, (bytes, bytearray, memoryview)):
            code = np.frombuffer(bytes(code), dtype=np.uint8)
        if not isinstance(code, np.ndarray):
            raise ValueError(f"code must be bytes or a uint8 array, got {type(code).__name__}")
        if code.ndim == 1:
            code = code[None, :]
        if code.shape[0] != 1:
            raise ValueError(f"search takes one code, got shape {code.shape}; use search_many")
        return self.search_many(code, radius)[0]

    def search_many(
        self, codes: np.ndarray, radius: int = 31
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` for each row of ``codes`` ((q, bits//8) uint8) in one call."""
        qoff, ids, dists = self.search_flat(codes, radius)
        return [(ids[qoff[i] : qoff[i + 1]], dists[qoff[i] : qoff[i + 1]]) for i in range(len(qoff) - 1)]

    def search_flat(self, codes: np.ndarray, radius: int = 31) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search_many`` as three flat arrays ``(qoff, ids, dists)``: the hits of
        query i are ``ids[qoff[i]:qoff[i+1]]`` (sorted by distance, then id). For
        callers that handle many queries at once (no per-query arrays)."""
        queries = self._as_words(codes, "codes")
        r = _check_radius(radius, self.bits)
        view = self._view
        main = view.main
        k = self._pinned_kernel or _mih.kernel_for(main.n)
        flips = r // self._chunks
        probed = self._chunks * len(_mih.flip_masks(self.chunk_bits, flips)) / (1 << self.chunk_bits)
        if probed < self.scan_fraction:
            qoff, rows, dists = k.probe(
                main.codes, main.alive, main.table, main.offsets, queries, r, flips, self.chunk_bits
            )
        else:
            qoff, rows, dists = k.scan(main.codes, main.alive, queries, r)
        ids = main.ids[rows]
        if view.buf_n:
            boff, brows, bdists = k.scan(
                view.buf_codes[: view.buf_n], view.buf_alive[: view.buf_n], queries, r
            )
            if len(brows):
                nq = len(queries)
                owner = np.concatenate([np.repeat(np.arange(nq), np.diff(qoff)), np.repeat(np.arange(nq), np.diff(boff))])
                ids = np.concatenate([ids, view.buf_ids[brows]])
                dists = np.concatenate([dists, bdists])
                order = np.lexsort((ids, dists, owner))
                ids, dists = ids[order], dists[order]
                qoff = np.zeros(nq + 1, dtype=np.int64)
                np.cumsum(np.bincount(owner, minlength=nq), out=qoff[1:])
        return qoff, ids, dists

    @property
    def _kernel(self) -> _mih.Kernel:
        """The kernels serving the main part now; setting one pins it (None: by size)."""
        return self._pinned_kernel or _mih.kernel_for(self._main.n)

    @_kernel.setter
    def _kernel(self, kernel: _mih.Kernel | None) -> None:
        self._pinned_kernel = kernel

    @property
    def kernel_name(self) -> str:
        """Which kernels serve the main part now ("numpy" or "numba")."""
        return self._kernel.name

    def __len__(self) -> int:
        return self._main.n - self._main_dead + self._buf_n - self._buf_dead

    def memory_bytes(self) -> int:
        """Bytes held by the index arrays (mapped files count at full size)."""
        m = self._main
        arrays = (m.codes, m.ids, m.table, m.offsets, m.alive, self._buf_codes, self._buf_ids, self._buf_alive)
        # The buffer's id -> row dict: ~100 bytes per entry in CPython.
        return sum(int(a.nbytes) for a in arrays) + 100 * len(self._buf_rows)

    def is_mapped(self) -> bool:
        """True if the main part is served from a mapped snapshot (shared page cache)."""
        return any(isinstance(a, np.memmap) or isinstance(getattr(a, "base", None), np.memmap)
                   for a in (self._main.codes, self._main.table))

    def to_private_memory(self) -> None:
        """Copy a main part mapped from a snapshot into this process's own memory, with
        transparent huge pages where the system allows (see ``_mih.empty``): more memory
        (a copy per process instead of shared page cache) for fewer TLB misses per lookup.
        Searches go on meanwhile; a no-op if the main part is not mapped."""
        self.wait_for_merge()
        with self._lock:
            main = self._main
            if not self.is_mapped():
                return
            copies = {}
            for name in ("codes", "ids", "table"):
                src = getattr(main, name)
                copies[name] = _mih.empty(src.shape, src.dtype)
                copies[name][...] = src
            self._main = _Main(codes=copies["codes"], ids=copies["ids"], table=copies["table"],
                               offsets=np.array(main.offsets), alive=main.alive)
            self._publish()

    def merge(self) -> None:
        """Fold the buffer and tombstones into the main part now (adds do it when due)."""
        self.wait_for_merge()
        with self._lock:
            self._merge(np.empty((0, self._words), np.uint64), np.empty(0, np.int64))
            self._publish()

    def wait_for_merge(self) -> None:
        """Return once no background merge is running. If the last one failed (e.g.
        out of memory), raise its error here; the index stays as it was before it."""
        thread = self._merging
        if thread is not None:
            thread.join()
        error, self._merge_error = self._merge_error, None
        if error is not None:
            raise RuntimeError(f"background index merge failed: {error}") from error

    # -- persistence -------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the index as .npy files plus meta.json into ``directory``.

        The directory is written next to its final place and swapped in, so a
        crash never leaves half a snapshot; an existing directory is replaced only
        if it holds a snapshot of this format.
        """
        directory = Path(directory)
        if directory.exists() and not (directory / "meta.json").is_file():
            if not directory.is_dir() or any(directory.iterdir()):
                raise StoreError(
                    f"{directory}: exists and is not a Hamming index snapshot; not overwriting it"
                )
        with self._lock:
            main = self._main
            live = self._buf_alive[: self._buf_n]
            arrays = {
                "codes": main.codes,
                "ids": main.ids,
                "table": main.table,
                "offsets": main.offsets,
                "alive": main.alive,
                "buffer_codes": self._buf_codes[: self._buf_n][live],
                "buffer_ids": self._buf_ids[: self._buf_n][live],
            }
            meta = {
                "format": _FORMAT,
                "version": _FORMAT_VERSION,
                "bits": self.bits,
                "chunk_bits": self.chunk_bits,
                "layout": "filtered" if main.table.ndim == 3 else "rows",
                "rows": main.n,
                "buffer_rows": int(live.sum()),
            }
            tmp = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                for name, arr in arrays.items():
                    np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
                (tmp / "meta.json").write_text(json.dumps(meta))
                old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
                if directory.exists():
                    # Rename, not delete: a loaded index may still map these files.
                    directory.rename(old)
                tmp.rename(directory)
                shutil.rmtree(old, ignore_errors=True)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StoreError(f"{directory}: cannot write the index snapshot: {exc}") from exc

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> HammingIndex:
        """Open a snapshot written by ``save``. With ``mmap`` the big arrays are
        mapped copy-on-write, so start-up reads little more than the headers and a
        validation pass; the files are never modified."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise InputError(directory, "no Hamming index snapshot here (meta.json missing)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(meta_path, f"unreadable index metadata: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise InputError(meta_path, f"not an {_FORMAT} snapshot")
        if meta.get("version") != _FORMAT_VERSION:
            raise InputError(
                meta_path,
                f"snapshot format version {meta.get('version')!r}, this assay reads {_FORMAT_VERSION}",
                hint="rebuild the index from the bank store",
            )
        try:
            index = cls(bits=meta["bits"], chunk_bits=meta["chunk_bits"])
            rows = int(meta["rows"])
            buffer_rows = int(meta["buffer_rows"])
            layout = meta["layout"]
            if layout not in _LAYOUTS:
                raise ValueError(f"unknown table layout {layout!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(meta_path, f"bad index metadata: {exc}") from None
        w, m, nkeys = index._words, index._chunks, 1 << index.chunk_bits
        expect = {
            "codes": ((rows, w), np.uint64),
            "ids": ((rows,), np.int64),
            "table": ((m, rows, 2), np.uint64) if layout == "filtered" else ((m, rows), np.int32),
            "offsets": ((m, nkeys + 1), np.int32),
            "alive": ((rows,), np.bool_),
            "buffer_codes": ((buffer_rows, w), np.uint64),
            "buffer_ids": ((buffer_rows,), np.int64),
        }
        arrays: dict[str, np.ndarray] = {}
        for name, (shape, dtype) in expect.items():
            big = name in ("codes", "table", "ids")
            arrays[name] = _load_npy(directory / f"{name}.npy", shape, np.dtype(dtype), mmap and big)
        _validate_main(directory, arrays, rows)
        main = _Main(
            codes=arrays["codes"],
            ids=arrays["ids"],
            table=arrays["table"],
            offsets=arrays["offsets"],
            alive=np.array(arrays["alive"], dtype=bool),  # always a private, writable copy
        )
        index._main = main
        index._main_dead = main.n - int(np.count_nonzero(main.alive))
        index._publish()
        if buffer_rows:
            bids = arrays["buffer_ids"]
            clash = index._live_ids_among(bids)
            if len(_duplicates(bids)) or len(clash):
                raise InputError(directory / "buffer_ids.npy", "buffer ids repeat or clash with the main part")
            with index._lock:
                index._append(np.ascontiguousarray(arrays["buffer_codes"]), bids.copy())
                index._publish()
        return index

    @staticmethod
    def from_hex(hexes: Iterable[str]) -> np.ndarray:
        """(n, nbytes) uint8 array from hex strings of equal length (e.g. PDQ hashes)."""
        rows: list[bytes] = []
        for n, h in enumerate(hexes):
            try:
                rows.append(bytes.fromhex(h))
            except (TypeError, ValueError):
                raise ValueError(f"hex string #{n} is not hexadecimal: {h!r:.80}") from None
            if len(rows[-1]) != len(rows[0]) or not rows[0]:
                raise ValueError(
                    f"hex string #{n} has {len(h)} digits, expected {2 * len(rows[0])} like the first"
                )
        if not rows:
            return np.empty((0, 32), dtype=np.uint8)
        return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1).copy()

    # -- internals ---------------------------------------------------------------------
    def _as_words(self, codes: object, what: str) -> np.ndarray:
        nbytes = self.bits // 8
        if not isinstance(codes, np.ndarray):
            raise ValueError(f"{what} must be a numpy uint8 array of shape (n, {nbytes})")
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != nbytes:
            raise ValueError(
                f"{what} must be a uint8 array of shape (n, {nbytes}) for {self.bits}-bit codes, "
                f"got {codes.dtype} {codes.shape}"
            )
        # Little-endian words on every machine, so chunk values are portable in snapshots.
        return np.ascontiguousarray(codes).view("<u8").astype(np.uint64, copy=False)

    def _empty_main(self) -> _Main:
        return _Main(
            codes=np.empty((0, self._words), dtype=np.uint64),
            ids=np.empty(0, dtype=np.int64),
            table=np.empty((self._chunks, 0, 2), dtype=np.uint64),
            offsets=np.zeros((self._chunks, (1 << self.chunk_bits) + 1), dtype=np.int32),
            alive=np.empty(0, dtype=bool),
        )

    def _publish(self) -> None:
        self._view = _View(self._main, self._buf_codes, self._buf_ids, self._buf_alive, self._buf_n)

    def _live_ids_among(self, ids: np.ndarray) -> np.ndarray:
        main = self._main
        found: list[int] = []
        if main.n:
            pos = np.minimum(np.searchsorted(main.ids, ids), main.n - 1)
            hit = (main.ids[pos] == ids) & main.alive[pos]
            found.extend(ids[hit].tolist())
        if self._buf_rows:
            found.extend(i for i in ids.tolist() if i in self._buf_rows)
        return np.array(sorted(found), dtype=np.int64)

    def _append(self, words: np.ndarray, ids: np.ndarray) -> None:
        n0, n1 = self._buf_n, self._buf_n + len(ids)
        if n1 > len(self._buf_ids):
            # Grow into new arrays: searches still reading the old ones stay valid.
            cap = max(n1, 2 * len(self._buf_ids), 1024)
            codes = np.empty((cap, self._words), dtype=np.uint64)
            bids = np.empty(cap, dtype=np.int64)
            alive = np.zeros(cap, dtype=bool)
            codes[:n0], bids[:n0], alive[:n0] = self._buf_codes[:n0], self._buf_ids[:n0], self._buf_alive[:n0]
            self._buf_codes, self._buf_ids, self._buf_alive = codes, bids, alive
        self._buf_codes[n0:n1] = words
        self._buf_ids[n0:n1] = ids
        self._buf_alive[n0:n1] = True
        self._buf_rows.update(zip(ids.tolist(), range(n0, n1), strict=True))
        self._buf_n = n1  # published last: a reader never sees a half-written row

    def _buffer_limit(self) -> int:
        return max(self.buffer_min, int(self.buffer_fraction * self._main.n))

    def _build_main(self, old_codes: np.ndarray, old_ids: np.ndarray,
                    new_codes: np.ndarray, new_ids: np.ndarray) -> _Main:
        """A main part from id-sorted live ``old`` rows and unsorted ``new`` rows."""
        order = np.argsort(new_ids, kind="stable")
        new_ids, new_codes = new_ids[order], new_codes[order]
        total = len(old_ids) + len(new_ids)
        if total > _MAX_ROWS:
            raise ValueError(f"an index holds at most {_MAX_ROWS} entries, this add would make {total}")
        pos_old, pos_new = _merge_sorted(old_ids, new_ids)
        all_ids = np.empty(total, dtype=np.int64)
        all_codes = _mih.empty((total, self._words), np.uint64)
        all_ids[pos_old], all_ids[pos_new] = old_ids, new_ids
        all_codes[pos_old], all_codes[pos_new] = old_codes, new_codes
        filtered = 16 * self._chunks * total <= self.fast_table_bytes
        kernel = self._pinned_kernel or _mih.kernel_for(len(all_codes))
        table, offsets = kernel.build(all_codes, self.chunk_bits, filtered)
        return _Main(all_codes, all_ids, table, offsets, np.ones(total, dtype=bool))

    def _merge_in_background(self) -> None:
        try:
            with self._lock:
                main, n0 = self._main, self._buf_n
                main_alive = main.alive.copy()
                live_b = self._buf_alive[:n0].copy()
                buf_codes = self._buf_codes[:n0][live_b]
                buf_ids = self._buf_ids[:n0][live_b]
                self._removed_while_merging = []
            # The rebuild runs without the lock; the compiled build releases the GIL.
            new_main = self._build_main(main.codes[main_alive], main.ids[main_alive], buf_codes, buf_ids)
            with self._lock:
                dead = sum(new_main.tombstone(ids) for ids in self._removed_while_merging)
                # Rows added while merging move to a new buffer, with their tombstones.
                rest = slice(n0, self._buf_n)
                bids = self._buf_ids[rest].copy()
                alive = self._buf_alive[rest].copy()
                self._buf_codes = self._buf_codes[rest].copy()
                self._buf_ids, self._buf_alive = bids, alive
                self._buf_n = len(bids)
                self._buf_dead = int(len(bids) - np.count_nonzero(alive))
                self._buf_rows = {i: r for r, i in enumerate(bids.tolist()) if alive[r]}
                self._main, self._main_dead = new_main, dead
                self._removed_while_merging = []
                self._publish()
        except BaseException as exc:  # kept for wait_for_merge; the index is unchanged
            self._merge_error = exc
        finally:
            self._merging = None

    def _merge(self, words: np.ndarray, ids: np.ndarray) -> None:
        """New main part from live main rows + live buffer rows + (words, ids)."""
        main = self._main
        live_b = self._buf_alive[: self._buf_n]
        new_ids = np.concatenate([self._buf_ids[: self._buf_n][live_b], ids])
        new_codes = np.concatenate([self._buf_codes[: self._buf_n][live_b], words])
        if self._main_dead:
            old_ids, old_codes = main.ids[main.alive], main.codes[main.alive]
        else:
            old_ids, old_codes = main.ids, main.codes
        self._main = self._build_main(old_codes, old_ids, new_codes, new_ids)
        self._main_dead = 0
        self._buf_codes = np.empty((0, self._words), dtype=np.uint64)
        self._buf_ids = np.empty(0, dtype=np.int64)
        self._buf_alive = np.empty(0, dtype=bool)
        self._buf_n = self._buf_dead = 0
        self._buf_rows = {}


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype, mmap: bool) -> np.ndarray:
    """One array of a snapshot, checked against the expected shape *before* anything
    is allocated or mapped, so a damaged header cannot ask for terabytes."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            data_start = f.tell()
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(path, "index array missing") from None
    except Exception as exc:  # numpy's header parser raises many kinds on garbage
        raise InputError(path, f"unreadable index array header: {exc!r}") from None
    if got_shape != shape or got_dtype != dtype or fortran:
        raise InputError(path, f"expected {dtype.name} {shape}, found {got_dtype} {got_shape}")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size - data_start != need:
        raise InputError(path, f"holds {size - data_start} data bytes, expected {need}")
    try:
        arr = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise InputError(path, f"unreadable index array: {exc}") from None
    return np.asarray(arr)


def _validate_main(directory: Path, a: dict[str, np.ndarray], rows: int) -> None:
    """Check what the compiled kernel trusts blindly (it does no bounds checks):
    a bad snapshot must fail here with a message, not crash or read stray memory.
    Row numbers inside the table are not checked here (that would read the whole
    table at start-up): the kernel skips any entry whose row is out of range."""
    off = a["offsets"]
    if off.size and (np.any(off[:, 0] != 0) or np.any(off[:, -1] != rows) or np.any(np.diff(off, axis=1) < 0)):
        raise InputError(directory / "offsets.npy", "CSR offsets are not a valid partition of the rows")
    ids = a["ids"]
    if rows > 1 and np.any(ids[1:] <= ids[:-1]):
        raise InputError(directory / "ids.npy", "ids are not strictly increasing")


# --------------------------------------------------------------------------- exact


@dataclass(frozen=True)
class _Sorted:
    """ExactIndex's main part, replaced whole on merge; ``alive`` flips in place."""

    keys: np.ndarray  # (n, nbytes) uint8, ordered by prefix
    prefix: np.ndarray  # (n,) uint64 big-endian first 8 bytes, ascending
    ids: np.ndarray  # (n,) int64, same order
    alive: np.ndarray  # (n,) bool
    id_sorted: np.ndarray  # (n,) int64 ids ascending ...
    id_row: np.ndarray  # (n,) int64 ... and the row each one is on


class ExactIndex:
    """Fixed-width keys (MD5, SHA-256, AutoV2, ...) -> ids.

    Main part: keys sorted by their first 8 bytes (as a big-endian uint64, so a
    lookup is one binary search over a flat array), with their ids; recent adds
    live in a dict until they outgrow a fraction of the main part. About
    nbytes + 33 bytes per entry (65 for SHA-256), against ~200 for a Python dict.
    Several ids may share a key (the same file in two banks).
    """

    buffer_min: int = 1 << 16
    buffer_fraction: float = 1 / 16

    def __init__(self, nbytes: int) -> None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, Integral) or not 1 <= nbytes <= 1024:
            raise ValueError(f"nbytes must be between 1 and 1024, got {nbytes!r}")
        self.nbytes = int(nbytes)
        self._lock = threading.RLock()
        self._main = self._sorted(np.empty((0, self.nbytes), np.uint8), np.empty(0, np.int64))
        self._dead = 0
        # Mutated under the lock; a search only reads _buf_by_key, one atomic get.
        self._buf_by_key: dict[bytes, tuple[int, ...]] = {}
        self._buf_by_id: dict[int, bytes] = {}

    def add(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add (n, nbytes) uint8 keys under n distinct ids not already live here."""
        keys = self._as_keys(keys)
        ids = _as_ids(ids)
        if len(ids) != len(keys):
            raise ValueError(f"got {len(keys)} keys but {len(ids)} ids")
        if not len(ids):
            return
        dups = _duplicates(ids)
        if len(dups):
            raise ValueError(f"ids must be unique; repeated: {_shown(dups)}")
        with self._lock:
            live = self._live_ids_among(ids)
            if len(live):
                raise ValueError(f"ids already in the index: {_shown(live)}")
            limit = max(self.buffer_min, self.buffer_fraction * len(self._main.ids))
            if len(self._buf_by_id) + len(ids) > limit:
                self._merge(keys, ids)
                return
            by_key, by_id = self._buf_by_key, self._buf_by_id
            raw = keys.tobytes()
            for n, i in enumerate(ids.tolist()):
                k = raw[n * self.nbytes : (n + 1) * self.nbytes]
                # One atomic store per key (under the GIL): a search sees the old
                # tuple or the new one.
                by_key[k] = (*by_key.get(k, ()), i)
                by_id[i] = k

    def remove(self, ids: np.ndarray | Iterable[int]) -> None:
        """Remove entries by id; unknown ids are ignored."""
        ids = _as_ids(ids)
        if not len(ids):
            return
        with self._lock:
            main = self._main
            if len(main.id_sorted):
                pos = np.minimum(np.searchsorted(main.id_sorted, ids), len(main.id_sorted) - 1)
                rows = main.id_row[pos[main.id_sorted[pos] == ids]]
                rows = np.unique(rows[main.alive[rows]])
                main.alive[rows] = False
                self._dead += len(rows)
            by_key, by_id = self._buf_by_key, self._buf_by_id
            for i in ids.tolist() if by_id else ():
                k = by_id.pop(i, None)
                if k is None:
                    continue
                rest = tuple(x for x in by_key[k] if x != i)
                if rest:
                    by_key[k] = rest
                else:
                    del by_key[k]

    def search(self, key: bytes | str | np.ndarray) -> np.ndarray:
        """Ids stored under ``key`` (bytes, hex string or uint8 array), ascending."""
        raw = self._key_bytes(key)
        # Buffer before main: a merge publishes the new main before it empties the
        # buffer, so in this order a concurrent merge can duplicate a hit, never hide one.
        found = set(self._buf_by_key.get(raw, ()))
        main = self._main
        p = int.from_bytes(raw[:8].ljust(8, b"\0"), "big")
        row = int(main.prefix.searchsorted(np.uint64(p)))
        # Rows sharing the prefix: one for random hashes, a few for short keys that repeat.
        while row < len(main.prefix) and int(main.prefix[row]) == p:
            if main.alive[row] and main.keys[row].tobytes() == raw:
                found.add(int(main.ids[row]))
            row += 1
        return np.array(sorted(found), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._main.ids) - self._dead + len(self._buf_by_id)

    def memory_bytes(self) -> int:
        m = self._main
        arrays = (m.keys, m.prefix, m.ids, m.alive, m.id_sorted, m.id_row)
        # Dict buffer: key bytes object, tuple, two dict slots, an int: ~250 bytes an entry.
        return sum(int(a.nbytes) for a in arrays) + 250 * len(self._buf_by_id)

    def merge(self) -> None:
        """Fold the dict buffer and tombstones into the sorted arrays now."""
        with self._lock:
            self._merge(np.empty((0, self.nbytes), np.uint8), np.empty(0, np.int64))

    # -- persistence -------------------------------------------------------------------
    _ARRAYS = ("keys", "prefix", "ids", "id_sorted", "id_row")

    def save(self, directory: Path) -> None:
        """Write the live entries as .npy files plus meta.json into a new ``directory``
        (read back memory-mapped by ``load``: processes that map it share the pages)."""
        directory = Path(directory)
        with self._lock:
            self._merge(np.empty((0, self.nbytes), np.uint8), np.empty(0, np.int64))
            main = self._main
        directory.mkdir(parents=True)
        for name in self._ARRAYS:
            np.save(directory / f"{name}.npy", np.ascontiguousarray(getattr(main, name)), allow_pickle=False)
        (directory / "meta.json").write_text(json.dumps(
            {"format": "assay-exact-index", "version": 1, "nbytes": self.nbytes, "rows": len(main.ids)}))

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> ExactIndex:
        """Open what ``save`` wrote; the arrays are mapped read-only with ``mmap``."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "meta.json").read_text())
            nbytes, rows = int(meta["nbytes"]), int(meta["rows"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(directory, f"not an exact index snapshot: {exc}") from None
        if meta.get("format") != "assay-exact-index":
            raise InputError(directory, "not an exact index snapshot")
        index = cls(nbytes)
        shapes = {"keys": ((rows, nbytes), np.uint8), "prefix": ((rows,), np.uint64), "ids": ((rows,), np.int64),
                  "id_sorted": ((rows,), np.int64), "id_row": ((rows,), np.int64)}
        a = {name: _load_npy(directory / f"{name}.npy", shape, np.dtype(dt), mmap)
             for name, (shape, dt) in shapes.items()}
        index._main = _Sorted(keys=a["keys"], prefix=a["prefix"], ids=a["ids"],
                              alive=np.ones(rows, dtype=bool), id_sorted=a["id_sorted"], id_row=a["id_row"])
        return index

    # -- internals ---------------------------------------------------------------------
    def _as_keys(self, keys: object) -> np.ndarray:
        if (
            not isinstance(keys, np.ndarray)
            or keys.dtype != np.uint8
            or keys.ndim != 2
            or keys.shape[1] != self.nbytes
        ):
            got = f"{keys.dtype} {keys.shape}" if isinstance(keys, np.ndarray) else type(keys).__name__
            raise ValueError(f"keys must be a uint8 array of shape (n, {self.nbytes}), got {got}")
        return np.ascontiguousarray(keys)

    def _key_bytes(self, key: bytes | str | np.ndarray) -> bytes:
        if isinstance(key, str):
            try:
                raw = bytes.fromhex(key.strip())
            except ValueError:
                raise ValueError(f"key is not hexadecimal: {key!r:.80}") from None
        elif isinstance(key, np.ndarray):
            if key.dtype != np.uint8 or key.ndim != 1:
                raise ValueError(f"key array must be 1-D uint8, got {key.dtype} {key.shape}")
            raw = key.tobytes()
        elif isinstance(key, (bytes, bytearray, memoryview)):
            raw = bytes(key)
        else:
            raise ValueError(f"key must be bytes, a hex string or a uint8 array, got {type(key).__name__}")
        if len(raw) != self.nbytes:
            raise ValueError(f"key must be {self.nbytes} bytes, got {len(raw)}")
        return raw

    def _live_ids_among(self, ids: np.ndarray) -> np.ndarray:
        main = self._main
        found: list[int] = []
        if len(main.id_sorted):
            pos = np.minimum(np.searchsorted(main.id_sorted, ids), len(main.id_sorted) - 1)
            hit = main.id_sorted[pos] == ids
            hit[hit] = main.alive[main.id_row[pos[hit]]]
            found.extend(ids[hit].tolist())
        found.extend(i for i in ids.tolist() if i in self._buf_by_id)
        return np.array(sorted(found), dtype=np.int64)

    def _sorted(self, keys: np.ndarray, ids: np.ndarray) -> _Sorted:
        # Big-endian 8-byte prefix, zero-padded for short keys (then it is the key).
        padded = np.zeros((len(keys), 8), dtype=np.uint8)
        width = min(8, self.nbytes)
        padded[:, :width] = keys[:, :width]
        prefix = padded.view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefix, kind="stable")
        ids = ids[order]
        id_order = np.argsort(ids, kind="stable")
        return _Sorted(
            keys=keys[order],
            prefix=prefix[order],
            ids=ids,
            alive=np.ones(len(ids), dtype=bool),
            id_sorted=ids[id_order],
            id_row=id_order.astype(np.int64),
        )

    def _merge(self, keys: np.ndarray, ids: np.ndarray) -> None:
        main = self._main
        buf_ids = np.fromiter(self._buf_by_id, dtype=np.int64, count=len(self._buf_by_id))
        buf_keys = np.frombuffer(b"".join(self._buf_by_id.values()), dtype=np.uint8)
        all_keys = np.concatenate([main.keys[main.alive], buf_keys.reshape(-1, self.nbytes), keys])
        all_ids = np.concatenate([main.ids[main.alive], buf_ids, ids])
        self._main = self._sorted(all_keys, all_ids)
        self._dead = 0
        self._buf_by_key, self._buf_by_id = {}, {}
