"""Generated examiners' hash sets for tests: an NSRL RDS v3 database and a Project VIC
VICS JSON export, laid out as the real ones are (tables and columns of RDS v3; the
OData Media list of VICS 2.0). The hashes are of generated benign bytes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from pathlib import Path

RDS_SCHEMA = """
CREATE TABLE VERSION (version VARCHAR UNIQUE NOT NULL, build_set VARCHAR NOT NULL,
  build_date TIMESTAMP NOT NULL, release_date TIMESTAMP NOT NULL, description VARCHAR NOT NULL);
CREATE TABLE MFG (manufacturer_id INTEGER NOT NULL, name VARCHAR NOT NULL,
  CONSTRAINT PK_MFG__MFG_ID PRIMARY KEY (manufacturer_id));
CREATE TABLE OS (operating_system_id INTEGER, name VARCHAR NOT NULL, version VARCHAR NOT NULL,
  manufacturer_id INTEGER NOT NULL, CONSTRAINT PK_OS__OS_ID PRIMARY KEY (operating_system_id, manufacturer_id));
CREATE TABLE PKG (package_id INTEGER NOT NULL, name VARCHAR NOT NULL, version VARCHAR NOT NULL,
  operating_system_id INTEGER NOT NULL, manufacturer_id INTEGER NOT NULL, language VARCHAR NOT NULL,
  application_type VARCHAR NOT NULL,
  CONSTRAINT PK_PKG__PKG_ID PRIMARY KEY (package_id, operating_system_id, manufacturer_id, language, application_type));
CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
  crc32 VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL, package_id INTEGER NOT NULL,
  CONSTRAINT PK_FILE__FILE PRIMARY KEY (sha256, sha1, md5, crc32, file_name, file_size, package_id));
"""


def file_hashes(data: bytes) -> dict[str, str]:
    """Upper-case hex, as RDS and VICS print them."""
    return {
        "sha256": hashlib.sha256(data).hexdigest().upper(),
        "sha1": hashlib.sha1(data).hexdigest().upper(),
        "md5": hashlib.md5(data).hexdigest().upper(),
        "crc32": f"{zlib.crc32(data):08X}",
    }


def make_rds_v3(path: Path, files: dict[str, bytes], *, minimal: bool = False) -> Path:
    """An RDS v3 database listing ``files`` (name -> bytes) in two packages. ``minimal``:
    the "minimal" RDS layout (FILE without crc32, no OS/MFG/VERSION)."""
    conn = sqlite3.connect(path)
    if minimal:
        conn.executescript("""
            CREATE TABLE PKG (package_id INTEGER NOT NULL, name VARCHAR NOT NULL, version VARCHAR NOT NULL,
              operating_system_id INTEGER NOT NULL, manufacturer_id INTEGER NOT NULL,
              language VARCHAR NOT NULL, application_type VARCHAR NOT NULL);
            CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
              file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL, package_id INTEGER NOT NULL);
        """)
    else:
        conn.executescript(RDS_SCHEMA)
        conn.execute("INSERT INTO VERSION VALUES ('RDSv3.test', 'test', '2026-01-01', '2026-01-02', 'generated')")
        conn.execute("INSERT INTO MFG VALUES (1, 'Example Software Co')")
        conn.execute("INSERT INTO OS VALUES (10, 'ExampleOS', '1.0', 1)")
    conn.executemany("INSERT INTO PKG VALUES (?, ?, ?, 10, 1, 'English', 'Operating System')",
                     [(100, "ExampleOS base", "1.0"), (101, "ExampleOS tools", "1.1")])
    rows = []
    for i, (name, data) in enumerate(sorted(files.items())):
        h = file_hashes(data)
        for pkg in (100, 101) if i == 0 else (100,):  # the first file ships in both packages
            row = [h["sha256"], h["sha1"], h["md5"]] + ([] if minimal else [h["crc32"]])
            rows.append((*row, name, len(data), pkg))
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO FILE VALUES ({marks})", rows)
    conn.commit()
    conn.close()
    return path


def make_vics(path: Path, items: list[tuple[int, int, bytes]], *, pretty: bool = True) -> Path:
    """A VICS 2.0 JSON export: ``items`` are (MediaID, Category, bytes)."""
    media = []
    for media_id, category, data in items:
        h = file_hashes(data)
        media.append({
            "odata.id": f"Media({media_id})",
            "MediaID": media_id,
            "Category": category,
            "MD5": h["md5"],
            "SHA1": h["sha1"],
            "MediaSize": len(data),
            "DateUpdated": "2026-01-02T03:04:05.0000Z",
            "IsPrecategorized": "false",
            "IsDistributed": False,
            "Comments": "generated test media",
            "MediaFiles": [{"FileName": f"m{media_id}.bin", "FilePath": "x\\\\y"}],
        })
    doc = {"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
           "value": media}
    path.write_text(json.dumps(doc, indent=2 if pretty else None), encoding="utf-8")
    return path
