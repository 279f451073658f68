"""The scan's text analyzer: text files (UTF-8, or UTF-16/UTF-32 with a byte-order mark;
no NUL characters) checked against a text
index; the result goes in the record's ``text`` part (assay.text/1 without schema and
path). Files that are not text are left alone: they are not errors."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import InputError
from ..report.schema import FileRecord
from ..scan.analyzer import Subject
from .ingest import decode_utf8
from .match import MAX_CHECKED_BYTES, check, is_markup

_INDEXES: dict[str, Any] = {}  # one open index per worker process (its shards mapped once)


class TextAnalyzer:
    name: ClassVar[str] = "text"
    kinds: ClassVar[frozenset[str]] = frozenset({"other"})

    def __init__(self, index: str, min_chars: int = 50) -> None:
        self.index = index
        self.min_chars = min_chars

    def _index(self) -> Any:
        from .index import TextIndex

        ix = _INDEXES.get(self.index)
        if ix is None:
            ix = _INDEXES[self.index] = TextIndex.open(self.index)
        return ix

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        if subject.size > MAX_CHECKED_BYTES or not subject.path.is_file():
            return
        data = subject.cache.get("bytes")
        if data is None:
            data = subject.path.read_bytes()
        try:  # as `assay text check` reads a file (UTF-16/UTF-32 by their byte-order mark)
            text = decode_utf8(subject.path, data)
        except InputError:
            return
        if "\x00" in text or not text.strip():
            return
        res = check(self._index(), text, path=str(subject.path), min_chars=self.min_chars,
                    markup=is_markup(subject.path)).to_json()
        record.text = {k: v for k, v in res.items() if k not in ("schema", "path")}
