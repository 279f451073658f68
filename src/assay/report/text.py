"""Small helpers for the words of readable output, shared by every renderer."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``, ``1 entry``, ``3 entries`` (give ``many`` when not +s)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
