"""Pictures, videos, sounds, documents and archives that are also pickles (polyglots).

A format's magic number can be made of pickle opcodes: 'GIF89a' starts with BINFLOAT
('G', which swallows eight bytes), 'BM' with BINBYTES (which swallows what its length
field, the BMP's own size field, says). A file built that way is a picture to the
sniffer and a pickle to pickle.load and torch.load, which run it; so is a tar whose
first member's name starts with BINBYTES (tarfile stops the name at its NUL, the
pickle swallows the header). This analyzer judges such a file's pickles; the file
keeps its own kind and analysis (a picture's hashes are still matched, an archive's
members walked). Light on purpose: a scan of pictures imports the model stack only for a
file whose first byte is an opcode.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..report.schema import FileRecord
from ..scan.analyzer import Subject


class PicklePolyglotAnalyzer:
    """Judges the pickles of a picture, video, sound or document that is also one."""

    name: ClassVar[str] = "pickle-polyglot"
    kinds: ClassVar[frozenset[str]] = frozenset({"image", "video", "audio", "document", "archive"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        from ..pickleops import OPCODES

        data = subject.cache.get("bytes")  # (a picture's bytes, read by the image hasher)
        if data is None:
            try:
                with open(subject.path, "rb") as f:
                    data = f.read(1)
            except OSError:
                return
        if record.model is not None or not data or data[0] not in OPCODES or subject.format == "zip":
            return  # (most files: JPEG, PNG, MP4, PDF start with no opcode; a zip's PK is a
            # persistent id, which pickle.load refuses, and torch.load reads zips as zips)
        from ..report.model import build_model_report, safety_from_pickles
        from .pickles import looks_like_pickle, scan_file

        if not looks_like_pickle(Path(subject.path)):
            return
        safety = safety_from_pickles(scan_file(subject.path), "pickle")
        if safety.verdict == "safe":
            return  # opcodes by coincidence that would run nothing
        record.model = build_model_report(
            None, None, None, None, fmt="pickle", safety=safety,
            warnings=[f"this {subject.format} file is also a pickle: pickle.load and torch.load "
                      "read it as one (a polyglot), judged as that pickle"],
        )
