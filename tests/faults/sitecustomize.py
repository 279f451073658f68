"""Store faults for tests of `assay serve` (tests/test_service_health.py), injected into
the server's processes by putting this folder on their PYTHONPATH: active only when
ASSAY_TEST_FAULTS names a directory, where each file turns one fault on while it
exists (the test creates and removes them; the server's code is not changed):

- ``store-down``: every SQL statement fails as a disk I/O error would, on SQLite or
  PostgreSQL alike (the store turns it into its StoreError naming the store);
- ``index-fail``: statements on the signals table fail that way, so that a worker's
  index can neither load nor follow the store while the rest of it works.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("ASSAY_TEST_FAULTS")

if _DIR:
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def _fault(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        if os.path.exists(os.path.join(_DIR, "store-down")):
            raise sqlite3.OperationalError("disk I/O error (injected by tests/faults)")
        if "signals" in statement.lower() and os.path.exists(os.path.join(_DIR, "index-fail")):
            raise sqlite3.OperationalError("disk I/O error on signals (injected by tests/faults)")

    event.listen(Engine, "before_cursor_execute", _fault)
