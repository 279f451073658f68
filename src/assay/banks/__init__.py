"""Hash banks: the store (SQLite/PostgreSQL), import/export formats, and matching.

``Store`` holds banks of known hashes; ``formats.parse_file`` / ``formats.export``
move them in and out as plain lists, CSV or JSON Lines.
"""

from .store import (
    Bank,
    BankStats,
    Changes,
    Entry,
    ImportRecord,
    ImportResult,
    LoadedSignals,
    SignalRef,
    Store,
)

__all__ = [
    "Bank",
    "BankStats",
    "Changes",
    "Entry",
    "ImportRecord",
    "ImportResult",
    "LoadedSignals",
    "SignalRef",
    "Store",
]
