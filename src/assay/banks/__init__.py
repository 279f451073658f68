"""Hash banks: the store (SQLite/PostgreSQL), import/export formats, and matching.

``Store`` holds banks of known hashes; ``formats.parse_file`` / ``formats.export``
move them in and out as plain lists, CSV or JSON Lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    # The store (and SQLAlchemy with it) loads on first use, not with the package: the
    # SQLite reader of one-file commands (banks/reader.py) lives here too.
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
