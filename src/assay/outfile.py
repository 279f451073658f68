"""Where a command writes its output file (a scan report, a case report, a bank export, a
LoRA). Output goes to ``NAME.partial`` first and is renamed over NAME at the end: a rename
that would put a plain file in the place of a folder, a device or a pipe is refused before
any work (a folder cannot be replaced: the work was lost at the end; as root, ``-o
/dev/null --overwrite`` replaced the system's /dev/null with a file)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import AssayError


def check_target(path: Path, *, hint: str | None = None) -> bool:
    """Whether ``path`` exists (a regular file, or a link to one). Raises AssayError when
    it is a folder or anything else that is not a regular file; ``hint``: what to give
    instead (added to the message)."""
    try:
        st = os.stat(path)  # through a link: -o /dev/stdout names the pipe or terminal behind it
    except FileNotFoundError:
        return os.path.islink(path)  # a dangling link: something is there
    except OSError as exc:
        raise AssayError(f"{path}: cannot use as the output file: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return True
    what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
    raise AssayError(f"{path}: is {what}; give the name of a file to write (nothing was written)",
                     hint=hint)
