"""Archives (zip, tar, 7z) walked as members, with bomb limits.

``scan`` treats an archive as a file (hashed, matched) and as a folder: each member
is analysed like a file on disk, with a path such as ``case.zip!/dir/a.jpg``. See
:mod:`assay.containers.expand` for how members are read (bounded temporary copies in
a private folder, never extracted next to the evidence) and the limits.

A zip that *is* a model (a PyTorch checkpoint, a TorchScript or Keras archive) is
one model file, not an archive: :func:`is_model_zip` decides.
"""

from __future__ import annotations

import re
from pathlib import Path

from .expand import ARCHIVE_FORMATS, archive_to_walk, walk_archive

__all__ = ["ARCHIVE_FORMATS", "archive_to_walk", "is_model_zip", "walk_archive"]

# Everything torch.save / torch.jit.save writes under the archive's one top folder.
_TORCH_LAYOUT = re.compile(
    r"(data\.pkl|constants\.pkl|version|\.format_version|byteorder|\.storage_alignment|serialization_id"
    r"|data/\d+|constants/\d+|\.data/.*|code/.*|extra/.*|debug_pkl/.*|attributes\.pkl)"
)
_KERAS_ROOT = {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}


def is_model_zip(path: Path) -> bool:
    """True when the zip at ``path`` is a model file in itself (PyTorch zip checkpoint,
    TorchScript, Keras v3, numpy .npz, skops), as the model readers judge it. For PyTorch and
    Keras every member must also fit that layout, so that files added to a model
    archive (or a model's names added to a case zip) are not hidden from the scan:
    such a zip is walked as an archive, and its pickles are scanned as members."""
    from ..models.formats import model_archive_kind, zip_member_names

    kind = model_archive_kind(path)
    if kind is None or kind in ("npz", "skops"):  # every member is read by that format's reader
        return kind is not None
    names = [n for n in zip_member_names(path) or [] if not n.endswith("/")]
    return _torch_layout(names) if kind == "torch" else _keras_layout(names)


def _torch_layout(names: list[str]) -> bool:
    if not names:
        return False
    prefix = names[0].split("/", 1)[0]
    rest = []
    for n in names:
        top, sep, tail = n.partition("/")
        if top != prefix or not sep:
            return False
        rest.append(tail)
    return ("data.pkl" in rest or "constants.pkl" in rest) and all(_TORCH_LAYOUT.fullmatch(t) for t in rest)


def _keras_layout(names: list[str]) -> bool:
    root = {n for n in names if "/" not in n}
    return ("config.json" in root and bool(root & {"model.weights.h5", "model.weights.npz"})
            and all(n in _KERAS_ROOT or n.startswith("assets/") for n in names))
