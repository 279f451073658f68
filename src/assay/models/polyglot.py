"""Pictures, videos, sounds, documents and archives that are also pickles (polyglots).

A format's magic number can be made of pickle opcodes: 'GIF89a' starts with BINFLOAT
('G', which swallows eight bytes), 'BM' with BINBYTES (which swallows what its length
field, the BMP's own size field, says). A file built that way is a picture to the
sniffer and a pickle to pickle.load and torch.load, which run it; so is a tar whose
first member's name starts with BINBYTES (tarfile stops the name at its NUL, the
pickle swallows the header). This analyzer judges such a file's pickles; the file
keeps its own kind and analysis (a picture's hashes are still matched, an archive's
members walked).

Likewise a Keras or skops model archive the scan walks as files: behind a picture's
bytes (zipfile finds it there, and so do keras.models.load_model and skops.io.load), or
holding more than a model's members; its config is no pickle a member scan would find.

Light on purpose: a scan of pictures imports the model stack only for a file whose
first byte is an opcode or whose bytes end with a zip.
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
        if record.model is not None or not data:
            return
        if subject.format == "zip":
            # A zip walked as an archive of files because it holds more than a model's
            # members (a README beside a .keras' config.json, junk before it): keras and
            # skops load it all the same, and its config is no pickle the walk would find.
            self._model_zip_behind(subject, record, data)
            return
        if data[0] not in OPCODES:  # (most files: JPEG, PNG, MP4, PDF start with no opcode)
            self._model_zip_behind(subject, record, data)
            return
        # (a zip's PK is a persistent id, which pickle.load refuses, and torch.load reads
        # zips as zips)
        from ..report.model import build_model_report, safety_from_pickles
        from .pickles import _is_pickle_at, looks_like_pickle, scan_file

        # (a picture's bytes are at hand: probed there, not read again; a WebP's "R" is one)
        if not (_is_pickle_at(data, 0, len(data)) if len(data) > 1 else looks_like_pickle(Path(subject.path))):
            self._model_zip_behind(subject, record, data)
            return
        safety = safety_from_pickles(scan_file(subject.path), "pickle")
        if safety.verdict == "safe":
            return  # opcodes by coincidence that would run nothing
        record.model = build_model_report(
            None, None, None, None, fmt="pickle", safety=safety,
            warnings=[f"this {subject.format} file is also a pickle: pickle.load and torch.load "
                      "read it as one (a polyglot), judged as that pickle"],
        )

    @staticmethod
    def _model_zip_behind(subject: Subject, record: FileRecord, data: bytes) -> None:
        """A picture (video, document...) that ends with a model archive: zipfile opens it
        behind the picture's bytes, and so do the loaders built on zipfile
        (keras.models.load_model of a .keras, skops.io.load): the archive walk reads its
        members one by one, this judges it as the model it is."""
        from ..sniff import ZIP_TAIL_BYTES, appended_zip

        if subject.format == "zip":
            pass
        elif subject.kind == "archive":
            return
        elif len(data) > 1:  # (the picture's bytes, read by the image hasher: no second read)
            if data.find(b"PK\x05\x06", max(0, len(data) - ZIP_TAIL_BYTES)) < 0:  # (no copy of the tail)
                return
        elif not appended_zip(Path(subject.path), subject.size):
            return
        from ..report.model import build_model_report, safety_from_pickles
        from .formats import model_archive_kind, zip_member_names
        from .pickles import scan_file

        kind = model_archive_kind(Path(subject.path))
        if subject.format == "zip" and kind is None and zip_member_names(Path(subject.path)) is None:
            kind = "zip-pickles"  # too many members to walk: its pickles are judged here
        elif kind not in ("keras", "skops"):
            return  # an archive of files (walked member by member), or a torch zip or an npz,
            # which torch.load and numpy.load open only at byte 0
        safety = safety_from_pickles(scan_file(subject.path), kind)
        # (the file-level "both a picture and a zip" note alone is no finding here: the
        # archive walk already shows the zip; what its model would run is)
        if not any(f.verdict == "dangerous" or (f.verdict == "suspicious" and f.source != str(subject.path))
                   for f in safety.findings):
            return
        record.model = build_model_report(
            None, None, None, None, fmt=kind, safety=safety,
            warnings=[f"this {subject.format} file is or ends with a {kind} model archive, which its "
                      "loader opens with zipfile (beside other members, behind other bytes): judged as "
                      "that model"],
        )
