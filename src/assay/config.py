"""Settings: embedded defaults, overridable by environment variables and CLI flags.

The default store is a SQLite file under the user's data directory, so that
``assay`` works with no set-up. ``ASSAY_DB`` (or ``--db``) points it elsewhere,
e.g. ``postgresql+psycopg://user@host/db`` for a shared multi-user store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_DB = "ASSAY_DB"
ENV_DATA_DIR = "ASSAY_DATA_DIR"


def data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir  # ~10 ms of imports: only when the default is wanted

    return Path(user_data_dir("assay", appauthor=False))


def default_db_url() -> str:
    env = os.environ.get(ENV_DB)
    if env:
        return normalize_db_url(env)
    return normalize_db_url(str(data_dir() / "assay.sqlite3"))


def sqlite_file_uri(path: Path) -> str:
    """``file:`` and ``path`` quoted, as SQLite's URI filenames (and SQLAlchemy's URLs, which
    unquote the database part) read it: a '?', '#' or '%' in a name is part of the name."""
    from urllib.parse import quote

    return "file:" + quote(path.as_posix())


def normalize_db_url(url: str) -> str:
    """Accept a bare file path or a SQLAlchemy URL; prefer psycopg 3 for PostgreSQL."""
    if "://" not in url:
        return "sqlite:///" + sqlite_file_uri(Path(url).expanduser().resolve()).removeprefix("file:")
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Limits:
    """Guards against decompression bombs and oversized inputs."""

    # Model files are memory-mapped, never read whole: only hashing time grows with
    # size (a Flux checkpoint is 24 GB). Images have their own, smaller cap.
    max_file_bytes: int = 256 * 1024**3
    max_image_bytes: int = 512 * 1024**2
    max_pixels: int = 178_956_970  # Pillow's own bomb threshold x 2
    max_text_chunk: int = 8 * 1024**2
    # Archives (assay.containers): members are files, with the file limits above, and
    # these per outermost archive, nested archives included.
    max_archive_depth: int = 4  # an archive in an archive in ... is walked this deep
    max_archive_members: int = 100_000
    max_archive_bytes: int = 64 * 1024**3  # uncompressed bytes read from all members
    # Expansion beyond this ratio (uncompressed / compressed) is a bomb, once a member
    # (or a compressed tar stream) has produced more than max_ratio_floor bytes: deflate
    # tops out near 1032:1, ordinary data stays far below 100:1.
    max_compression_ratio: int = 200
    max_ratio_floor: int = 32 * 1024**2
    # Images embedded in other data (assay.containers.carve): searched for in this many
    # first bytes of a file, at most this many cut out of one file.
    max_carve_bytes: int = 256 * 1024**2
    max_carved: int = 64
    # Images rebuilt from a PDF's compressed streams (assay.containers.pdfimages): at most
    # this many a document, and this much time spent reading and decoding them (checked
    # between images; the analysis of each is not counted): ~1,000 pictures of 1.6 MP.
    max_document_images: int = 2000
    max_document_seconds: float = 300.0


@dataclass(frozen=True)
class ScanSettings:
    pdq_mode: str = "fast"  # "fast" | "reference"
    exif_transpose: bool = False
    dihedral: bool = False
    # extra PDQ queries for evasive rewrites (the content inside uniform borders/bars)
    variants: bool = True
    # write every variant hash in the record, not only those that matched (--all-variants)
    all_variants: bool = False
    # the kinds of variant hashes the banks hold (Store.pdq_variant_kinds): query variants
    # only those can match are not computed without them; None: unknown, compute all
    bank_variant_kinds: frozenset[str] | None = None
    include_low_quality: bool = False
    provenance: bool = True
    models: bool = True
    trust_anchors: Path | None = None  # PEM bundle of C2PA trust anchors
    # Store whose fingerprint banks model files are compared with (None: no lineage).
    lineage_db: str | None = None
    # Store whose enrolled camera fingerprints images are compared with (None: the store
    # holds none, or no banks; set by the caller only when there are some).
    camera_db: str | None = None
    camera_threshold: float = 60.0  # PCE at or above which a fingerprint match is evidence
    # Text index that text files are checked against (None: text is not checked).
    text_index: str | None = None
    text_min_chars: int = 50
    follow_symlinks: bool = False  # links inside folders are reported, not followed
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    limits: Limits = field(default_factory=Limits)
