"""Walk the inputs: files and folders, symlinks followed at most once, no loops."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..sniff import sniff_path


@dataclass(frozen=True)
class WalkItem:
    path: Path
    problem: str | None = None  # set when the path cannot be walked (the scan records it)


_MODEL_FOLDER_MARKERS = ("model_index.json", "adapter_config.json")


def walk(inputs: Iterable[str | Path]) -> Iterator[WalkItem]:
    """Yield every regular file under the inputs, plus model folders as one item each.

    Directories reached twice (symlink loops, bind mounts, a folder given twice) are
    entered once, by device and inode. A diffusers or PEFT folder is one subject:
    its weight files are analysed as parts of that model, not again on their own.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for raw in inputs:
        path = Path(raw)
        try:
            st = path.stat()
        except OSError as exc:
            yield WalkItem(path, f"cannot access: {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(path, seen_dirs, seen_files)
        elif stat.S_ISREG(st.st_mode):
            if _first_visit(st, seen_files):
                yield WalkItem(path)
        else:
            yield WalkItem(path, "not a regular file or folder")


def _first_visit(st: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _walk_dir(
    root: Path, seen_dirs: set[tuple[int, int]], seen_files: set[tuple[int, int]]
) -> Iterator[WalkItem]:
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
        except OSError as exc:
            yield WalkItem(d, f"cannot access: {exc.strerror or exc}")
            continue
        if not _first_visit(st, seen_dirs):
            continue
        if any((d / m).is_file() for m in _MODEL_FOLDER_MARKERS) and sniff_path(d).kind == "model":
            yield WalkItem(d)
            continue
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkItem(d, f"cannot list folder: {exc.strerror or exc}")
            continue
        subdirs: list[Path] = []
        for entry in entries:
            p = Path(entry.path)
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield WalkItem(p, f"cannot access: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(est.st_mode):
                subdirs.append(p)
            elif stat.S_ISREG(est.st_mode):
                if _first_visit(est, seen_files):
                    yield WalkItem(p)
            # sockets, fifos, devices: never opened (a fifo would block the scan)
        stack.extend(reversed(subdirs))
