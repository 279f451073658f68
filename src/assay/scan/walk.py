"""Walk the inputs: files and folders, symbolic links reported (or followed once), no loops.

Symbolic links found inside a folder are not followed unless asked: a link can lead
out of the evidence, and following it silently would put files in the report that
were never in the case. Each becomes a record that names the link and its target.
Links given as inputs are followed (the user named them), as ``find -H`` does.
Nothing here raises for a bad path: unreadable folders and files become items with
a ``problem``, which the scan turns into error records.
"""

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
    link_target: str | None = None  # set for a symbolic link that was not followed
    is_input: bool = False  # named by the user, not found inside a folder
    size: int | None = None  # bytes of a regular file, as the walk's stat found them (progress)


_MODEL_FOLDER_MARKERS = ("model_index.json", "adapter_config.json")


def special_kind(mode: int) -> str:
    """What a file that is neither regular nor a folder is, as a user reads it."""
    for test, what in ((stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "a special file"


def walk(inputs: Iterable[str | Path], *, follow_symlinks: bool = False,
         skip: Iterable[str | Path] = ()) -> Iterator[WalkItem]:
    """Yield every regular file under the inputs, plus model folders as one item each.

    Directories reached twice (symlink loops, bind mounts, a folder given twice) are
    entered once, by device and inode. A diffusers or PEFT folder is a subject of its
    own (architecture and lineage of the whole model), and every file in it is still
    yielded as any other: a folder's marker file (an empty ``model_index.json`` is
    enough) must not hide what lies beside it, and each weight file has its own hashes
    for the banks to match.
    ``skip``: files and folders left out, by device and inode whatever the name they are
    reached by (the scan's own output: a report being written is not evidence).
    """
    seen_dirs: set[tuple[int, int]] = set(own_ids(skip))
    seen_files: set[tuple[int, int]] = set(seen_dirs)
    inputs = list(inputs)
    # A file can be reached twice only through a second name: a hard link, a followed
    # symbolic link, or an input that also lies in another input's folder. Only files
    # that can be reached so are remembered, so the walk of a drive of single-link files
    # holds no per-file state (a set of 10 million (device, inode) pairs is ~1.5 GB).
    remember_all = follow_symlinks or len(inputs) > 1
    for raw in inputs:
        path = Path(raw)
        try:
            st = path.stat()
        except OSError as exc:
            yield WalkItem(path, f"cannot access: {exc.strerror or exc}", is_input=True)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(path, seen_dirs, seen_files, follow_symlinks, remember_all)
        elif stat.S_ISREG(st.st_mode):
            if _first_visit(st, seen_files):
                yield WalkItem(path, is_input=True, size=st.st_size)
        else:
            yield WalkItem(path, f"not a regular file but {special_kind(st.st_mode)}: never opened", is_input=True)


def own_ids(paths: Iterable[str | Path]) -> list[tuple[int, int]]:
    """(device, inode) of each of ``paths`` that exists (followed if a link)."""
    ids = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.append((st.st_dev, st.st_ino))
    return ids


def _first_visit(st: os.stat_result, seen: set[tuple[int, int]], remember: bool = True) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    if remember:
        seen.add(key)
    return True


def _link_item(p: Path) -> WalkItem:
    try:
        return WalkItem(p, link_target=os.readlink(p))
    except OSError as exc:
        return WalkItem(p, f"cannot read symbolic link: {exc.strerror or exc}")


def _walk_dir(
    root: Path, seen_dirs: set[tuple[int, int]], seen_files: set[tuple[int, int]], follow: bool,
    remember_all: bool = True,
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
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkItem(d, f"cannot list folder: {exc.strerror or exc}")
            continue
        names = {e.name for e in entries}
        if any(m in names for m in _MODEL_FOLDER_MARKERS):
            try:
                is_model = sniff_path(d).kind == "model"
            except OSError as exc:
                yield WalkItem(d, f"cannot read model folder: {exc.strerror or exc}")
                continue
            if is_model:
                yield WalkItem(d)
        subdirs: list[Path] = []
        for entry in entries:
            p = Path(entry.path)
            try:
                if not follow and entry.is_symlink():
                    yield _link_item(p)
                    continue
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield WalkItem(p, f"cannot access: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(est.st_mode):
                subdirs.append(p)
            elif stat.S_ISREG(est.st_mode):
                if _first_visit(est, seen_files, remember_all or est.st_nlink > 1):
                    yield WalkItem(p, size=est.st_size)
            else:  # never opened (a fifo would block the scan), but in the inventory
                yield WalkItem(p, f"not a regular file but {special_kind(est.st_mode)}: never opened")
        stack.extend(reversed(subdirs))
